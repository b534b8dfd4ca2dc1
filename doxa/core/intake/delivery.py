"""Turn a normalized inbound message into a new ticket or a follow-up on its thread."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy.orm import Session

from doxa.core.config import Settings
from doxa.core.enums import (
    Channel,
    ClassificationState,
    DeliveryState,
    Direction,
    IntakeStatus,
    Status,
)
from doxa.core.intake.inbound import InboundMessage
from doxa.core.intake.models import IntakeEvent
from doxa.core.intake.text import strip_reply
from doxa.core.intake.threads import Thread
from doxa.core.tickets.models import Attachment, Message, Ticket
from doxa.core.tickets.service import add_text, record
from doxa.core.users import service as users

ACKNOWLEDGMENT = (
    "Thank you for your message. We have opened ticket {reference} and will answer soon.\n"
    "Please keep {reference} in the subject when you write about this request."
)


@dataclass(frozen=True, slots=True)
class Outcome:
    status: IntakeStatus
    ticket: Ticket


def deliver(
    db: Session, event: IntakeEvent, msg: InboundMessage, thread: Thread, *, settings: Settings
) -> Outcome:
    ticket = thread.ticket
    if ticket is not None and ticket.status is not Status.CLOSED:
        _store(db, ticket, event, msg, body=strip_reply(msg.text) or msg.text, thread=thread)
        _reopen(db, ticket)
        return Outcome(IntakeStatus.FOLLOWUP, ticket)
    # A reply to a closed ticket starts a new one that points back to it.
    new = _open(db, event, msg, settings=settings, previous=ticket)
    return Outcome(IntakeStatus.TICKET_CREATED, new)


def _open(
    db: Session, event: IntakeEvent, msg: InboundMessage, *, settings: Settings,
    previous: Ticket | None,
) -> Ticket:  # fmt: skip
    requester = users.requester_for(db, email=msg.sender_email, name=msg.sender_name)
    box = settings.mailbox(event.mailbox) if event.mailbox else None
    ticket = Ticket(
        subject=msg.subject, channel=event.channel, requester=requester, mailbox=event.mailbox,
        pinned_category=box.category if box else None, category=box.category if box else None,
        previous_ticket_id=previous and previous.id,
        classification_state=ClassificationState.PENDING, meta=dict(event.extra.get("fields", {})),
        search_text=msg.subject,
    )  # fmt: skip
    db.add(ticket)
    db.flush()
    _store(db, ticket, event, msg, body=msg.text, thread=None)
    record(db, ticket, actor=None, field="created", old=None, new=ticket.status)
    _acknowledge(db, ticket, msg, settings=settings)
    return ticket


def _store(
    db: Session, ticket: Ticket, event: IntakeEvent, msg: InboundMessage, *, body: str,
    thread: Thread | None,
) -> Message:  # fmt: skip
    author = users.requester_for(db, email=msg.sender_email, name=msg.sender_name)
    message = Message(
        ticket_id=ticket.id, author_id=author.id, direction=Direction.IN, internal=False,
        body=body, full_body=msg.text, html=msg.html, message_id=msg.message_id,
        in_reply_to=msg.in_reply_to[0] if msg.in_reply_to else None,
        threaded_by=thread.rule if thread else "new", notes=list(msg.notes),
        intake_event_id=event.id,
    )  # fmt: skip
    add_text(db, ticket, message)
    for part in msg.attachments:
        db.add(Attachment(
            message_id=message.id, filename=part.filename, content_type=part.content_type,
            size=part.size, sha256=part.sha256, content_id=part.content_id, inline=part.inline,
            content=part.content,
        ))  # fmt: skip
    db.flush()
    return message


def _reopen(db: Session, ticket: Ticket) -> None:
    """The requester wrote again: a resolved or pending ticket needs us once more."""
    if ticket.status in (Status.RESOLVED, Status.PENDING):
        record(db, ticket, actor=None, field="status", old=ticket.status, new=Status.OPEN)
        ticket.status = Status.OPEN


def _acknowledge(db: Session, ticket: Ticket, msg: InboundMessage, *, settings: Settings) -> None:
    """Record the automatic answer; it threads the customer's reply back by its Message-ID.

    A form's typed address is unproven: no answer unless FORM_ACKNOWLEDGE asks for one."""
    if ticket.channel is Channel.FORM and not settings.form_acknowledge:
        return
    domain = (ticket.mailbox or settings.support_addresses[0].address).rpartition("@")[2]
    body = ACKNOWLEDGMENT.format(reference=ticket.reference)
    db.add(Message(
        ticket_id=ticket.id, author_id=None, direction=Direction.OUT, internal=False,
        body=body, full_body=body, message_id=f"doxa.{ticket.id}.{secrets.token_hex(8)}@{domain}",
        in_reply_to=msg.message_id, notes=["automatic acknowledgment"],
        delivery_state=DeliveryState.QUEUED if settings.outbound_smtp_url
        else DeliveryState.NOT_SENT,
    ))  # fmt: skip
    db.flush()
