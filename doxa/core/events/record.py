"""Writing events: one row per change, in the transaction of the change (the caller's)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import inspect, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from doxa.core.db import utcnow
from doxa.core.enums import ActorType, EventType
from doxa.core.events import snapshots
from doxa.core.events.models import Event
from doxa.core.intake.models import IntakeEvent
from doxa.core.tickets.models import Message, Ticket
from doxa.core.users.models import User


@dataclass(frozen=True)
class Actor:
    """Who made a change: a user, a routing rule (its name kept for when it is gone), or DOXA."""

    type: ActorType
    id: int | None = None
    name: str | None = None

    @classmethod
    def of(cls, user: User | None) -> Actor:
        return SYSTEM if user is None else cls(ActorType.USER, user.id)

    @classmethod
    def rule(cls, rule_id: int, name: str) -> Actor:
        return cls(ActorType.RULE, rule_id, name)


SYSTEM = Actor(ActorType.SYSTEM)


def record(
    db: Session,
    ticket: Ticket | None,
    type: EventType,
    *,
    actor: Actor,
    data: dict[str, Any] | None = None,
    changes: dict[str, list[Any]] | None = None,
    public: bool = True,
    subject: Message | IntakeEvent | None = None,
) -> Event:
    """Add an event for a change already applied to the objects.

    `data` is the object after the change: given, or the snapshot of `subject` (a message, an
    intake event), else of the ticket, as staff read it through the API. A ticket's next
    `sequence` is taken with an atomic UPDATE, so concurrent writers (several processes on
    PostgreSQL) never share one; the ticket's `updated_at` moves with it."""
    sequence = None
    if ticket is not None:
        if ticket.id is None:
            db.flush()
        sequence = _next_sequence(db, ticket)
    if data is None:
        data = _snapshot(db, subject if subject is not None else ticket)
    event = Event(
        type=str(type),
        ticket_id=ticket.id if ticket is not None else None,
        sequence=sequence,
        actor_type=actor.type,
        actor_id=actor.id,
        actor_name=actor.name,
        data=data,
        changes=None if changes is None else snapshots.jsonable(changes),
        public=public,
    )
    db.add(event)
    return event


def _next_sequence(db: Session, ticket: Ticket) -> int:
    """The first event of a ticket in a transaction takes the counter with an UPDATE, which
    locks the row until the commit (SQLite: the one writer's lock); later ones count on from
    it without a statement, the counter written with the ticket's next flush."""
    now = utcnow()
    if ticket.id in _sequenced(db):
        sequence = ticket.event_sequence + 1
        ticket.event_sequence, ticket.updated_at = sequence, now
        return sequence
    sequence = db.execute(
        update(Ticket)
        .where(Ticket.id == ticket.id)
        .values(event_sequence=Ticket.event_sequence + 1, updated_at=now)
        .returning(Ticket.event_sequence)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    set_committed_value(ticket, "event_sequence", sequence)
    if inspect(ticket).modified:  # written by the next flush: with this time, not a later one
        ticket.updated_at = now
    else:
        set_committed_value(ticket, "updated_at", now)
    _sequenced(db).add(ticket.id)
    return int(sequence)


def _sequenced(db: Session) -> set[int]:
    """Tickets whose row this transaction has locked by taking a sequence. Kept per savepoint:
    rolling one back releases the locks taken in it (PostgreSQL), so a lock counts only in the
    savepoint that took it (one more UPDATE after a savepoint ends, never a shared number)."""
    transaction = db.get_nested_transaction() or db.get_transaction()
    memo = db.info.get("doxa.sequenced")
    if memo is None or memo[0] is not transaction:
        memo = db.info["doxa.sequenced"] = (transaction, set())
    locked: set[int] = memo[1]
    return locked


def _snapshot(db: Session, subject: Ticket | Message | IntakeEvent | None) -> dict[str, Any]:
    if subject is None:
        return {}
    if subject.id is None:
        db.flush()
    if isinstance(subject, Message):
        return snapshots.of_message(subject)
    if isinstance(subject, IntakeEvent):
        return snapshots.of_intake(subject)
    return snapshots.of_ticket(subject)
