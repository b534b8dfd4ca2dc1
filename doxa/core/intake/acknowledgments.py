"""The automatic answer to a new ticket: its text, and whether it may go out at all.

Anyone can write any `From:`, so an acknowledgment goes to an address nobody has proven. Two
rules keep DOXA from being a spam relay: hourly caps per recipient mailbox and in all, and the
customer's own words (subject, name) repeated only to someone we know reads that mailbox or
whose mail was authenticated; everyone else gets a neutral text with the reference.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from doxa.core.addresses import identity_key
from doxa.core.config import Settings
from doxa.core.db import backend, utcnow
from doxa.core.enums import Channel, DeliveryState, Direction, EventType
from doxa.core.events.record import SYSTEM, record
from doxa.core.intake.ack_texts import FALLBACK_LANGUAGE, AckTexts, load_texts
from doxa.core.intake.inbound import ADDRESS_CHARS, NAME_CHARS, SUBJECT_CHARS, InboundMessage
from doxa.core.intake.mail_threads import SUBJECT_TOKEN
from doxa.core.message_ids import new_message_id
from doxa.core.outbound import queue_ticket_mail
from doxa.core.tickets.models import Message, Ticket
from doxa.core.users.models import User

NOTE = "automatic acknowledgment"
# Why an acknowledgment was recorded but not sent (Message.delivery_error).
CAP = "cap"
REPLY_TO_ELSEWHERE = "reply_to_elsewhere"
ACK_CAP_LOCK = 0x444F5841  # "DOXA": the advisory lock that serializes the hourly cap checks
# Acknowledgments that count towards the hourly caps: the ones that went, or were to go, out.
_COUNTED_STATES = (DeliveryState.QUEUED, DeliveryState.SENT, DeliveryState.FAILED)


def acknowledge(
    db: Session, ticket: Ticket, msg: InboundMessage, *, settings: Settings, authenticated: bool
) -> Message:
    """Record the automatic answer to the requester; it threads the customer's reply back.

    Whether it may go out is decided here: a Reply-To elsewhere (From: may be someone else's
    address) or an hourly cap records it `not_sent` with the reason.
    """
    mailbox = ticket.mailbox or settings.support_addresses[0].address
    held = _reply_elsewhere(msg, authenticated=authenticated)
    # The language matters only to mail that may go out (detecting it loads a model, ~1 s once
    # per process): a relay is set and nothing has stopped it yet (a cap may still).
    detect = settings.outbound_smtp_url is not None and held is None
    subject, body = _text(db, ticket, msg, mailbox, settings, authenticated, detect=detect)
    recipient = recipient_key(ticket.requester.email)
    held = held or _capped(db, recipient, settings=settings)
    message = Message(
        ticket_id=ticket.id,
        author=None,
        attachments=[],  # loaded (none): the event's snapshot asks no query for them
        direction=Direction.OUT,
        internal=False,
        subject=_one_line(subject)[:SUBJECT_CHARS],
        recipient_key=recipient[:ADDRESS_CHARS],
        body=body,
        full_body=body,
        message_id=new_message_id(
            settings.secret, ticket_id=ticket.id, domain=mailbox.rpartition("@")[2]
        ),
        in_reply_to=msg.message_id,
        notes=[NOTE],
        delivery_state=(
            DeliveryState.QUEUED
            if settings.outbound_smtp_url is not None and held is None
            else DeliveryState.NOT_SENT
        ),
        delivery_error=held,
    )
    db.add(message)
    db.flush()
    if message.delivery_state is DeliveryState.QUEUED:
        queue_ticket_mail(db, message, recipient=ticket.requester.email)
    record(db, ticket, EventType.MESSAGE_CREATED, actor=SYSTEM, subject=message)
    return message


def _text(
    db: Session,
    ticket: Ticket,
    msg: InboundMessage,
    mailbox: str,
    settings: Settings,
    authenticated: bool,
    *,
    detect: bool,
) -> tuple[str, str]:
    """(subject, body): the mailbox's text in the customer's language, their own words in it
    only when they may be repeated."""
    texts = load_texts(settings.ack_templates)
    language = _language(msg, texts, mailbox) if detect else FALLBACK_LANGUAGE
    # A form's typed address is unproven whoever it names: its subject is never repeated (SPEC).
    repeat = ticket.channel is not Channel.FORM and (
        authenticated or is_known_requester(db, ticket.requester)
    )
    name = msg.sender_name or ticket.requester.full_name or ""
    return texts.choose(mailbox, language).render(
        reference=ticket.reference,
        subject=_one_line(SUBJECT_TOKEN.sub(" ", ticket.subject)) if repeat else None,
        name=_one_line(name)[:NAME_CHARS] if repeat else None,
    )


def is_known_requester(db: Session, user: User) -> bool:
    """Someone shown to read this address's mail, so repeating their words reaches only them.

    Writing proves nothing: anyone can put any address in `From:`, and intake makes a user row
    for every sender, so neither a user row nor earlier tickets count (nor a staff answer: it
    went to the mailbox, and says nothing about who writes next). What counts:
    - staff, or an account with a password: set through a link mailed to the address (sign-up,
      reset) or given by the admin who created the account;
    - a reply to mail we sent them: its In-Reply-To is one of our outbound Message-IDs, which
      are random, signed, and known only to whoever received that mail.
    """
    if user.is_staff or user.password_hash is not None:
        return True
    ours = aliased(Message)
    answered = (
        select(Message.id)
        .join(Ticket, Ticket.id == Message.ticket_id)
        .join(ours, ours.message_id == Message.in_reply_to)
        .where(
            Ticket.requester_id == user.id,
            Message.author_id == user.id,
            Message.direction == Direction.IN,
            ours.direction == Direction.OUT,
            ours.ticket_id == Message.ticket_id,
        )
        .limit(1)
    )
    return db.scalar(answered) is not None


def recipient_key(address: str) -> str:
    """The mailbox an address reaches, as the caps count it: its one spelling
    (core.addresses) without the `+tag` (`"Alice+2"@Exämple.COM.` is `alice@exämple.com`)."""
    local, at, domain = identity_key(address).rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}" if at else domain


def _language(msg: InboundMessage, texts: AckTexts, mailbox: str) -> str:
    """The customer's language when there is a text in it to choose, else English."""
    if texts.languages(mailbox) <= {FALLBACK_LANGUAGE}:
        return FALLBACK_LANGUAGE
    # Imported here: loading the language model costs about a second, paid only when a choice
    # between languages is to be made (not by `doxa --help`, nor where every text is English).
    from doxa.core.triage import language

    return language.detect(f"{msg.subject}\n{msg.text}") or FALLBACK_LANGUAGE


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _reply_elsewhere(msg: InboundMessage, *, authenticated: bool) -> str | None:
    if msg.reply_to and msg.reply_to != msg.sender_email and not authenticated:
        return REPLY_TO_ELSEWHERE
    return None


def _capped(db: Session, recipient: str, *, settings: Settings) -> str | None:
    # Intake workers run side by side: without this, each would count the acknowledgments
    # committed so far and several could pass the cap at once. Held to the commit, briefly.
    backend(db).lock(db, ACK_CAP_LOCK)
    acks = (
        select(func.count())
        .select_from(Message)
        .where(
            Message.direction == Direction.OUT,
            Message.created_at >= utcnow() - timedelta(hours=1),
            Message.author_id.is_(None),
            Message.delivery_state.in_(_COUNTED_STATES),
        )
    )
    if (db.scalar(acks) or 0) >= settings.ack_hourly_limit:
        return CAP
    mine = acks.where(Message.recipient_key == recipient)
    if (db.scalar(mine) or 0) >= settings.ack_hourly_limit_per_recipient:
        return CAP
    return None
