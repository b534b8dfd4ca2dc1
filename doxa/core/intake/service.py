"""The intake log for admins: every inbound event with its outcome."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from doxa.core.enums import Channel, IntakeStatus, Role
from doxa.core.errors import NotFound
from doxa.core.intake.models import IntakeEvent
from doxa.core.schemas import MAX_PAGE_SIZE, decode_cursor, encode_cursor
from doxa.core.users.models import User
from doxa.core.users.service import require_role


def list_events(
    db: Session,
    *,
    actor: User,
    status: IntakeStatus | None,
    channel: Channel | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[IntakeEvent], str | None]:
    """Newest first, optionally one status or channel."""
    require_role(actor, Role.ADMIN)
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    query = select(IntakeEvent).order_by(IntakeEvent.id.desc()).limit(limit + 1)
    if status is not None:
        query = query.where(IntakeEvent.status == status)
    if channel is not None:
        query = query.where(IntakeEvent.channel == channel)
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(IntakeEvent.id < after)
    rows = list(db.scalars(query))
    page = rows[:limit]
    return page, encode_cursor(page[-1].id) if len(rows) > limit else None


def get_event(db: Session, event_id: int, *, actor: User) -> IntakeEvent:
    require_role(actor, Role.ADMIN)
    event = db.get(IntakeEvent, event_id)
    if event is None:
        raise NotFound(f"intake event {event_id} not found")
    return event


def failed_ids(db: Session) -> list[int]:
    query = select(IntakeEvent.id).where(IntakeEvent.status == IntakeStatus.FAILED)
    return list(db.scalars(query.order_by(IntakeEvent.id)))
