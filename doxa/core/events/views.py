"""The feed as each reader sees it (`GET /events`, `/events/stream`): a client the public
events of the tickets they may read, without `ai_*` or staff-only fields; agents every event but
`intake.*`; admins all. Built on `feed`, whose order never skips an event that commits late."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, and_, delete, select, true, tuple_
from sqlalchemy.orm import Session

from doxa.core.auth import Tokens
from doxa.core.db import utcnow
from doxa.core.enums import Role
from doxa.core.errors import InvalidInput, Unauthenticated
from doxa.core.events import feed
from doxa.core.events.feed import Position
from doxa.core.events.history import INTAKE
from doxa.core.events.models import Event, StreamTicket
from doxa.core.schemas import MAX_ID, Page
from doxa.core.tickets.access import readable_by
from doxa.core.tickets.models import Ticket
from doxa.core.tickets.schemas import EventRead
from doxa.core.users import service as users
from doxa.core.users.models import User

STREAM_TICKET_SECONDS = 60


def visible_to(actor: User) -> ColumnElement[bool]:
    """The events `actor` may read, as a condition of the query (SPEC's permissions table)."""
    if actor.role is Role.ADMIN:
        return true()
    staff = Event.type.not_like(INTAKE)
    if actor.role is Role.AGENT:
        return staff
    tickets = readable_by(actor).with_only_columns(Ticket.id).scalar_subquery()
    return and_(staff, Event.public.is_(True), Event.ticket_id.in_(tickets))


# The cursor is the place in the feed: (writing transaction, id), opaque to the reader.


def encode_cursor(place: Position) -> str:
    return base64.urlsafe_b64encode(f"feed:{place.xact}:{place.id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInput("cursor is not valid") from None
    kind, xact, event_id = [*text.split(":"), "", ""][:3]
    if kind != "feed" or not (xact.isdigit() and event_id.isdigit()) or len(xact) > 20:
        raise InvalidInput("cursor is not valid")
    if int(event_id) > MAX_ID:
        raise InvalidInput("cursor is not valid")
    return Position(int(xact), int(event_id))


def start_of(db: Session, *, after: int | None, cursor: str | None) -> Position:
    """Where a reader resumes: its cursor, else the place after event `after`, else the start
    (a cursor wins: it names the place without a lookup)."""
    if cursor:
        return decode_cursor(cursor)
    if after:
        return feed.position_of(db, after)
    return feed.START


def page(db: Session, actor: User, start: Position, *, limit: int) -> Page[EventRead]:
    """Up to `limit` events after `start` that `actor` may read, in the feed's order.
    `next_cursor` is always given (the feed has no end): the place to ask from next."""
    events = feed.after(db, start, limit=limit, where=visible_to(actor))
    last = feed.position(events[-1]) if events else start
    return Page(
        items=[EventRead.seen_by(event, actor.role) for event in events],
        next_cursor=encode_cursor(last),
    )


@dataclass(frozen=True, slots=True)
class Rendered:
    """One event made ready for every kind of reader (the stream's fan-out renders each event
    once, then each stream picks its view): the staff view and the client's, as SSE data."""

    place: Position
    id: int
    type: str
    ticket_id: int | None
    requester_id: int | None  # the ticket's requester now; clients see only their own
    public: bool
    staff: str
    client: str

    def for_reader(self, role: Role, user_id: int) -> str | None:
        """The JSON this reader receives, or None when the event is not theirs to see."""
        if role is Role.ADMIN:
            return self.staff
        if self.type.startswith(INTAKE.rstrip("%")):
            return None
        if role is Role.AGENT:
            return self.staff
        if self.public and self.ticket_id is not None and self.requester_id == user_id:
            return self.client
        return None


def render(db: Session, events: list[Event]) -> list[Rendered]:
    """The events with both views and their tickets' requesters (one query for the batch)."""
    ticket_ids = {event.ticket_id for event in events if event.ticket_id is not None}
    requesters: dict[int, int | None] = {}
    if ticket_ids:
        rows = db.execute(select(Ticket.id, Ticket.requester_id).where(Ticket.id.in_(ticket_ids)))
        requesters = {ticket_id: requester for ticket_id, requester in rows}
    return [
        Rendered(
            place=feed.position(event),
            id=event.id,
            type=event.type,
            ticket_id=event.ticket_id,
            requester_id=requesters.get(event.ticket_id) if event.ticket_id is not None else None,
            public=event.public,
            staff=_json(EventRead.seen_by(event, Role.AGENT)),
            client=_json(EventRead.seen_by(event, Role.CLIENT)),
        )
        for event in events
    ]


def _json(event: EventRead) -> str:
    return json.dumps(event.model_dump(mode="json"), separators=(",", ":"), ensure_ascii=False)


def between(
    db: Session, actor: User, start: Position, end: Position, *, limit: int
) -> list[tuple[Position, int, str, str]]:
    """What `actor` may read after `start` up to and including `end`: (place, id, type, JSON),
    a resuming stream's catch-up before it takes the live events after `end`."""
    upto: ColumnElement[bool]
    if feed.by_transaction(db):
        upto = tuple_(Event.xact, Event.id) <= tuple_(end.xact, end.id)
    else:
        upto = Event.id <= end.id
    events = feed.after(db, start, limit=limit, where=and_(visible_to(actor), upto))
    return [
        (feed.position(event), event.id, event.type, _json(EventRead.seen_by(event, actor.role)))
        for event in events
    ]


# Who reads a stream, checked again at each keep-alive.


@dataclass(frozen=True, slots=True)
class Reader:
    user_id: int
    role: Role
    token_version: int
    token: str | None  # the bearer token it came with (its expiry counts), None for a ticket


def reader_of_token(db: Session, tokens: Tokens, token: str) -> tuple[Reader, User]:
    user = users.user_for_token(db, tokens, token)
    return Reader(user.id, user.role, user.token_version, token), user


def issue_ticket(db: Session, user: User, *, seconds: int = STREAM_TICKET_SECONDS) -> str:
    """A single-use ticket that opens one stream for `user` within `seconds`; expired ones go."""
    now = utcnow()
    db.execute(delete(StreamTicket).where(StreamTicket.expires_at <= now))
    ticket = secrets.token_urlsafe(32)
    db.add(
        StreamTicket(
            digest=_digest(ticket),
            user_id=user.id,
            token_version=user.token_version,
            expires_at=now + timedelta(seconds=seconds),
        )
    )
    db.flush()
    return ticket


def redeem_ticket(db: Session, ticket: str) -> tuple[Reader, User]:
    """The reader a stream ticket opens a stream for; it is deleted, so it opens one stream
    however many processes it is presented to (the DELETE decides). Unauthenticated for an
    unknown, used or expired ticket, or one whose user has since changed password or left."""
    if not ticket or len(ticket) > 128:
        raise Unauthenticated("invalid stream ticket")
    row = db.execute(
        delete(StreamTicket)
        .where(StreamTicket.digest == _digest(ticket))
        .returning(StreamTicket.user_id, StreamTicket.token_version, StreamTicket.expires_at)
    ).first()
    if row is None or row.expires_at <= utcnow():
        raise Unauthenticated("invalid, used or expired stream ticket")
    user = db.get(User, row.user_id)
    if user is None or not user.is_active or user.token_version != row.token_version:
        raise Unauthenticated("invalid stream ticket")
    return Reader(user.id, user.role, user.token_version, None), user


def _digest(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


def still_valid(db: Session, tokens: Tokens, reader: Reader) -> bool:
    """Whether the reader may go on: still active, the same role, the token still good."""
    try:
        if reader.token is not None:
            user = users.user_for_token(db, tokens, reader.token)
        else:
            found = db.get(User, reader.user_id)
            if found is None or not found.is_active:
                return False
            user = found
    except Unauthenticated:
        return False
    return user.role is reader.role and user.token_version == reader.token_version
