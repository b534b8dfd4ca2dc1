"""Writing events: one row per change, in the transaction of the change (the caller's)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from doxa.core.enums import ActorType, EventType
from doxa.core.events.models import Event
from doxa.core.tickets.models import Ticket
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
) -> Event:
    """Add an event; a ticket's next `sequence` is taken with an atomic UPDATE, so concurrent
    writers (several processes on PostgreSQL) never share one."""
    sequence = None
    if ticket is not None:
        if ticket.id is None:
            db.flush()
        sequence = db.execute(
            update(Ticket)
            .where(Ticket.id == ticket.id)
            .values(event_sequence=Ticket.event_sequence + 1)
            .returning(Ticket.event_sequence)
            .execution_options(synchronize_session=False)
        ).scalar_one()
    event = Event(
        type=str(type),
        ticket_id=ticket.id if ticket is not None else None,
        sequence=sequence,
        actor_type=actor.type,
        actor_id=actor.id,
        actor_name=actor.name,
        data=data or {},
        changes=changes,
        public=public,
    )
    db.add(event)
    return event
