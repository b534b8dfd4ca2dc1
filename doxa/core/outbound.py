"""Ticket mail: acknowledgments and public staff replies, sent through the outbox.

Each message carries a Message-ID, In-Reply-To and References so that the customer's answer
threads back, and the ticket's [#id] in the subject. Delivery is at least once: a crash between
the relay's "250" and our commit sends that message again once its lease has expired.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from doxa.core.addresses import ascii_address
from doxa.core.config import Settings
from doxa.core.enums import Direction
from doxa.core.intake.ack_texts import NEUTRAL_SUBJECT
from doxa.core.intake.mail_threads import SUBJECT_TOKEN
from doxa.core.message_ids import new_message_id
from doxa.core.outbox import queue
from doxa.core.outbox.models import OutboxItem, OutboxKind
from doxa.core.outbox.relay import Relay
from doxa.core.tickets.models import Message, Ticket

MAX_REFERENCES = 20


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
    query = (
        select(Message.message_id, Message.direction)
        .where(
            Message.ticket_id == message.ticket_id,
            Message.id < message.id,
            Message.internal.is_(False),
            Message.message_id.is_not(None),
        )
        .order_by(Message.id)
    )
    rows = [(mid, direction) for mid, direction in db.execute(query) if mid]
    answering = next((mid for mid, d in reversed(rows) if d is Direction.IN), None)
    return [mid for mid, _ in rows], answering


def queue_ticket_mail(db: Session, message: Message, *, recipient: str) -> None:
    """Put a queued outbound message in the outbox, in the transaction that recorded it."""
    destination = queue.mail_destination(recipient)
    queue.enqueue(db, OutboxKind.TICKET_MAIL, message.id, destination=destination)


class TicketMail:
    """The outbox's courier for ticket mail (the Message rows with a delivery_state)."""

    def __init__(self, settings: Settings, relay: Relay) -> None:
        self.settings, self.relay = settings, relay

    def prepare(self, db: Session, item: OutboxItem) -> Callable[[], None]:
        mail = compose(db, db.get_one(Message, item.ref_id), settings=self.settings)
        return functools.partial(self.relay.send, mail)

    def settle(self, db: Session, item: OutboxItem, receipt: object) -> None:
        message = db.get_one(Message, item.ref_id)
        message.delivery_state, message.delivery_error = item.state, item.last_error
