from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from doxa.api import problems
from doxa.api.deps import AdminUser, ContextDep, CurrentUser, IdPath, SessionDep, StaffUser
from doxa.core.schemas import MAX_PAGE_SIZE, Page
from doxa.core.users import service as users
from doxa.core.users.schemas import Preferences, UserCreate, UserRead, UserUpdate

router = APIRouter(prefix="/users", tags=["users"])


@router.get("")
def list_users(
    db: SessionDep,
    admin: AdminUser,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[UserRead]:
    """Every user, newest first."""
    return users.list_users(db, actor=admin, cursor=cursor, limit=limit)


@router.post(
    "",
    status_code=201,
    responses=problems.errors(
        409,
        429,
        e409="An account with this email exists",
        e429="The password hashing pool is full; retry after Retry-After",
    ),
)
def create_user(
    body: UserCreate, db: SessionDep, admin: AdminUser, context: ContextDep
) -> UserRead:
    """Create a user of any role."""
    return UserRead.model_validate(users.create_user(db, context.passwords, body, actor=admin))


# Before /{user_id}, which would take "me" for an id.
@router.patch(
    "/me", responses=problems.errors(403, e403="Only agents and admins set their availability")
)
def update_me(body: Preferences, db: SessionDep, me: CurrentUser) -> UserRead:
    """The caller's own availability (agents: whether assignment may pick them) and mail
    notifications."""
    return UserRead.model_validate(users.update_me(db, me, body))


@router.patch(
    "/{user_id}",
    responses=problems.errors(
        409, 429, e409="The last active admin cannot be demoted or deactivated"
    ),
)
def update_user(
    user_id: IdPath, body: UserUpdate, db: SessionDep, admin: AdminUser, context: ContextDep
) -> UserRead:
    """Change a user's name, role, password or deactivate them (their tokens end for good)."""
    user = users.update_user(db, context.passwords, user_id, body, actor=admin)
    return UserRead.model_validate(user)


@router.get("/{user_id}")
def get_user(user_id: IdPath, db: SessionDep, staff: StaffUser) -> UserRead:
    """One user (agents and admins): who a requester or an author is."""
    return UserRead.model_validate(users.get_user(db, user_id, actor=staff))
