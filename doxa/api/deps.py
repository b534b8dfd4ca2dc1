"""Request-scoped dependencies: the session (the edge owns the transaction) and the caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.enums import Role
from doxa.core.errors import PermissionDenied, Unauthenticated
from doxa.core.intake.pipeline import Pipeline
from doxa.core.intake.worker import IntakeWorker
from doxa.core.outbound import OutboxRunner
from doxa.core.schemas import MAX_ID
from doxa.core.triage.runner import TriageRunner
from doxa.core.users import service as users
from doxa.core.users.models import User

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login", auto_error=False)
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]


def get_context(request: Request) -> Context:
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
    def check(user: CurrentUser) -> User:
        if user.role not in roles:
            raise PermissionDenied(f"requires role {' or '.join(roles)}")
        return user

    return Depends(check)


StaffUser = Annotated[User, _requires(Role.AGENT, Role.ADMIN)]
AdminUser = Annotated[User, _requires(Role.ADMIN)]


def get_pipeline(request: Request) -> Pipeline:
    pipeline: Pipeline = request.app.state.pipeline
    return pipeline


def get_worker(request: Request) -> IntakeWorker:
    worker: IntakeWorker = request.app.state.intake_worker
    return worker


def get_outbox(request: Request) -> OutboxRunner:
    outbox: OutboxRunner = request.app.state.outbox
    return outbox


def get_triage(request: Request) -> TriageRunner:
    triage: TriageRunner = request.app.state.triage
    return triage


TriageDep = Annotated[TriageRunner, Depends(get_triage)]
PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
WorkerDep = Annotated[IntakeWorker, Depends(get_worker)]
OutboxDep = Annotated[OutboxRunner, Depends(get_outbox)]
