from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from doxa.api import problems
from doxa.api.deps import AdminUser, ContextDep, IdPath, SessionDep, StaffUser
from doxa.core.schemas import MAX_PAGE_SIZE, Page
from doxa.core.teams import service as teams
from doxa.core.teams.schemas import TeamCreate, TeamRead, TeamUpdate

router = APIRouter(prefix="/teams", tags=["teams"])

E409 = "The name, or the mailbox, belongs to another team"


@router.get("")
def list_teams(
    db: SessionDep,
    staff: StaffUser,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[TeamRead]:
    """Every team, oldest first (agents and admins)."""
    return teams.list_teams(db, actor=staff, cursor=cursor, limit=limit)


@router.post("", status_code=201, responses=problems.errors(409, e409=E409))
def create_team(
    body: TeamCreate, db: SessionDep, admin: AdminUser, context: ContextDep
) -> TeamRead:
    """Make a team; mail to its `mailbox` lands in it from now on."""
    return teams.create_team(db, body, actor=admin, settings=context.settings)


@router.get("/{team_id}")
def get_team(team_id: IdPath, db: SessionDep, staff: StaffUser) -> TeamRead:
    """One team with its members."""
    return teams.get_team(db, team_id, actor=staff)


@router.patch("/{team_id}", responses=problems.errors(409, e409=E409))
def update_team(
    team_id: IdPath, body: TeamUpdate, db: SessionDep, admin: AdminUser, context: ContextDep
) -> TeamRead:
    """Rename, change the mailbox, members, assignment or capacity."""
    return teams.update_team(db, team_id, body, actor=admin, settings=context.settings)


@router.delete("/{team_id}", status_code=204)
def delete_team(team_id: IdPath, db: SessionDep, admin: AdminUser) -> None:
    """Delete a team: its tickets leave it (an event each); rules naming it skip that action."""
    teams.delete_team(db, team_id, actor=admin)
