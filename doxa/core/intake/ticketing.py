"""Turn a normalized inbound message into a new ticket or a follow-up on its thread."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from doxa.core.config import Settings
from doxa.core.enums import (
    Channel,
    ClassificationState,
    Direction,
    EventType,
    IntakeStatus,
    Status,
)
from doxa.core.events.record import SYSTEM, Actor, record
from doxa.core.intake import acknowledgments
from doxa.core.intake.inbound import MAX_CC, InboundMessage
from doxa.core.intake.mail_threads import Thread
from doxa.core.intake.models import IntakeEvent
from doxa.core.intake.text import strip_reply
from doxa.core.sla import clock
from doxa.core.teams import assignment
from doxa.core.teams.service import team_for_mailbox
from doxa.core.tickets.models import Attachment, Message, Ticket
from doxa.core.tickets.service import add_text, change
from doxa.core.users import service as users
from doxa.core.users.models import User

# In an intake event's `extra`: False when the edge asks for no acknowledgment (`doxa ingest`
# of files without --acknowledge).
ACKNOWLEDGE = "acknowledge"


@dataclass(frozen=True, slots=True)
class Ticketed:
    status: IntakeStatus
    ticket: Ticket


def open_or_follow_up(
    db: Session,
    event: IntakeEvent,
    msg: InboundMessage,
    thread: Thread,
    *,
    settings: Settings,
    author: User | None,
    authenticated: bool = False,
    notes: tuple[str, ...] = (),
) -> Ticketed:
    """A follow-up when a participant names an open ticket; otherwise a new ticket, linked to
    the one named (closed, or not the author's to write into). The Cc: of an opening message
    become participants; of a follow-up, only when it is authenticated or staff wrote it.
    Staff answering an agent's notification (`thread.notification`) add an internal note.

    `author` is the user the From: address names (the caller looked it up); an address with no
    user becomes a client here."""
    sender = author or users.new_requester(db, email=msg.sender_email, name=msg.sender_name)
    ticket = thread.ticket
    if ticket is not None and thread.participant and ticket.status is not Status.CLOSED:
        body = strip_reply(msg.text) or msg.text
        # Staff answering a notification write to their colleagues, not to the customer; the
        # ticket's cc, status and service level stay as they were.
        note = thread.notification and sender.is_staff
        message = _store(
            db, ticket, event, msg, sender, body=body, thread=thread, notes=notes, internal=note
        )
        record(
            db,
            ticket,
            EventType.MESSAGE_CREATED,
            actor=Actor.of(sender),
            subject=message,
            public=not note,
        )
        if note:
            return Ticketed(IntakeStatus.FOLLOWUP, ticket)
        wanted: dict[str, object] = {}
        if authenticated or sender.is_staff:  # anyone can forge a participant's From: and Cc:
            wanted["cc"] = _copied(ticket, msg, settings=settings)
        if ticket.status in (Status.RESOLVED, Status.PENDING):
            wanted["status"] = Status.OPEN  # the requester wrote again: it needs us once more
        change(db, ticket, wanted, actor=SYSTEM)
        if sender.is_staff:  # staff writing into the thread by mail answer the customer
            clock.responded(db, ticket)
        else:
            clock.customer_wrote(db, ticket)
        return Ticketed(IntakeStatus.FOLLOWUP, ticket)
    new = _open(
        db,
        event,
        msg,
        sender,
        settings=settings,
        previous=ticket,
        notes=notes,
        authenticated=authenticated and event.channel is not Channel.FORM,
    )
    if _acknowledged(event, settings=settings):
        acknowledgments.acknowledge(db, new, msg, settings=settings, authenticated=authenticated)
    return Ticketed(IntakeStatus.TICKET_CREATED, new)


def _acknowledged(event: IntakeEvent, *, settings: Settings) -> bool:
    """A form's typed address is unproven: no answer unless FORM_ACKNOWLEDGE asks for one. An
    archive fed to `doxa ingest` is old mail: none unless `--acknowledge` (SPEC)."""
    if event.channel is Channel.FORM and not settings.form_acknowledge:
        return False
    return (event.extra or {}).get(ACKNOWLEDGE, True) is not False


def _open(
    db: Session,
    event: IntakeEvent,
    msg: InboundMessage,
    requester: User,
    *,
    settings: Settings,
    previous: Ticket | None,
    notes: tuple[str, ...],
    authenticated: bool,
) -> Ticket:
    box = settings.mailbox(event.mailbox) if event.mailbox else None
    ticket = Ticket(
        subject=msg.subject,
        channel=event.channel,
        requester=requester,
        mailbox=event.mailbox,
        pinned_category=box.category if box else None,
        category=box.category if box else None,
        team_id=team_for_mailbox(db, box.address if box else None),  # its owner, without a rule
        previous_ticket_id=previous and previous.id,
        classification_state=ClassificationState.PENDING,
        meta=dict(event.extra.get("fields", {})),
        search_text=msg.subject,
        cc=[],
        tag_rows=[],  # loaded (none): the events' snapshots ask no query for them
        # DMARC/DKIM passed as for staff mail: routing rules may trust `requester.*`.
        authenticated=authenticated,
    )
    ticket.cc = _copied(ticket, msg, settings=settings)
    db.add(ticket)  # inserted with its first message, by _store's flush
    message = _store(db, ticket, event, msg, requester, body=msg.text, thread=None, notes=notes)
    record(db, ticket, EventType.TICKET_CREATED, actor=SYSTEM)
    record(db, ticket, EventType.MESSAGE_CREATED, actor=Actor.of(requester), subject=message)
    clock.start(db, ticket, by_staff=requester.is_staff)
    if ticket.team_id is not None:
        assignment.follow(db, ticket, {"team_id"})
    return ticket


def _copied(ticket: Ticket, msg: InboundMessage, *, settings: Settings) -> list[str]:
    """The participants with the message's Cc: addresses added (never our own mailboxes)."""
    known = set(ticket.cc or []) | {ticket.requester.email, msg.sender_email}
    new = [a for a in msg.cc if a not in known and settings.mailbox(a) is None]
    return [*(ticket.cc or []), *new][:MAX_CC]


def _store(
    db: Session,
    ticket: Ticket,
    event: IntakeEvent,
    msg: InboundMessage,
    author: User,
    *,
    body: str,
    thread: Thread | None,
    notes: tuple[str, ...],
    internal: bool = False,
) -> Message:
    message = Message(
        ticket=ticket,
        author=author,
        # given, even when empty: the event's snapshot then asks no query for them
        attachments=[
            Attachment(
                filename=part.filename,
                content_type=part.content_type,
                size=part.size,
                sha256=part.sha256,
                content_id=part.content_id,
                inline=part.inline,
                content=part.content,
            )
            for part in msg.attachments
        ],
        direction=Direction.IN,
        internal=internal,
        body=body,
        full_body=msg.text,
        html=msg.html,
        message_id=msg.message_id,
        in_reply_to=msg.in_reply_to[0] if msg.in_reply_to else None,
        threaded_by=thread.rule if thread else "new",
        notes=[*notes, *msg.notes],
        intake_event_id=event.id,
    )
    return add_text(db, ticket, message)  # one flush: the ticket if new, message, attachments
