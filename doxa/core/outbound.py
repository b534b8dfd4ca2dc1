"""Outbound mail: acknowledgments and public staff replies, sent through OUTBOUND_SMTP_URL.

Each message carries a Message-ID, In-Reply-To and References so that the customer's answer
threads back, and the ticket's [#id] in the subject. Delivery is at least once: a crash between
the relay's "250" and our commit sends that message again on the next run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import smtplib
import ssl
import threading
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import unquote, urlsplit

import anyio
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from doxa.core.addresses import ascii_address
from doxa.core.config import Settings
from doxa.core.db import is_postgresql, transaction
from doxa.core.enums import DeliveryState, Direction
from doxa.core.errors import InvalidInput
from doxa.core.intake.ack_texts import NEUTRAL_SUBJECT
from doxa.core.intake.threads import SUBJECT_TOKEN
from doxa.core.message_ids import new_message_id
from doxa.core.tickets.models import Message, Ticket

log = logging.getLogger(__name__)
MAX_REFERENCES = 20
_DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


@dataclass(frozen=True, slots=True)
class Relay:
    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> Relay:
        """`smtp://host:port`, `smtp+starttls://user:pass@host:587` or `smtps://host:465`."""
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise InvalidInput("must look like smtp://host:port, smtp+starttls:// or smtps://")
        return cls(
            parts.scheme, parts.hostname, parts.port or _DEFAULT_PORTS[parts.scheme],
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
        )  # fmt: skip

    def send(self, mail: EmailMessage, *, timeout: float = 30.0) -> None:
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if self.scheme == "smtps":
            client = smtplib.SMTP_SSL(self.host, self.port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=timeout)
        with client:
            if self.scheme == "smtp+starttls":
                client.starttls(context=context)
            if self.username:
                client.login(self.username, self.password or "")
            client.send_message(mail)


def compose(db: Session, message: Message, *, settings: Settings) -> EmailMessage:
    """The email for an outbound message, threaded into the ticket's conversation."""
    ticket = db.get_one(Ticket, message.ticket_id)
    mailbox = ticket.mailbox or settings.support_addresses[0].address
    local, _, domain = mailbox.partition("@")
    if message.message_id is None:
        message.message_id = new_message_id(settings.secret, ticket_id=ticket.id, domain=domain)
    earlier, answering = _earlier_ids(db, message)
    mail = EmailMessage()
    # An Address, not formataddr: a name with both non-ASCII and a comma stays one address.
    mail["From"] = Address(display_name=settings.support_name, addr_spec=mailbox)
    mail["Reply-To"] = f"{local}+{ticket.id}@{domain}"  # threads even if headers are lost
    mail["To"] = ascii_address(ticket.requester.email)  # stored in Unicode (core.addresses)
    # An acknowledgment carries the subject chosen when it was recorded (its text's).
    subject = message.subject or outbound_subject(ticket, automatic=message.author_id is None)
    mail["Subject"] = subject if message.author_id is None else f"Re: {subject}"
    mail["Message-ID"] = f"<{message.message_id}>"
    mail["Date"] = format_datetime(message.created_at)
    if earlier:
        mail["In-Reply-To"] = f"<{message.in_reply_to or answering or earlier[-1]}>"
        mail["References"] = " ".join(f"<{mid}>" for mid in earlier[-MAX_REFERENCES:])
    if message.author_id is None:  # RFC 3834: machine answers say so, and nobody answers them
        mail["Auto-Submitted"] = "auto-replied"
        mail["X-Auto-Response-Suppress"] = "All"
    mail.set_content(message.body)
    return mail


def outbound_subject(ticket: Ticket, *, automatic: bool) -> str:
    """`[#id] subject`: this ticket's reference only, even if the customer's subject carried
    another ticket's (a reply to it would otherwise thread there)."""
    subject = " ".join(SUBJECT_TOKEN.sub(" ", ticket.subject).split())
    if automatic:
        # An automatic message recorded without its own subject: whoever wrote from (or typed)
        # someone else's address must not choose what they are sent.
        subject = NEUTRAL_SUBJECT
    return f"{ticket.reference} {subject}".strip()


def _earlier_ids(db: Session, message: Message) -> tuple[list[str], str | None]:
    """The thread's Message-IDs, oldest first, and the customer's latest one (what we answer)."""
    query = select(Message.message_id, Message.direction).where(
        Message.ticket_id == message.ticket_id, Message.id < message.id,
        Message.internal.is_(False), Message.message_id.is_not(None),
    ).order_by(Message.id)  # fmt: skip
    rows = [(mid, direction) for mid, direction in db.execute(query) if mid]
    answering = next((mid for mid, d in reversed(rows) if d is Direction.IN), None)
    return [mid for mid, _ in rows], answering


def queued_count(db: Session) -> int:
    """How many outbound messages wait for the relay (the outbox's depth)."""
    query = select(func.count()).where(Message.delivery_state == DeliveryState.QUEUED)
    return db.scalar(query) or 0


class Outbox:
    """Sends queued outbound messages; one sender per process, row locks across processes."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.settings, self.sessions = settings, sessions
        self.relay = Relay.parse(settings.outbound_smtp_url) if settings.outbound_smtp_url else None
        self._lock = threading.Lock()

    def send_queued(self, limit: int = 50) -> int:
        """Send what is queued; returns how many were sent."""
        relay = self.relay
        if relay is None:
            return 0
        with self._lock:
            with transaction(self.sessions) as db:
                ids = list(db.scalars(
                    select(Message.id).where(Message.delivery_state == DeliveryState.QUEUED)
                    .order_by(Message.id).limit(limit)
                ))  # fmt: skip
            return sum(self._send_or_fail(relay, message_id) for message_id in ids)

    def _send_or_fail(self, relay: Relay, message_id: int) -> bool:
        """One message's fault stays with it: it is marked failed and the queue moves on."""
        try:
            return self._send_one(relay, message_id)
        except Exception as exc:
            log.warning("outbound message %s failed: %s", message_id, type(exc).__name__)
            with transaction(self.sessions) as db:
                message = db.get(Message, message_id)
                if message is not None and message.delivery_state is DeliveryState.QUEUED:
                    message.delivery_state = DeliveryState.FAILED
                    message.delivery_error = f"cannot be composed or sent: {exc}"[:2000]
            return False

    def _send_one(self, relay: Relay, message_id: int) -> bool:
        with transaction(self.sessions) as db:
            query = select(Message).where(
                Message.id == message_id, Message.delivery_state == DeliveryState.QUEUED,
                Message.direction == Direction.OUT,
            ).with_for_update(skip_locked=True)  # fmt: skip
            message = db.scalar(query)
            if message is None:
                return False  # sent meanwhile, or another process holds it
            mail = compose(db, message, settings=self.settings)
            if is_postgresql(db):
                return _deliver(relay, message, mail)  # the row lock spans the send
        # SQLite has one write lock for the whole file: never hold it across the network.
        # The process-wide lock keeps this process from sending the message twice.
        with transaction(self.sessions) as db:
            return _deliver(relay, db.get_one(Message, message_id), mail)


def _deliver(relay: Relay, message: Message, mail: EmailMessage) -> bool:
    try:
        relay.send(mail)
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as exc:
        message.delivery_state, message.delivery_error = DeliveryState.FAILED, str(exc)
        return False
    except (smtplib.SMTPNotSupportedError, UnicodeError) as exc:
        # e.g. a non-ASCII address and a relay without SMTPUTF8: no retry will change that.
        message.delivery_state, message.delivery_error = DeliveryState.FAILED, str(exc)
        return False
    except smtplib.SMTPResponseException as exc:
        permanent = exc.smtp_code >= 500
        message.delivery_error = f"{exc.smtp_code} {exc.smtp_error!r}"
        if permanent:
            message.delivery_state = DeliveryState.FAILED
        return False
    except (OSError, smtplib.SMTPException) as exc:  # relay down: stays queued, retried
        log.warning("outbound message %s not sent yet: %s", message.id, exc)
        message.delivery_error = str(exc)
        return False
    message.delivery_state, message.delivery_error = DeliveryState.SENT, None
    log.info(
        "outbound message %s of ticket %s sent to %s", message.id, message.ticket_id, mail["To"]
    )
    return True


class OutboxRunner:
    """Sends queued mail soon after a kick, and every `every` seconds while a relay is down."""

    def __init__(self, outbox: Outbox, *, every: float = 15.0) -> None:
        self.outbox, self.every = outbox, every
        self._kick = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def kick(self) -> None:
        """Ask for a run soon; safe from any thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._kick.set)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.outbox.relay is not None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.every)
            self._kick.clear()
            try:
                await anyio.to_thread.run_sync(self.outbox.send_queued)
            except Exception:
                log.exception("outbox run failed; retrying later")
