from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm

from doxa.api.deps import ContextDep, CurrentUser, SessionDep
from doxa.core.users import service as users
from doxa.core.users.schemas import AccessToken, Registration, UserRead

router = APIRouter(tags=["auth"])


@router.post("/auth/login")
def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], db: SessionDep, context: ContextDep
) -> AccessToken:
    """Exchange an email (`username`) and password for a bearer token."""
    user = users.authenticate(db, context.passwords, email=form.username, password=form.password)
    return AccessToken(
        access_token=context.tokens.issue(user.id),
        expires_in=int(context.tokens.lifetime.total_seconds()),
    )


@router.post("/auth/register", status_code=201)
def register(body: Registration, db: SessionDep, context: ContextDep) -> UserRead:
    """Sign up as a client; an address we know from inbound mail claims its tickets."""
    return UserRead.model_validate(users.register(db, context.passwords, body))


@router.get("/users/me", tags=["users"])
def me(user: CurrentUser) -> UserRead:
    """The caller."""
    return UserRead.model_validate(user)
