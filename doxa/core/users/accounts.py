"""Self-service accounts: the mailbox is the proof.

A sign-up or reset request only mails a link with a single-use, expiring token (stored as its
SHA-256); the password is chosen by whoever brings the token back, so a sign-up someone else
started never leaves their password on the account. Requests answer alike for every address.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from doxa.core.addresses import identity_key
from doxa.core.auth import Passwords
from doxa.core.db import utcnow
from doxa.core.enums import Role, TokenPurpose
from doxa.core.errors import Conflict, InvalidInput, PermissionDenied
from doxa.core.users.mail import AccountMailer, queue_mail
from doxa.core.users.models import AccountToken, User
from doxa.core.users.service import find_by_email, set_password, void_links
from doxa.core.users.throttle import Throttle, hashing_network

LIFETIME = {TokenPurpose.VERIFY: timedelta(hours=24), TokenPurpose.RESET: timedelta(hours=1)}
PAGE = {TokenPurpose.VERIFY: "verify", TokenPurpose.RESET: "reset"}
BAD_LINK = "this link is invalid, already used or expired; request a new one"

_VERIFY_TEXT = """Hello,

someone asked to open a support account for this address. If it was you, choose your
password here (the link works once, for 24 hours):

{link}

If it was not you, ignore this message: nothing changes without this link.
"""
_EXISTS_TEXT = """Hello,

someone asked to open a support account for this address, which has one already. If you
have forgotten its password, choose a new one here (the link works once, for 1 hour):

{link}

If it was not you, ignore this message: your password stays as it is.
"""
_RESET_TEXT = """Hello,

someone asked to reset the password of the support account of this address. If it was you,
choose a new password here (the link works once, for 1 hour):

{link}

If it was not you, ignore this message: your password stays as it is.
"""


def request_sign_up(
    db: Session,
    mailer: AccountMailer,
    throttle: Throttle,
    *,
    email: str,
    full_name: str | None,
    network: str,
) -> None:
    """Mail the address a link to choose a password; the same answer whatever exists.

    An address with a password gets a reset link instead: the owner may have forgotten it.
    """
    mailer.require()
    throttle.request_mail(email, network)
    email = identity_key(email)
    user = find_by_email(db, email)
    if user is not None and not user.is_active:
        return  # deactivated: an admin's decision, not undone by mail
    if user is None or user.password_hash is None:
        purpose, text, subject = TokenPurpose.VERIFY, _VERIFY_TEXT, "Choose your password"
        token = issue_link(db, purpose, email, full_name=full_name)
    else:
        purpose, text, subject = TokenPurpose.RESET, _EXISTS_TEXT, "You have an account already"
        token = issue_link(db, purpose, email)
    body = text.format(link=mailer.link(PAGE[purpose], token))
    queue_mail(db, recipient=email, subject=f"Support account: {subject}", body=body)


def request_reset(
    db: Session, mailer: AccountMailer, throttle: Throttle, *, email: str, network: str
) -> None:
    """Mail a reset link when the address has an active account; the same answer otherwise."""
    mailer.require()
    throttle.request_mail(email, network)
    user = find_by_email(db, email)
    if user is None or not user.is_active:
        return
    token = issue_link(db, TokenPurpose.RESET, user.email)
    body = _RESET_TEXT.format(link=mailer.link(PAGE[TokenPurpose.RESET], token))
    queue_mail(db, recipient=user.email, subject="Support account: reset your password", body=body)


def issue_link(
    db: Session, purpose: TokenPurpose, email: str, *, full_name: str | None = None
) -> str:
    """A new token for the address; the older unused ones of that purpose stop working."""
    void_links(db, email, purpose)
    token = secrets.token_urlsafe(32)
    db.add(
        AccountToken(
            token_hash=_digest(token),
            purpose=purpose,
            email=email.lower(),
            full_name=full_name,
            expires_at=utcnow() + LIFETIME[purpose],
        )
    )
    db.flush()
    return token


def verify_sign_up(
    db: Session, passwords: Passwords, *, token: str, password: str, network: str
) -> User:
    """The mailbox owner chooses the password; the account exists from now on."""
    link = _redeem(db, TokenPurpose.VERIFY, token)
    user = find_by_email(db, link.email)
    if user is None:
        user = User(email=link.email, full_name=link.full_name, role=Role.CLIENT, token_version=0)
        db.add(user)
    elif not user.is_active:
        raise PermissionDenied("this account is deactivated")
    elif user.password_hash is not None:
        raise Conflict("this account has a password already; use password reset")
    else:
        user.full_name = user.full_name or link.full_name
    set_password(db, passwords, user, password, network=network)
    return user


def reset_password(
    db: Session, passwords: Passwords, *, token: str, password: str, network: str
) -> User:
    """Set a new password from a reset link; every earlier access token of the user ends."""
    link = _redeem(db, TokenPurpose.RESET, token)
    user = find_by_email(db, link.email)
    if user is None or not user.is_active:
        raise InvalidInput(BAD_LINK)
    set_password(db, passwords, user, password, network=network)
    return user


def change_password(
    db: Session,
    passwords: Passwords,
    throttle: Throttle,
    user: User,
    *,
    current: str,
    new: str,
    network: str,
) -> None:
    """Change one's own password, proving the current one; earlier tokens end."""
    throttle.check_login(user.email, network)
    if not passwords.verify(current, user.password_hash, network=hashing_network(network)):
        throttle.login_failed(user.email, network)
        raise PermissionDenied("the current password is wrong")
    set_password(db, passwords, user, new, network=network)


def _redeem(db: Session, purpose: TokenPurpose, token: str) -> AccountToken:
    """Use up a token once: the conditional update makes two concurrent redemptions one."""
    digest, now = _digest(token), utcnow()
    used = db.execute(
        update(AccountToken)
        .where(
            AccountToken.token_hash == digest,
            AccountToken.purpose == purpose,
            AccountToken.used_at.is_(None),
            AccountToken.expires_at > now,
        )
        .values(used_at=now)
    )
    link = db.scalar(select(AccountToken).where(AccountToken.token_hash == digest))
    if getattr(used, "rowcount", 0) != 1 or link is None:
        raise InvalidInput(BAD_LINK)
    return link


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
