"""The conversation on a ticket: replies, internal notes and attachments."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, undefer

from doxa.core.enums import DeliveryState, Direction, EventType, Status
from doxa.core.errors import Conflict, NotFound, PermissionDenied
from doxa.core.events.record import Actor, record
from doxa.core.outbound import queue_ticket_mail
from doxa.core.outbox.models import OutboxKind
from doxa.core.outbox.queue import mail_destination, requeue
from doxa.core.schemas import MAX_PAGE_SIZE, Page, decode_cursor, encode_cursor
from doxa.core.sla import clock
from doxa.core.tickets.access import get_readable, readable_messages
from doxa.core.tickets.models import Attachment, Message, Ticket
from doxa.core.tickets.schemas import MessageCreate, MessageRead
from doxa.core.tickets.service import add_text, change
from doxa.core.users.models import User


def list_messages(
    db: Session,
    ticket_id: int,
    *,
    actor: User,
    cursor: str | None = None,
    limit: int = MAX_PAGE_SIZE,
) -> Page[MessageRead]:
    """A page of the conversation, oldest first; clients never see internal notes.

    Keyset paging like every list: the cursor is the last id seen, so a long conversation is
    read a page at a time at the cost of the first.
    """
    get_readable(db, ticket_id, actor=actor)  # NotFound for a ticket the actor may not see
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    query = (
        readable_messages(actor)
        .where(Message.ticket_id == ticket_id)
        .options(selectinload(Message.author))
    )
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(Message.id > after)
    rows = list(db.scalars(query.order_by(Message.id).limit(limit + 1)))
    page = rows[:limit]
    return Page(
        items=[MessageRead.seen_by(m, actor.role) for m in page],
        next_cursor=encode_cursor(page[-1].id) if len(rows) > limit else None,
    )


def post_message(
    db: Session, ticket_id: int, data: MessageCreate, *, actor: User, relay_configured: bool
) -> Message:
    """Add a reply or an internal note; a public staff reply is queued for the requester."""
    ticket = get_readable(db, ticket_id, actor=actor, for_update=True)
    if data.internal and not actor.is_staff:
        raise PermissionDenied("only staff write internal notes")
    outbound = actor.is_staff and not data.internal
    message = add_text(
        db,
        ticket,
        Message(
            ticket_id=ticket.id,
            author=actor,
            attachments=[],  # loaded (none): the event's snapshot asks no query for them
            internal=data.internal,
            direction=Direction.OUT if outbound else Direction.IN,
            body=data.body,
            full_body=data.body,
            delivery_state=(DeliveryState.QUEUED if relay_configured else DeliveryState.NOT_SENT)
            if outbound
            else None,
        ),
    )
    if message.delivery_state is DeliveryState.QUEUED:
        queue_ticket_mail(db, message, recipient=ticket.requester.email)
    record(
        db,
        ticket,
        EventType.MESSAGE_CREATED,
        actor=Actor.of(actor),
        subject=message,
        public=not data.internal,
    )
    _follow_conversation(db, ticket, actor=actor, outbound=outbound, internal=data.internal)
    if outbound:
        clock.responded(db, ticket)  # a public staff reply; never a note
    elif not data.internal:
        clock.customer_wrote(db, ticket)
    return message


def resend_message(db: Session, ticket_id: int, message_id: int, *, actor: User) -> Message:
    """Queue a `failed` outbound message again (staff); 409 for any other message."""
    if not actor.is_staff:
        raise PermissionDenied("only staff resend messages")
    get_readable(db, ticket_id, actor=actor)
    query = select(Message).where(Message.id == message_id, Message.ticket_id == ticket_id)
    message = db.scalar(query.with_for_update())
    if message is None:
        raise NotFound(f"message {message_id} not found on ticket {ticket_id}")
    if message.direction is not Direction.OUT or message.delivery_state is not DeliveryState.FAILED:
        state = message.delivery_state or "inbound"
        raise Conflict(f"only a failed outbound message is sent again; this one is {state}")
    ticket = db.get_one(Ticket, ticket_id)
    destination = mail_destination(ticket.requester.email)
    requeue(db, OutboxKind.TICKET_MAIL, message.id, destination=destination)
    message.delivery_state, message.delivery_error = DeliveryState.QUEUED, None
    db.flush()
    return message


def _follow_conversation(
    db: Session, ticket: Ticket, *, actor: User, outbound: bool, internal: bool
) -> None:
    """A staff answer puts a new ticket in progress; a requester's reply reopens a resolved one."""
    if internal:
        return
    waiting_on_us = (Status.RESOLVED, Status.PENDING)
    if (outbound and ticket.status is Status.NEW) or (
        not outbound and ticket.status in waiting_on_us
    ):
        change(db, ticket, {"status": Status.OPEN}, actor=Actor.of(actor))
    db.flush()


def get_attachment(db: Session, attachment_id: int, *, actor: User) -> Attachment:
    """An attachment with its bytes, if the actor may read the message it belongs to."""
    query = (
        readable_messages(actor)
        .join(Attachment, Attachment.message_id == Message.id)
        .where(Attachment.id == attachment_id)
        .with_only_columns(Attachment)
        .options(undefer(Attachment.content))
    )
    attachment = db.scalar(query)
    if attachment is None:
        raise NotFound(f"attachment {attachment_id} not found")
    return attachment
