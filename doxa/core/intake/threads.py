"""Which ticket an inbound message continues, in the SPEC's order of trust."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from doxa.core.enums import ThreadedBy
from doxa.core.intake.inbound import InboundMessage
from doxa.core.tickets.models import Message, Ticket
from doxa.core.users.models import User

SUBJECT_TOKEN = re.compile(r"\[#(\d{1,12})\]")
PLUS_ADDRESS = re.compile(r"^[^+@]+\+(\d{1,12})@")
MAX_REFERENCES = 50


@dataclass(frozen=True, slots=True)
class Thread:
    ticket: Ticket | None
    rule: ThreadedBy


def find_thread(db: Session, msg: InboundMessage, *, recipients: list[str]) -> Thread:
    """References first (newest first), then a [#id] token from a participant, then support+id@."""
    ticket = _by_references(db, msg)
    if ticket is not None:
        return Thread(ticket, ThreadedBy.REFERENCES)
    ticket = _by_subject_token(db, msg)
    if ticket is not None:
        return Thread(ticket, ThreadedBy.SUBJECT_TOKEN)
    ticket = _by_plus_address(db, recipients)
    if ticket is not None:
        return Thread(ticket, ThreadedBy.PLUS_ADDRESS)
    return Thread(None, ThreadedBy.NEW)


def _by_references(db: Session, msg: InboundMessage) -> Ticket | None:
    # In-Reply-To names the message answered; References lists the thread oldest first.
    wanted = list(dict.fromkeys([*msg.in_reply_to, *reversed(msg.references)]))[:MAX_REFERENCES]
    if not wanted:
        return None
    rows = db.execute(
        select(Message.message_id, Message.ticket_id).where(Message.message_id.in_(wanted))
    ).all()
    found = {message_id: ticket_id for message_id, ticket_id in rows}
    for message_id in wanted:
        if message_id in found:
            return db.get(Ticket, found[message_id])
    return None


def _by_subject_token(db: Session, msg: InboundMessage) -> Ticket | None:
    for match in SUBJECT_TOKEN.finditer(msg.subject):
        ticket = db.get(Ticket, int(match.group(1)))
        if ticket is not None and _is_participant(db, ticket, msg.sender_email, msg.from_email):
            return ticket
    return None


def _is_participant(db: Session, ticket: Ticket, *emails: str) -> bool:
    """The requester, the assignee, or anyone who wrote on the ticket."""
    users = select(User.id).where(User.email.in_([e.lower() for e in emails if e]))
    authors = select(Message.id).where(Message.ticket_id == ticket.id, Message.author_id.in_(users))
    query = select(Ticket.id).where(
        Ticket.id == ticket.id,
        or_(Ticket.requester_id.in_(users), Ticket.assignee_id.in_(users), authors.exists()),
    )
    return db.scalar(query) is not None


def _by_plus_address(db: Session, recipients: list[str]) -> Ticket | None:
    for address in recipients:
        match = PLUS_ADDRESS.match(address.lower())
        if match:
            ticket = db.get(Ticket, int(match.group(1)))
            if ticket is not None:
                return ticket
    return None
