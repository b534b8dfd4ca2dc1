"""Teams and waiting tickets made directly in the database (the teams API is tested apart)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.enums import ActorType, Assignment, Channel, EventType, Status
from doxa.core.events.record import SYSTEM
from doxa.core.models import Event, Team, TeamMember, Ticket, User
from doxa.core.tickets import service as tickets

MakeTeam = Callable[..., Team]


def add_team(
    sessions: sessionmaker[Session],
    members: Sequence[User] = (),
    *,
    assignment: Assignment = Assignment.ROUND_ROBIN,
    capacity: int | None = None,
    name: str | None = None,
) -> Team:
    with transaction(sessions) as db:
        count = len(db.scalars(select(Team.id)).all())
        team = Team(name=name or f"Team {count + 1}", assignment=assignment, capacity=capacity)
        db.add(team)
        db.flush()
        db.add_all(TeamMember(team_id=team.id, user_id=member.id) for member in members)
    return team


def add_tickets(
    sessions: sessionmaker[Session],
    requester: User,
    count: int,
    *,
    team: Team | None = None,
    assignee: User | None = None,
    status: Status = Status.NEW,
) -> list[int]:
    """`count` tickets in one INSERT: where the point is assignment, not how tickets open."""
    rows: list[dict[str, object]] = [
        {
            "subject": f"Ticket {n}",
            "channel": Channel.API,
            "status": status,
            "requester_id": requester.id,
            "team_id": team.id if team else None,
            "assignee_id": assignee.id if assignee else None,
            "cc": [],
            "metadata": {},
        }
        for n in range(count)
    ]
    with transaction(sessions) as db:
        return list(db.scalars(insert(Ticket).returning(Ticket.id), rows))


def land(
    sessions: sessionmaker[Session], ticket_ids: Sequence[int], team: Team
) -> list[int | None]:
    """Move tickets into a team as a rule would (tickets.service.change): their assignees."""
    with transaction(sessions) as db:
        moved = [db.get_one(Ticket, ticket_id) for ticket_id in ticket_ids]
        for ticket in moved:
            tickets.change(db, ticket, {"team_id": team.id}, actor=SYSTEM)
        return [ticket.assignee_id for ticket in moved]


def assignees(sessions: sessionmaker[Session], ticket_ids: Sequence[int]) -> list[int | None]:
    with sessions() as db:
        rows = db.execute(select(Ticket.id, Ticket.assignee_id).where(Ticket.id.in_(ticket_ids)))
        found = {ticket_id: assignee_id for ticket_id, assignee_id in rows}
    return [found[ticket_id] for ticket_id in ticket_ids]


def system_assignments(sessions: sessionmaker[Session]) -> dict[int, int]:
    """Per ticket, how many `ticket.assigned` events the system recorded giving it someone."""
    with sessions() as db:
        events = db.scalars(
            select(Event).where(
                Event.type == EventType.TICKET_ASSIGNED, Event.actor_type == ActorType.SYSTEM
            )
        ).all()
    counts: dict[int, int] = {}
    for event in events:
        assert event.ticket_id is not None and event.changes is not None
        if event.changes["assignee_id"][1] is not None:
            counts[event.ticket_id] = counts.get(event.ticket_id, 0) + 1
    return counts


@pytest.fixture
def make_team(clean: Context) -> MakeTeam:
    def make(
        members: Sequence[User] = (),
        *,
        assignment: Assignment = Assignment.ROUND_ROBIN,
        capacity: int | None = None,
    ) -> Team:
        return add_team(clean.sessions, members, assignment=assignment, capacity=capacity)

    return make
