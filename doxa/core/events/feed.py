"""Reading events in the order they became visible, so a reader never skips one that commits
late: the feed (`GET /events`, the stream) and the consumers that send events out.

On PostgreSQL event ids are taken at INSERT, so a transaction may commit id 5 after another
committed id 6; a reader that had served 6 would never see 5. Each event keeps its writing
transaction (`Event.xact`), events are served in (xact, id) order, and only those whose
transaction is older than every transaction still open (the snapshot's xmin): any event that can
still commit comes after them. SQLite has one writer at a time, so its ids commit in order.
The price: a transaction left open anywhere on the PostgreSQL server (any database) holds the
feed back until it ends; `idle_in_transaction_session_timeout` bounds a forgotten one.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, ColumnElement, Select, func, literal_column, select, tuple_
from sqlalchemy.orm import Session

from doxa.core.db import backend
from doxa.core.events.models import Event, EventCursor

# Older than every open transaction (the statement's own snapshot decides).
_HORIZON: ColumnElement[int] = literal_column(
    "pg_snapshot_xmin(pg_current_snapshot())::text::bigint", BigInteger
)


@dataclass(frozen=True, order=True)
class Position:
    """A place in the feed: after the event `id` written by transaction `xact` (0 on SQLite)."""

    xact: int
    id: int


START = Position(0, 0)


def by_transaction(db: Session) -> bool:
    """Whether the feed is ordered by (xact, id) (PostgreSQL) rather than by id (SQLite)."""
    return not backend(db).orders_commits_by_id


_by_transaction = by_transaction


def position_of(db: Session, event_id: int) -> Position:
    """The place just after event `event_id` (an SSE Last-Event-ID, an `after=`); for an id
    that no longer exists or never did, the place of the events before it."""
    if not _by_transaction(db):
        return Position(0, event_id)
    xact = db.scalar(select(Event.xact).where(Event.id == event_id))
    if xact is None:
        xact = db.scalar(select(func.max(Event.xact)).where(Event.id <= event_id)) or 0
    return Position(xact, event_id)


def position(event: Event) -> Position:
    return Position(event.xact or 0, event.id)


def _readable(db: Session, query: Select[Event]) -> Select[Event]:
    return query.where(Event.xact < _HORIZON) if _by_transaction(db) else query


def after(
    db: Session,
    start: Position,
    *,
    limit: int,
    where: ColumnElement[bool] | None = None,
) -> list[Event]:
    """Up to `limit` committed events after `start` (and matching `where`), in feed order."""
    query = select(Event)
    if _by_transaction(db):
        query = query.where(tuple_(Event.xact, Event.id) > tuple_(start.xact, start.id))
        query = query.order_by(Event.xact, Event.id)
    else:
        query = query.where(Event.id > start.id).order_by(Event.id)
    if where is not None:
        query = query.where(where)
    return list(db.scalars(_readable(db, query).limit(limit)))


def latest(db: Session) -> Position:
    """The place after the last event a reader may be given now."""
    if _by_transaction(db):
        query = select(Event).order_by(Event.xact.desc(), Event.id.desc())
    else:
        query = select(Event).order_by(Event.id.desc())
    last = db.scalar(_readable(db, query).limit(1))
    return START if last is None else position(last)


def _cursor(db: Session, name: str) -> EventCursor:
    """The consumer's cursor row, locked until the commit; a new consumer starts at the present."""
    cursor = db.get(EventCursor, name, with_for_update=True)
    if cursor is None:
        now = latest(db)
        db.execute(
            backend(db)
            .insert(EventCursor)
            .values(name=name, xact=now.xact, event_id=now.id)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        cursor = db.get_one(EventCursor, name, with_for_update=True, populate_existing=True)
    return cursor


def skip(db: Session, name: str, *, to: Position) -> None:
    """Move the consumer `name` past everything up to `to` without reading it (a consumer with
    nobody to tell: no subscription, no relay). `to` is taken before the caller looked for
    subscribers, so whatever one made since is still read."""
    cursor = _cursor(db, name)
    if to > Position(cursor.xact or 0, cursor.event_id):
        cursor.xact, cursor.event_id = to.xact, to.id
        db.flush()


def consume(db: Session, name: str, *, limit: int) -> list[Event]:
    """The next events for the consumer `name`, its cursor moved past them in this transaction:
    the caller acts on them (queues deliveries, notifications) and commits both at once, so
    each event is taken once, by one process. A new consumer starts at the present."""
    cursor = _cursor(db, name)
    events = after(db, Position(cursor.xact or 0, cursor.event_id), limit=limit)
    if events:
        cursor.xact, cursor.event_id = events[-1].xact, events[-1].id
        db.flush()
    return events
