"""Request-scoped dependencies: the session (the edge owns the transaction) and the caller."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Form, Path, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.enums import Role
from doxa.core.errors import PermissionDenied, TooManyRequests, Unauthenticated
from doxa.core.intake.pipeline import Pipeline
from doxa.core.outbox.sender import Kickable
from doxa.core.schemas import MAX_ID
from doxa.core.users import service as users
from doxa.core.users.mail import AccountMailer
from doxa.core.users.models import User
from doxa.core.users.throttle import Throttle, client_network
from doxa.runtime.intake import IntakeWorker
from doxa.runtime.triage import TriageRunner

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login", auto_error=False)
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]


# The dependencies that do no I/O are async: FastAPI runs a plain def on its thread pool, one
# more hand-off per request for nothing.


def _app_state(name: str) -> Callable[[Request], Awaitable[Any]]:
    """A dependency giving one of the long-lived objects the composition root put on app.state."""

    async def get(request: Request) -> Any:
        return getattr(request.app.state, name)

    return get


async def get_context(request: Request) -> Context:
    context: Context = request.app.state.context
    return context


ContextDep = Annotated[Context, Depends(get_context)]


def get_db(context: ContextDep) -> Iterator[Session]:
    """One transaction per request, committed before the response is sent."""
    with transaction(context.sessions) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db, scope="function")]


def current_user(
    db: SessionDep, context: ContextDep, token: Annotated[str | None, Depends(oauth2)]
) -> User:
    if not token:
        raise Unauthenticated("not authenticated")
    return users.user_for_token(db, context.tokens, token)


CurrentUser = Annotated[User, Depends(current_user)]


def _requires(*roles: Role) -> object:
    async def check(user: CurrentUser) -> User:
        if user.role not in roles:
            raise PermissionDenied(f"requires role {' or '.join(roles)}")
        return user

    check.roles = roles  # type: ignore[attr-defined]  # read by docs.document_errors (403)
    return Depends(check)


StaffUser = Annotated[User, _requires(Role.AGENT, Role.ADMIN)]
AdminUser = Annotated[User, _requires(Role.ADMIN)]


def metrics_reader(
    request: Request,
    db: SessionDep,
    context: ContextDep,
    token: Annotated[str | None, Depends(oauth2)],
) -> None:
    """/metrics: a scraper on this host, one with METRICS_TOKEN, or an admin's token. A request
    relayed by a proxy on this host (it names the client it forwards) is not taken for a local
    one."""
    if _from_loopback(request) or _is_metrics_token(request.app.state.metrics_token, token):
        return
    if not token:
        raise Unauthenticated("metrics are open to this host and to admins' tokens only")
    if users.user_for_token(db, context.tokens, token).role is not Role.ADMIN:
        raise PermissionDenied("requires role ADMIN")


def _is_metrics_token(expected: str | None, token: str | None) -> bool:
    if not expected or not token:
        return False
    # Digests of equal length, compared in constant time: the answer tells nothing of the token.
    given, wanted = (hashlib.sha256(value.encode()).digest() for value in (token, expected))
    return hmac.compare_digest(given, wanted)


def _from_loopback(request: Request) -> bool:
    if "x-forwarded-for" in request.headers or "forwarded" in request.headers:
        return False
    try:
        return request.client is not None and ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


TriageDep = Annotated[TriageRunner, Depends(_app_state("triage"))]
PipelineDep = Annotated[Pipeline, Depends(_app_state("pipeline"))]
WorkerDep = Annotated[IntakeWorker, Depends(_app_state("intake_worker"))]
OutboxDep = Annotated[Kickable, Depends(_app_state("outbox"))]
ThrottleDep = Annotated[Throttle, Depends(_app_state("throttle"))]
MailerDep = Annotated[AccountMailer, Depends(_app_state("account_mail"))]


async def get_network(request: Request) -> str:
    """The caller's network for throttling; X-Forwarded-For only from FORWARDED_ALLOW_IPS."""
    forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
    peer = request.client.host if request.client else None
    return client_network(peer, forwarded, request.app.state.trusted_proxies)


NetworkDep = Annotated[str, Depends(get_network)]


@dataclass(frozen=True, slots=True)
class LoginForm:
    username: str
    password: str


async def login_form(
    username: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1024)],
    grant_type: Annotated[str | None, Form(pattern="^password$")] = None,
    scope: Annotated[str, Form(max_length=1024)] = "",
) -> LoginForm:
    """OAuth2's password form (Swagger's Authorize sends it), read on the event loop."""
    return LoginForm(username, password)


async def allowed_login(
    form: Annotated[LoginForm, Depends(login_form)],
    context: ContextDep,
    throttle: ThrottleDep,
    network: NetworkDep,
) -> LoginForm:
    """Refuse a throttled login, or one that would find the hashing pool full, on the event
    loop: such a refusal takes no thread and no query, so a flood of them costs the API little
    (bench/login_flood.py)."""
    try:
        users.login_allowed(context.passwords, throttle, email=form.username, network=network)
    except TooManyRequests:
        # The refusal waits (no thread, no CPU): a client that floods waits for each answer, so
        # sixteen flooders send a few dozen requests a second instead of hundreds.
        await asyncio.sleep(throttle.refusal_delay)
        raise
    return form


LoginFormDep = Annotated[LoginForm, Depends(allowed_login)]
