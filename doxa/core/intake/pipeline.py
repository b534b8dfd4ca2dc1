"""The one ingestion path every channel shares.

    accept   raw bytes -> intake_event (committed by the edge before it says "accepted")
    load     the stored raw input, read in its own short transaction
    normalize  raw -> InboundMessage, by the channel's normalizer (no database)
    apply    loop rules, rate limit, threading -> new ticket or follow-up (one transaction)

Each step is idempotent: `apply` claims the event with a conditional update, so a sweep
that races a worker, or two processes on one database, never make a second ticket.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from email.parser import BytesHeaderParser
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, undefer

from doxa.core.config import Settings
from doxa.core.db import LARGE_VALUE_BYTES, backend, large_value, utcnow
from doxa.core.enums import Channel, EventType, IntakeStatus, ThreadedBy
from doxa.core.errors import Conflict, NotFound, Rejected
from doxa.core.events.record import SYSTEM, record
from doxa.core.intake import keys, ticketing
from doxa.core.intake.inbound import (
    ADDRESS_CHARS,
    InboundMessage,
    envelope_authored,
    storable,
    storable_text,
)
from doxa.core.intake.mail_loops import loop_reason
from doxa.core.intake.mail_threads import Thread, find_thread
from doxa.core.intake.models import IntakeEvent
from doxa.core.intake.outcomes import Outcome
from doxa.core.intake.trust import SPOOFED, Assessment, assess
from doxa.core.tickets.models import Message
from doxa.core.users.models import User

MAX_ERROR_CHARS = 4000
NOT_A_PARTICIPANT = "not_a_participant"
# Statuses that count towards a sender's hourly allowance.
_COUNTED = (IntakeStatus.TICKET_CREATED, IntakeStatus.FOLLOWUP, IntakeStatus.HELD)


@dataclass(frozen=True, slots=True)
class Submission:
    """One inbound submission as an edge received it, before any parsing."""

    channel: Channel
    raw: bytes | bytearray  # a bytearray from the SMTP edge, which builds the message in place
    recipients: list[str]
    envelope_from: str | None = None
    external_id: str | None = None  # Message-ID or Idempotency-Key, when known up front
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RawEvent:
    id: int
    channel: Channel
    raw: bytes
    extra: dict[str, Any]
    envelope_from: str | None = None  # SMTP's MAIL FROM, for input without a header block


Normalizer = Callable[[RawEvent], InboundMessage]


@dataclass(frozen=True, slots=True)
class Accepted:
    """What the edge needs to answer: the event's id and whether it still needs processing;
    for a repeated delivery, its outcome, which the edge logs once it has committed."""

    id: int
    status: IntakeStatus
    outcome: Outcome | None = None


def _accept_statement(db: Session) -> Any:
    """INSERT .. ON CONFLICT DO NOTHING RETURNING id over the table, with bound parameters."""
    return backend(db).insert_or_ignore(IntakeEvent, unique=("dedupe_key",), returning=("id",))


def _accept_many_statement(db: Session) -> Any:
    """As `_accept_statement`, returning each inserted row's dedupe_key too: run with many
    parameter sets, SQLAlchemy sends one multi-row INSERT, and what conflicted returns nothing."""
    return backend(db).insert_or_ignore(
        IntakeEvent, unique=("dedupe_key",), returning=("id", "dedupe_key")
    )


def _bounded(address: str | None) -> str | None:
    """An envelope address that fits its column; a longer one is no address (RFC 5321: 256)."""
    return address if address is None or len(address) <= ADDRESS_CHARS else None


def message_id_of(raw: bytes | bytearray) -> str | None:
    """The Message-ID from the header block alone, for deduplication before a full parse."""
    end = raw.find(b"\r\n\r\n", 0, 65536)
    if end < 0:
        end = raw.find(b"\n\n", 0, 65536)
    head = raw[: end if end >= 0 else 65536]
    value = BytesHeaderParser().parsebytes(head).get("message-id")
    cleaned = storable_text(str(value or "")).strip().strip("<>").strip()
    return cleaned[:900] or None


class Pipeline:
    def __init__(self, settings: Settings, normalizers: Mapping[Channel, Normalizer]) -> None:
        self.settings = settings
        self.normalizers = dict(normalizers)

    def accept(self, db: Session, item: Submission) -> Accepted:
        """Store the raw input; a repeated delivery is recorded as a duplicate of the first.

        One INSERT .. ON CONFLICT DO NOTHING: the common case costs a single round trip
        before the edge commits and answers.
        """
        mailbox = self._mailbox(item.recipients)
        key = self._dedupe_key(item, mailbox)
        row = self._row(item, mailbox) | {"raw": large_value(db, item.raw)}
        result: Any
        if row["raw"] is item.raw:  # a plain value: one statement, built and compiled once
            result = db.connection().execute(_accept_statement(db), row | {"dedupe_key": key})
        else:
            statement = backend(db).insert(IntakeEvent).values(**row, dedupe_key=key)
            result = db.execute(
                statement.on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(
                    IntakeEvent.id
                )
            )
        event_id: int | None = result.scalar()
        if event_id is not None:
            return Accepted(event_id, IntakeStatus.RECEIVED)
        first = db.execute(
            select(IntakeEvent.id, IntakeEvent.ticket_id).where(IntakeEvent.dedupe_key == key)
        ).one()
        duplicate_id = db.execute(
            backend(db)
            .insert(IntakeEvent)
            .values(
                {
                    **row,
                    "status": IntakeStatus.DUPLICATE,
                    "duplicate_of_id": first.id,
                    "ticket_id": first.ticket_id,
                    "processed_at": utcnow(),
                }
            )
            .returning(IntakeEvent.id)
        ).scalar_one()
        sender, ticket_id = row["envelope_from"], first.ticket_id
        outcome = Outcome(
            duplicate_id, item.channel, sender, IntakeStatus.DUPLICATE, ticket_id, None, first.id
        )
        return Accepted(duplicate_id, IntakeStatus.DUPLICATE, outcome)

    def accept_many(self, db: Session, items: list[Submission]) -> list[Accepted]:
        """`accept` for several deliveries in one transaction, in one round trip when none is
        a duplicate: one multi-row INSERT .. ON CONFLICT DO NOTHING for the first delivery of
        each dedupe key. Any other (a repeated key, a row that conflicted, a large value) goes
        through `accept`, which finds the first and records a duplicate."""
        keys = [self._dedupe_key(item, self._mailbox(item.recipients)) for item in items]
        firsts: dict[str, int] = {}
        streams = backend(db).streams_large_values
        for index, (item, key) in enumerate(zip(items, keys, strict=True)):
            if key not in firsts and (len(item.raw) <= LARGE_VALUE_BYTES or not streams):
                firsts[key] = index
        rows = [
            self._row(items[index], self._mailbox(items[index].recipients)) | {"dedupe_key": key}
            for key, index in firsts.items()
        ]
        inserted: dict[str, int] = {}
        if rows:
            result = db.connection().execute(_accept_many_statement(db), rows)
            inserted = {key: event_id for event_id, key in result.all()}
        return [
            Accepted(inserted[key], IntakeStatus.RECEIVED)
            if firsts.get(key) == index and key in inserted
            else self.accept(db, item)
            for index, (item, key) in enumerate(zip(items, keys, strict=True))
        ]

    def _row(self, item: Submission, mailbox: str | None) -> dict[str, Any]:
        return {
            "channel": item.channel,
            "external_id": item.external_id,
            "mailbox": mailbox,
            "envelope_from": _bounded(item.envelope_from),
            "envelope_to": list(item.recipients),
            "raw": item.raw,
            "raw_size": len(item.raw),
            "extra": item.extra,
            "status": IntakeStatus.RECEIVED,
            "received_at": utcnow(),
        }

    def _dedupe_key(self, item: Submission, mailbox: str | None) -> str:
        identity = item.external_id or hashlib.sha256(item.raw).hexdigest()
        return hashlib.sha256(f"{item.channel}|{mailbox or ''}|{identity}".encode()).hexdigest()

    def _mailbox(self, recipients: list[str]) -> str | None:
        boxes = sorted({box.address for r in recipients if (box := self.settings.mailbox(r))})
        return boxes[0] if boxes else None

    def load(self, db: Session, event_id: int) -> RawEvent | None:
        """The raw input of an event still waiting to be processed, else None."""
        event = db.get(IntakeEvent, event_id)
        if event is None or event.status is not IntakeStatus.RECEIVED:
            return None
        extra = dict(event.extra or {})
        return RawEvent(event.id, event.channel, event.raw, extra, event.envelope_from)

    def load_small(self, db: Session, event_ids: list[int], *, max_bytes: int) -> list[RawEvent]:
        """The raw input of those events still waiting whose raw size is at most `max_bytes`,
        in one query, in id order."""
        query = (
            select(IntakeEvent)
            .where(
                IntakeEvent.id.in_(event_ids),
                IntakeEvent.status == IntakeStatus.RECEIVED,
                IntakeEvent.raw_size <= max_bytes,
            )
            .order_by(IntakeEvent.id)
            .options(undefer(IntakeEvent.raw))
        )
        return [
            RawEvent(e.id, e.channel, e.raw, dict(e.extra or {}), e.envelope_from)
            for e in db.scalars(query)
        ]

    def normalize(self, raw: RawEvent) -> InboundMessage:
        """The channel's message, storable, its author the envelope sender when From: names
        nobody usable (every channel that has an envelope, one rule)."""
        return envelope_authored(storable(self.normalizers[raw.channel](raw)), raw.envelope_from)

    def apply(self, db: Session, event_id: int, msg: InboundMessage) -> IntakeEvent | None:
        """Decide what the message is and make it so; None when another worker got there first."""
        event = self.claim(db, [event_id]).get(event_id)
        return None if event is None else self.apply_claimed(db, event, msg)

    def claim(self, db: Session, event_ids: list[int]) -> dict[int, IntakeEvent]:
        """The events among `event_ids` still waiting, now this transaction's, by id.

        A conditional write, not a read: on PostgreSQL a concurrent claimer waits and then
        matches nothing; on SQLite the write lock serializes claimers the same way. RETURNING
        loads the claimed events in the same round trip.
        """
        claim = (
            update(IntakeEvent)
            .where(IntakeEvent.id.in_(event_ids), IntakeEvent.status == IntakeStatus.RECEIVED)
            .values(attempts=IntakeEvent.attempts + 1)
            .returning(IntakeEvent)
        )
        options = {"synchronize_session": False, "populate_existing": True}
        return {event.id: event for event in db.scalars(claim, execution_options=options)}

    def apply_claimed(self, db: Session, event: IntakeEvent, msg: InboundMessage) -> IntakeEvent:
        """`apply` for an event this transaction has claimed."""
        trust = assess(db, event, msg, self.settings)
        if msg.from_envelope:
            trust = _envelope_author(trust)
        reason = None if event.released_by_id else self._hold_reason(db, event, msg, trust)
        if reason is not None:
            event.status, event.reason = IntakeStatus.HELD, reason
            record(db, None, EventType.INTAKE_HELD, actor=SYSTEM, subject=event, public=False)
        elif (seen := self._seen(db, msg)) is not None:
            event.status, event.reason = IntakeStatus.DUPLICATE, "message_id"
            event.duplicate_of_id, event.ticket_id = seen
        elif (first := self._claim_message_id(db, event, msg)) is not None:
            event.status, event.reason = IntakeStatus.DUPLICATE, "message_id"
            event.duplicate_of_id, event.ticket_id = first.id, first.ticket_id
        else:
            thread = self._thread(db, event, msg, author=trust.author)
            outcome = ticketing.open_or_follow_up(
                db,
                event,
                msg,
                thread,
                settings=self.settings,
                author=trust.author,
                authenticated=trust.authenticated,
                notes=trust.notes,
            )
            event.status, event.ticket_id = outcome.status, outcome.ticket.id
            event.reason = None if thread.participant else NOT_A_PARTICIPANT
        # Set last, so the queries above flush nothing of the event: one UPDATE writes it all.
        event.sender, event.processed_at = msg.sender_email or None, utcnow()
        event.authenticated, event.error = trust.authenticated, None
        db.flush()
        return event

    def _thread(
        self, db: Session, event: IntakeEvent, msg: InboundMessage, *, author: User | None
    ) -> Thread:
        # A typed address, or an envelope sender, proves nothing: always a new ticket.
        if event.channel is Channel.FORM or msg.from_envelope:
            return Thread(None, ThreadedBy.NEW)
        return find_thread(
            db, msg, recipients=event.envelope_to, secret=self.settings.secret, author=author
        )

    def _hold_reason(
        self, db: Session, event: IntakeEvent, msg: InboundMessage, trust: Assessment
    ) -> str | None:
        reason = loop_reason(msg, envelope_from=event.envelope_from)
        if reason is not None:
            return reason
        if self.settings.mailbox(msg.sender_email):
            return "loop"  # mail from one of our own addresses
        if not msg.sender_email:
            return "no_sender"
        if trust.hold is not None:
            return trust.hold
        over = self._over_rate(db, event, msg.sender_email, authenticated=trust.authenticated)
        return "rate_limited" if over else None

    def _over_rate(
        self, db: Session, event: IntakeEvent, sender: str, *, authenticated: bool
    ) -> bool:
        """Authenticated and unauthenticated mail from an address are counted apart: anyone can
        send mail claiming an address, and that must not hold its owner's authenticated mail."""
        recent = select(func.count()).where(
            IntakeEvent.sender == sender,
            IntakeEvent.authenticated.is_(authenticated),
            IntakeEvent.id != event.id,
            IntakeEvent.received_at >= utcnow() - timedelta(hours=1),
            IntakeEvent.status.in_(_COUNTED),
        )
        return (db.scalar(recent) or 0) >= self.settings.sender_hourly_limit

    def _seen(self, db: Session, msg: InboundMessage) -> tuple[int | None, int] | None:
        """(the event that stored it, its ticket) when the Message-ID is on a ticket already
        (another mailbox, or our own outbound copy, which came from no event)."""
        if not msg.message_id:
            return None
        query = select(Message.intake_event_id, Message.ticket_id).where(
            Message.message_id == msg.message_id
        )
        row = db.execute(query.limit(1)).first()
        return None if row is None else (row.intake_event_id, row.ticket_id)

    def _claim_message_id(
        self, db: Session, event: IntakeEvent, msg: InboundMessage
    ) -> IntakeEvent | None:
        """The event that already makes the ticket for this Message-ID, else None (then this
        one does). Copies with different dedupe keys (two mailboxes, two channels) pass `_seen`
        side by side in two workers; the unique key lets one through, and the other waits
        for its commit (PostgreSQL) and becomes its duplicate."""
        if not msg.message_id:
            return None
        digest = hashlib.sha256(msg.message_id.encode("utf-8", "surrogatepass")).hexdigest()
        first_id = keys.claim(db, keys.Claim(keys.MESSAGE_ID, digest, ""), event_id=event.id)
        return None if first_id is None else db.get(IntakeEvent, first_id)

    def fail(
        self, db: Session, event_id: int, error: BaseException, *, reason: str | None = None
    ) -> IntakeEvent | None:
        """Keep the raw input with the reason it could not be processed, for reprocessing; the
        event, or None when it was not `received` (a killed worker committed it: it stays)."""
        event = db.get(IntakeEvent, event_id)
        if event is None or event.status is not IntakeStatus.RECEIVED:
            return None
        event.status, event.processed_at, event.reason = IntakeStatus.FAILED, utcnow(), reason
        event.attempts += 1  # the failed run's own claim, if it got that far, was rolled back
        event.error = f"{type(error).__name__}: {error}"[:MAX_ERROR_CHARS]
        db.flush()
        return event

    def reject(self, db: Session, event_id: int, error: Rejected) -> IntakeEvent | None:
        """Keep input that can never become a ticket, final, with the reason (never retried);
        the event, or None when it was not `received`."""
        event = db.get(IntakeEvent, event_id)
        if event is None or event.status is not IntakeStatus.RECEIVED:
            return None
        event.status, event.reason, event.processed_at = (
            IntakeStatus.REJECTED,
            error.reason,
            utcnow(),
        )
        event.error = error.detail[:MAX_ERROR_CHARS]
        record(db, None, EventType.INTAKE_REJECTED, actor=SYSTEM, subject=event, public=False)
        db.flush()
        return event

    def requeue(self, db: Session, event_id: int) -> IntakeEvent:
        """Mark a failed event for another run."""
        return self._run_again(db, event_id, IntakeStatus.FAILED, "reprocessed")

    def release(self, db: Session, event_id: int, *, actor_id: int) -> IntakeEvent:
        """Process a held event as ordinary mail: an admin says a hold rule was wrong."""
        event = self._run_again(db, event_id, IntakeStatus.HELD, "released")
        event.released_by_id = actor_id  # apply() skips the hold rules for it
        db.flush()
        return event

    def _run_again(
        self, db: Session, event_id: int, expected: IntakeStatus, verb: str
    ) -> IntakeEvent:
        event = db.get(IntakeEvent, event_id)
        if event is None:
            raise NotFound(f"intake event {event_id} not found")
        if event.status is not expected:
            raise Conflict(f"only {expected} events are {verb}; this one is {event.status}")
        event.status, event.error, event.reason = IntakeStatus.RECEIVED, None, None
        db.flush()
        return event

    def waiting(
        self, db: Session, *, older_than: timedelta, limit: int = 100
    ) -> list[tuple[int, int]]:
        """Events accepted but never processed (a crash or restart in between): id and raw size."""
        query = (
            select(IntakeEvent.id, IntakeEvent.raw_size)
            .where(
                IntakeEvent.status == IntakeStatus.RECEIVED,
                IntakeEvent.received_at <= utcnow() - older_than,
            )
            .order_by(IntakeEvent.id)
            .limit(limit)
        )
        return [(event_id, size) for event_id, size in db.execute(query)]


def _envelope_author(trust: Assessment) -> Assessment:
    """The author of mail with no usable From: is its envelope sender, which nothing
    authenticates: it is never staff (SPEC: held as spoofed) and never counted as proven."""
    if trust.hold is None and trust.author is not None and trust.author.is_staff:
        return replace(trust, hold=SPOOFED, authenticated=False)
    return replace(trust, authenticated=False)
