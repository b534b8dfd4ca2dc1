"""Assignment: a ticket in a round-robin or least-open team goes to an available member with
room (SPEC "Routing, assignment and service levels").

Every automatic assignment, in every process, happens under one lock (PostgreSQL's advisory
lock `ASSIGNMENT_LOCK`, held to the commit; SQLite's one writer), and counts the members' load
inside it: capacity spans teams, so a lock per team would not keep two teams from filling one
member past it; round robin's turn (`team.last_assignee_id`) is read and moved under it too.

No deadlock: only the queue job waits for the lock, in a transaction of its own that holds
nothing else yet. A change to a ticket (`follow`, inside a request, a rule's or intake's
transaction, which may hold other tickets' rows) only tries it: when another transaction has
it, the ticket waits in the queue and the job assigns it within a second. Under the lock the
members' rows are locked (FOR NO KEY UPDATE, read again after a concurrent change: a member
just deactivated or away is not picked) and waiting tickets are claimed with SKIP LOCKED.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from doxa.core.db import backend, transaction, utcnow
from doxa.core.enums import Assignment, Role, Status
from doxa.core.events.record import SYSTEM
from doxa.core.teams.models import Team, TeamMember
from doxa.core.tickets import service as tickets
from doxa.core.tickets.models import Ticket
from doxa.core.users.models import User

ASSIGNMENT_LOCK = 0x41535347  # "ASSG": PostgreSQL advisory lock serializing every assignment
OPEN = (Status.NEW, Status.OPEN)  # what counts as a member's load, and what may wait
AUTOMATIC = (Assignment.ROUND_ROBIN, Assignment.LEAST_OPEN)
QUEUE_BATCH = 50  # waiting tickets assigned per transaction: the lock is held briefly
NEVER = datetime.min.replace(tzinfo=UTC)  # least-open's tie: never assigned goes first


def follow(db: Session, ticket: Ticket, changed: set[str]) -> None:
    """After a change to the ticket's fields: place it when it waits in a team (landed there,
    unassigned, or reopened); when it stops counting against its assignee (resolved, pending,
    closed), give the room to the oldest ticket waiting in the assignee's teams."""
    if not changed & {"team_id", "assignee_id", "status"}:
        return
    if ticket.team_id is not None and ticket.assignee_id is None and ticket.status in OPEN:
        place(db, ticket)
    elif "status" in changed and ticket.assignee_id is not None and ticket.status not in OPEN:
        make_room(db, ticket.assignee_id)


def place(db: Session, ticket: Ticket) -> User | None:
    """Assign a ticket waiting in a round-robin or least-open team to a member with room; None
    when it stays in the queue (every member full or away, a manual team, already assigned)."""
    team = db.get(Team, ticket.team_id) if ticket.team_id is not None else None
    if team is None or team.assignment not in AUTOMATIC:
        return None
    db.flush()
    # The ticket's row before the assignment lock (see the module's docstring), read afresh:
    # another process may have assigned it since this session loaded it.
    row = db.execute(
        select(Ticket.team_id, Ticket.assignee_id, Ticket.status)
        .where(Ticket.id == ticket.id)
        .with_for_update()
    ).one()
    if row.team_id != team.id or row.assignee_id is not None or row.status not in OPEN:
        return None
    turn = _take_turn(db, team.id, wait=False)
    member = turn.choose() if turn is not None else None
    if turn is not None and member is not None:
        turn.assign(db, ticket, member)
        turn.save()
    return member


def make_room(db: Session, user_id: int) -> int:
    """A member's load fell: assign the oldest waiting ticket of each of their round-robin or
    least-open teams that has one (to whoever's turn it is), unless another transaction is
    assigning (then the queue job does, within a second). The number assigned."""
    return sum(
        drain(db, team_id, limit=1, wait=False) for team_id in _queued_teams(db, member_id=user_id)
    )


def drain(db: Session, team_id: int, *, limit: int, wait: bool = True) -> int:
    """Assign up to `limit` of the team's waiting tickets, oldest first, while a member has
    room. The number assigned; the lock is held until the caller's commit. `wait`: only in a
    transaction that holds no other lock yet (see the module's docstring)."""
    turn = _take_turn(db, team_id, wait=wait)
    if turn is None:
        return 0
    query = (
        select(Ticket)
        .where(Ticket.team_id == team_id, Ticket.assignee_id.is_(None), Ticket.status.in_(OPEN))
        .order_by(Ticket.id)
        .limit(limit)
    )
    waiting = db.scalars(
        backend(db).skip_locked(query).execution_options(populate_existing=True)
    ).all()
    assigned = 0
    for ticket in waiting:
        member = turn.choose()
        if member is None:
            break
        turn.assign(db, ticket, member)
        assigned += 1
    turn.save()
    return assigned


def assign_waiting(sessions: sessionmaker[Session]) -> int:
    """The queue job: every round-robin or least-open team's waiting tickets, oldest first, to
    members with room, a short transaction per batch. Run every second by each process, it
    places what a member's return, a new member, a raised capacity or a ticket leaving
    `new`/`open` made room for. Idempotent; the number assigned."""
    with sessions() as db:
        teams = _queued_teams(db)
    total = 0
    for team_id in teams:
        while True:
            with transaction(sessions) as db:
                assigned = drain(db, team_id, limit=QUEUE_BATCH)
            total += assigned
            if assigned < QUEUE_BATCH:
                break
    return total


def deactivate(db: Session, user: User) -> None:
    """Deactivate a user: their `new` and `open` tickets go back to their teams' queues (a
    `ticket.assigned` event each), and are placed again at once where a member has room."""
    with db.no_autoflush:  # their tickets' rows before the user's row, as a placement takes them
        held = list(
            db.scalars(
                select(Ticket)
                .where(Ticket.assignee_id == user.id, Ticket.status.in_(OPEN))
                .order_by(Ticket.id)
                .with_for_update()
            )
        )
    user.is_active = False
    for ticket in held:
        tickets.change(db, ticket, {"assignee_id": None}, actor=SYSTEM)


@dataclass
class _Turn:
    """A team's members who may take a ticket and their load, read under the lock."""

    team: Team
    members: list[User]
    load: dict[int, int] = field(default_factory=dict)
    picked: dict[int, datetime] = field(default_factory=dict)  # last picked last

    def choose(self) -> User | None:
        cap = self.team.capacity
        room = [m for m in self.members if cap is None or self.load.get(m.id, 0) < cap]
        if not room:
            return None
        if self.team.assignment is Assignment.LEAST_OPEN:
            return min(room, key=lambda m: (self.load.get(m.id, 0), self._assigned_at(m)))
        after = next(reversed(self.picked), None) or self.team.last_assignee_id or 0
        return next((m for m in room if m.id > after), room[0])  # members are in id order

    def _assigned_at(self, member: User) -> datetime:
        return self.picked.get(member.id) or member.last_assigned_at or NEVER

    def assign(self, db: Session, ticket: Ticket, member: User) -> None:
        tickets.change(db, ticket, {"assignee_id": member.id}, actor=SYSTEM)
        self.load[member.id] = self.load.get(member.id, 0) + 1
        self.picked.pop(member.id, None)
        self.picked[member.id] = utcnow()

    def save(self) -> None:
        """Move the turn and each picked member's time (once, not once per ticket)."""
        for member in self.members:
            if member.id in self.picked:
                member.last_assigned_at = self.picked[member.id]
        if self.picked:
            self.team.last_assignee_id = next(reversed(self.picked))


def _take_turn(db: Session, team_id: int, *, wait: bool) -> _Turn | None:
    """Take the assignment lock, then read the team, its members who may take a ticket (active,
    available staff, by id) and their load over all teams; None for a manual or deleted team,
    or when the lock is taken elsewhere and `wait` is false."""
    if wait:
        backend(db).lock(db, ASSIGNMENT_LOCK)
    elif not backend(db).try_lock(db, ASSIGNMENT_LOCK):
        return None
    # The team read afresh by a write: on SQLite it takes the one writer's turn before the
    # load is read.
    fresh = {"populate_existing": True}
    team = db.scalars(
        update(Team)
        .where(Team.id == team_id)
        .values(last_assignee_id=Team.last_assignee_id)
        .returning(Team)
        .execution_options(**fresh)
    ).first()
    if team is None or team.assignment not in AUTOMATIC:
        return None
    members = list(
        db.scalars(
            select(User)
            .join(TeamMember, TeamMember.user_id == User.id)
            .where(
                TeamMember.team_id == team_id,
                User.is_active.is_(True),
                User.available.is_(True),
                User.role.in_((Role.AGENT, Role.ADMIN)),
            )
            .order_by(User.id)
            .with_for_update(of=User, key_share=True)
            .execution_options(**fresh)
        )
    )
    load = db.execute(
        select(Ticket.assignee_id, func.count())
        .where(Ticket.assignee_id.in_([m.id for m in members]), Ticket.status.in_(OPEN))
        .group_by(Ticket.assignee_id)
    )
    return _Turn(team, members, {user_id: count for user_id, count in load if user_id})


def _queued_teams(db: Session, *, member_id: int | None = None) -> list[int]:
    """Round-robin and least-open teams (of one member, or all) with a ticket waiting."""
    waiting = exists().where(
        Ticket.team_id == Team.id, Ticket.assignee_id.is_(None), Ticket.status.in_(OPEN)
    )
    query = select(Team.id).where(Team.assignment.in_(AUTOMATIC), waiting).order_by(Team.id)
    if member_id is not None:
        query = query.join(TeamMember, TeamMember.team_id == Team.id).where(
            TeamMember.user_id == member_id
        )
    return list(db.scalars(query))
