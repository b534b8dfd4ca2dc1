from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks

from doxa.api import problems
from doxa.api.deps import (
    ContextDep,
    CurrentUser,
    LoginFormDep,
    MailerDep,
    NetworkDep,
    OutboxDep,
    SessionDep,
    ThrottleDep,
)
from doxa.core.users import accounts
from doxa.core.users import service as users
from doxa.core.users.models import User
from doxa.core.users.schemas import (
    Accepted,
    AccessToken,
    LinkPassword,
    PasswordChange,
    Registration,
    ResetRequest,
    UserRead,
)

router = APIRouter(tags=["auth"])
MAILED = "if this address can have an account, a link is on its way to it"


def _token_for(db: SessionDep, context: ContextDep, user: User) -> AccessToken:
    return AccessToken(
        access_token=users.issue_token(db, context.tokens, user),
        expires_in=int(context.tokens.lifetime.total_seconds()),
    )


@router.post(
    "/auth/login",
    responses=problems.errors(
        401, 429, e401="Wrong email or password, or the account is deactivated"
    ),
)
def login(
    form: LoginFormDep,
    db: SessionDep,
    context: ContextDep,
    throttle: ThrottleDep,
    network: NetworkDep,
) -> AccessToken:
    """Exchange an email (`username`) and password for a bearer token.

    Failed attempts are throttled per (address, network) and per network: 429 with Retry-After.
    Password checks share a pool fairly between networks (IPv4 /24, IPv6 /48): a network past
    its share, successful logins included, gets 429 rather than a slower answer.
    """
    user = users.authenticate(
        db,
        context.passwords,
        throttle,
        email=form.username,
        password=form.password,
        network=network,
    )
    return _token_for(db, context, user)


# The answers of the endpoints that mail a link (the same whether or not the account exists).
_MAILS_A_LINK = problems.errors(
    429, 503, e503="Outbound mail is not set up (OUTBOUND_SMTP_URL), or the database is away"
)


@router.post(
    "/auth/register",
    status_code=202,
    responses=_MAILS_A_LINK,
)
def register(
    body: Registration,
    db: SessionDep,
    mailer: MailerDep,
    outbox: OutboxDep,
    throttle: ThrottleDep,
    network: NetworkDep,
    background: BackgroundTasks,
) -> Accepted:
    """Sign up as a client: a link to choose the password goes to the address.

    The answer is the same whether or not the address has an account; nothing changes until
    the mailed token comes back to `POST /auth/verify`. 503 when outbound mail is not set up.
    """
    accounts.request_sign_up(
        db, mailer, throttle, email=body.email, full_name=body.full_name, network=network
    )
    background.add_task(outbox.kick)  # after the commit; sent on the outbox's threads
    return Accepted(detail=MAILED)


@router.post(
    "/auth/verify",
    responses=problems.errors(
        403,
        409,
        429,
        e403="The account is deactivated",
        e409="The account has a password already: use password reset",
        e429="The password hashing pool is full; retry after Retry-After",
    ),
)
def verify(
    body: LinkPassword, db: SessionDep, context: ContextDep, network: NetworkDep
) -> UserRead:
    """Choose the password with the token from a sign-up mail (once, before it expires)."""
    user = accounts.verify_sign_up(
        db, context.passwords, token=body.token, password=body.password, network=network
    )
    return UserRead.model_validate(user)


@router.post(
    "/auth/password-reset",
    status_code=202,
    responses=_MAILS_A_LINK,
)
def password_reset(
    body: ResetRequest,
    db: SessionDep,
    mailer: MailerDep,
    outbox: OutboxDep,
    throttle: ThrottleDep,
    network: NetworkDep,
    background: BackgroundTasks,
) -> Accepted:
    """Mail a password reset link; the same answer whether or not the address has an account."""
    accounts.request_reset(db, mailer, throttle, email=body.email, network=network)
    background.add_task(outbox.kick)
    return Accepted(detail=MAILED)


@router.post(
    "/auth/password-reset/confirm",
    responses=problems.errors(
        429, e429="The password hashing pool is full; retry after Retry-After"
    ),
)
def password_reset_confirm(
    body: LinkPassword, db: SessionDep, context: ContextDep, network: NetworkDep
) -> UserRead:
    """Set a new password with the token from a reset mail; every earlier access token ends."""
    user = accounts.reset_password(
        db, context.passwords, token=body.token, password=body.password, network=network
    )
    return UserRead.model_validate(user)


@router.get("/users/me")
def me(user: CurrentUser) -> UserRead:
    """The caller."""
    return UserRead.model_validate(user)


@router.post(
    "/users/me/password",
    responses=problems.errors(403, 429, e403="The current password is wrong"),
)
def change_password(
    body: PasswordChange,
    user: CurrentUser,
    db: SessionDep,
    context: ContextDep,
    throttle: ThrottleDep,
    network: NetworkDep,
) -> AccessToken:
    """Change one's password; every earlier token ends, and a new one comes back."""
    accounts.change_password(
        db,
        context.passwords,
        throttle,
        user,
        current=body.current_password,
        new=body.new_password,
        network=network,
    )
    return _token_for(db, context, user)
