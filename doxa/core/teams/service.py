"""Teams: who works a group of tickets, how new ones are handed out, and the support address
whose mail lands there (SPEC "Team"). Staff read them, admins manage them."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from doxa.core.config import Settings
from doxa.core.enums import Role
from doxa.core.errors import Conflict, InvalidInput, NotFound
from doxa.core.events.record import Actor
from doxa.core.schemas import MAX_PAGE_SIZE, Page, decode_cursor, encode_cursor
from doxa.core.teams.models import Team, TeamMember
from doxa.core.teams.schemas import TeamCreate, TeamRead, TeamUpdate
from doxa.core.tickets import service as tickets
from doxa.core.tickets.models import Ticket
from doxa.core.users.models import User
from doxa.core.users.service import require_role

STAFF = (Role.AGENT, Role.ADMIN)


def list_teams(db: Session, *, actor: User, cursor: str | None, limit: int) -> Page[TeamRead]:
    """Teams in the order they were made, a page at a time."""
    require_role(actor, *STAFF)
    query = select(Team).order_by(Team.id).limit(min(limit, MAX_PAGE_SIZE) + 1)
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(Team.id > after)
    rows = list(db.scalars(query))
    page = rows[:limit]
    members = _members(db, [team.id for team in page])
    return Page(
        items=[_read(team, members.get(team.id, [])) for team in page],
        next_cursor=encode_cursor(page[-1].id) if len(rows) > limit else None,
    )


def get_team(db: Session, team_id: int, *, actor: User) -> TeamRead:
    require_role(actor, *STAFF)
    return read(db, _get(db, team_id))


def create_team(db: Session, data: TeamCreate, *, actor: User, settings: Settings) -> TeamRead:
    require_role(actor, Role.ADMIN)
    _name_free(db, data.name)
    team = Team(
        name=data.name,
        mailbox=_mailbox_free(db, data.mailbox, settings=settings),
        assignment=data.assignment,
        capacity=data.capacity,
    )
    db.add(team)
    db.flush()
    _set_members(db, team, data.member_ids)
    return read(db, team)


def update_team(
    db: Session, team_id: int, data: TeamUpdate, *, actor: User, settings: Settings
) -> TeamRead:
    """Change the fields sent; `member_ids` is the whole list, `mailbox` and `capacity` may be
    set to null."""
    require_role(actor, Role.ADMIN)
    team = _get(db, team_id, for_update=True)
    sent = data.model_fields_set
    if data.name is not None and data.name != team.name:
        _name_free(db, data.name, team=team)
        team.name = data.name
    if "mailbox" in sent:
        team.mailbox = _mailbox_free(db, data.mailbox, settings=settings, team=team)
    if data.assignment is not None:
        team.assignment = data.assignment
    if "capacity" in sent:
        team.capacity = data.capacity
    if data.member_ids is not None:
        _set_members(db, team, data.member_ids)
    db.flush()
    return read(db, team)


def delete_team(db: Session, team_id: int, *, actor: User) -> None:
    """Delete a team. Its tickets leave it, each change an event by the admin (so service
    levels and assignment follow as for any move); rules that name it skip that action."""
    require_role(actor, Role.ADMIN)
    team = _get(db, team_id, for_update=True)
    held = select(Ticket).where(Ticket.team_id == team.id).order_by(Ticket.id).with_for_update()
    for ticket in db.scalars(held):
        tickets.change(db, ticket, {"team_id": None}, actor=Actor.of(actor))
    db.delete(team)
    db.flush()


def team_for_mailbox(db: Session, mailbox: str | None) -> int | None:
    """The team that owns a support address (as intake names it), if any."""
    if mailbox is None:
        return None
    return db.scalar(select(Team.id).where(Team.mailbox == mailbox))


def read(db: Session, team: Team) -> TeamRead:
    return _read(team, _members(db, [team.id]).get(team.id, []))


def _read(team: Team, member_ids: list[int]) -> TeamRead:
    return TeamRead(
        id=team.id,
        name=team.name,
        mailbox=team.mailbox,
        member_ids=member_ids,
        assignment=team.assignment,
        capacity=team.capacity,
    )


def _get(db: Session, team_id: int, *, for_update: bool = False) -> Team:
    query = select(Team).where(Team.id == team_id)
    team = db.scalar(query.with_for_update() if for_update else query)
    if team is None:
        raise NotFound(f"team {team_id} not found")
    return team


def _members(db: Session, team_ids: Iterable[int]) -> dict[int, list[int]]:
    query = (
        select(TeamMember.team_id, TeamMember.user_id)
        .where(TeamMember.team_id.in_(list(team_ids)))
        .order_by(TeamMember.team_id, TeamMember.user_id)
    )
    found: dict[int, list[int]] = {}
    for team_id, user_id in db.execute(query):
        found.setdefault(team_id, []).append(user_id)
    return found


def _name_free(db: Session, name: str, *, team: Team | None = None) -> None:
    other = db.scalar(select(Team.id).where(Team.name == name))
    if other is not None and (team is None or other != team.id):
        raise Conflict(f"a team named {name!r} exists")


def _mailbox_free(
    db: Session, address: str | None, *, settings: Settings, team: Team | None = None
) -> str | None:
    """The address in the spelling intake records, once checked to be ours and unowned."""
    if address is None:
        return None
    box = settings.mailbox(address)
    if box is None:
        ours = ", ".join(each.address for each in settings.support_addresses)
        raise InvalidInput(f"mailbox: {address} is not a support address (ours: {ours})")
    owner = db.scalar(select(Team).where(Team.mailbox == box.address))
    if owner is not None and owner is not team:
        raise Conflict(f"mailbox: {box.address} belongs to team {owner.id} ({owner.name})")
    return box.address


def _set_members(db: Session, team: Team, member_ids: list[int]) -> None:
    """Replace the members; each must be an active agent or admin (422 naming the first that
    is not)."""
    users = {u.id: u for u in db.scalars(select(User).where(User.id.in_(member_ids)))}
    for index, user_id in enumerate(member_ids):
        user = users.get(user_id)
        if user is None or not user.is_active or not user.is_staff:
            raise InvalidInput(f"member_ids[{index}]: user {user_id} is not an active agent")
    wanted = set(member_ids)
    have = set(_members(db, [team.id]).get(team.id, []))
    gone = delete(TeamMember).where(
        TeamMember.team_id == team.id, TeamMember.user_id.in_(have - wanted)
    )
    db.execute(gone.execution_options(synchronize_session=False))
    db.add_all(TeamMember(team_id=team.id, user_id=user_id) for user_id in sorted(wanted - have))
    db.flush()
