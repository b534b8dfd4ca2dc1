"""Self-service accounts: the mailbox is the proof.

A sign-up or reset request only mails a link with a single-use, expiring token (stored as its
SHA-256); the password is chosen by whoever brings the token back, so a sign-up someone else
started never leaves their password on the account. Requests answer alike for every address.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from doxa.core.addresses import identity_key
from doxa.core.auth import Passwords
from doxa.core.db import utcnow
from doxa.core.enums import DeliveryState, Role, TokenPurpose
from doxa.core.errors import Conflict, InvalidInput, PermissionDenied
from doxa.core.users.mail import AccountMailer, queue_mail
from doxa.core.users.models import AccountToken, User
from doxa.core.users.service import find_by_email, set_password
from doxa.core.users.throttle import (
    MAIL_REQUESTS,
    Throttle,
    account_key,
    hashing_network,
    refuse,
)

MAIL_INTERVAL = timedelta(minutes=15)
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
    _one_mail_per_interval(db, email)
    user = find_by_email(db, email)
    if user is None or user.password_hash is None:
        purpose, text, subject = TokenPurpose.VERIFY, _VERIFY_TEXT, "Choose your password"
    else:
        purpose, text, subject = TokenPurpose.RESET, _EXISTS_TEXT, "You have an account already"
    # Deactivated: an admin's decision, not undone by mail; nothing goes out.
    deliver = user is None or user.is_active
    _mail_link(db, mailer, purpose, email, text, subject, full_name=full_name, deliver=deliver)


def request_reset(
    db: Session, mailer: AccountMailer, throttle: Throttle, *, email: str, network: str
) -> None:
    """Mail a reset link when the address has an active account; the same answer otherwise."""
    mailer.require()
    throttle.request_mail(email, network)
    email = identity_key(email)
    _one_mail_per_interval(db, email)
    user = find_by_email(db, email)
    deliver = user is not None and user.is_active
    subject = "reset your password"
    _mail_link(db, mailer, TokenPurpose.RESET, email, _RESET_TEXT, subject, deliver=deliver)


def _one_mail_per_interval(db: Session, email: str) -> None:
    """At most one sign-up or reset mail to an address per MAIL_INTERVAL, whatever the network
    and the process (the database knows the last); unknown addresses are counted alike."""
    last = db.scalar(select(func.max(AccountToken.created_at)).where(AccountToken.email == email))
    if last is not None:
        refuse((last + MAIL_INTERVAL - utcnow()).total_seconds(), MAIL_REQUESTS)


def _mail_link(
    db: Session,
    mailer: AccountMailer,
    purpose: TokenPurpose,
    email: str,
    text: str,
    subject: str,
    *,
    full_name: str | None = None,
    deliver: bool,
) -> None:
    """Issue a token and queue its mail. An address that may not get one (no account, or a
    deactivated one) gets the same work, a spent token and a mail that is never sent, so the
    time of the answer does not tell which addresses have accounts."""
    token = issue_link(db, purpose, email, full_name=full_name, usable=deliver)
    body = text.format(link=mailer.link(PAGE[purpose], token))
    state = DeliveryState.QUEUED if deliver else DeliveryState.NOT_SENT
    queue_mail(db, recipient=email, subject=f"Support account: {subject}", body=body, state=state)


def issue_link(
    db: Session,
    purpose: TokenPurpose,
    email: str,
    *,
    full_name: str | None = None,
    usable: bool = True,
) -> str:
    """A new token for the address. Links sent earlier stay valid until they expire or a
    password is set: someone else's request never voids the owner's link."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    db.add(
        AccountToken(
            token_hash=_digest(token),
            purpose=purpose,
            email=email.lower(),
            full_name=full_name,
            created_at=now,
            expires_at=now + LIFETIME[purpose],
            used_at=None if usable else now,
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
        throttle.login_failed(
            user.email, network, account=account_key(user.email, user.token_version)
        )
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
