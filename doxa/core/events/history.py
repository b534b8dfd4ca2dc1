"""Reading a ticket's history: its events, oldest first, as the reader may see them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from doxa.core.enums import Role
from doxa.core.events.models import Event
from doxa.core.schemas import MAX_PAGE_SIZE, Page, decode_cursor, encode_cursor
from doxa.core.tickets.access import get_readable
from doxa.core.tickets.schemas import EventRead
from doxa.core.users.models import User

INTAKE = "intake.%"


def list_events(
    db: Session,
    ticket_id: int,
    *,
    actor: User,
    cursor: str | None = None,
    limit: int = MAX_PAGE_SIZE,
) -> Page[EventRead]:
    """A page of the ticket's events by `sequence`; NotFound for a ticket the actor may not
    see. A client reads the public ones (no internal notes, no classification failures);
    `intake.*` events are for admins only.

    Keyset paging like every list: the cursor is the last sequence seen, and
    (ticket_id, sequence) is unique, so the index serves each page."""
    get_readable(db, ticket_id, actor=actor)
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    query = select(Event).where(Event.ticket_id == ticket_id)
    if actor.role is Role.CLIENT:
        query = query.where(Event.public.is_(True))
    if actor.role is not Role.ADMIN:
        query = query.where(Event.type.not_like(INTAKE))
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(Event.sequence > after)
    rows = list(db.scalars(query.order_by(Event.sequence).limit(limit + 1)))
    page = rows[:limit]
    last = page[-1].sequence if page else None
    return Page(
        items=[EventRead.seen_by(event, actor.role) for event in page],
        next_cursor=encode_cursor(last) if len(rows) > limit and last is not None else None,
    )
