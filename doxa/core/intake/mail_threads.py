"""Which ticket an inbound message continues, in the SPEC's order, and whether it may.

A message names a ticket by In-Reply-To/References, a `[#id]` subject token or a plus
address (`support+id@`). Each is easy to learn or forge (a ticket number, a Message-ID seen
in a forwarded mail), so a name only threads when the author is a participant of that ticket:
its requester, an address recorded in its `cc`, or staff. Anyone else opens a new ticket that
links the one they named.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from doxa.core.addresses import normalize_address
from doxa.core.enums import ThreadedBy
from doxa.core.intake.inbound import InboundMessage
from doxa.core.message_ids import is_forged
from doxa.core.notifications.models import AgentNotice
from doxa.core.tickets.models import Message, Ticket
from doxa.core.users.models import User

SUBJECT_TOKEN = re.compile(r"\[#(\d{1,12})\]")
PLUS_ADDRESS = re.compile(r"^[^+@]+\+(\d{1,12})@")
MAX_REFERENCES = 50
MAX_NAMED = 10  # subject tokens and plus addresses looked at per message


@dataclass(frozen=True, slots=True)
class Thread:
    ticket: Ticket | None  # the ticket the message names, if any
    rule: ThreadedBy
    participant: bool = True  # False: the author may not write into `ticket`
    # It answers an agent's notification about `ticket` (its In-Reply-To/References name one):
    # staff's answer is an internal note, never a reply to the customer.
    notification: bool = False


def find_thread(
    db: Session, msg: InboundMessage, *, recipients: list[str], secret: str, author: User | None
) -> Thread:
    """The first named ticket the author (the user `From:` names, if any) takes part in; else
    the first named one, as a link."""
    first: Thread | None = None
    answered = _notifications(db, msg, secret)
    for rule, ticket in _named(db, msg, recipients, secret):
        notification = rule is ThreadedBy.REFERENCES and ticket.id in answered
        if is_participant(ticket, msg.sender_email, author):
            return Thread(ticket, rule, notification=notification)
        first = first or Thread(ticket, rule, participant=False)
    return first or Thread(None, ThreadedBy.NEW)


def is_participant(ticket: Ticket, email: str, user: User | None) -> bool:
    """The requester, an address recorded in the ticket's cc, or an active staff member."""
    if user is not None and (user.id == ticket.requester_id or (user.is_staff and user.is_active)):
        return True
    return bool(email) and normalize_address(email) in (ticket.cc or [])


def _named(
    db: Session, msg: InboundMessage, recipients: list[str], secret: str
) -> Iterator[tuple[ThreadedBy, Ticket]]:
    for ticket in _by_references(db, msg, secret):
        yield ThreadedBy.REFERENCES, ticket
    for ticket_id in _numbers(SUBJECT_TOKEN.finditer(msg.subject)):
        if (token_ticket := db.get(Ticket, ticket_id)) is not None:
            yield ThreadedBy.SUBJECT_TOKEN, token_ticket
    plus = (PLUS_ADDRESS.match(address.lower()) for address in recipients)
    for ticket_id in _numbers(match for match in plus if match):
        if (plus_ticket := db.get(Ticket, ticket_id)) is not None:
            yield ThreadedBy.PLUS_ADDRESS, plus_ticket


def _numbers(matches: Iterator[re.Match[str]]) -> list[int]:
    return list(dict.fromkeys(int(match.group(1)) for match in matches))[:MAX_NAMED]


def _referenced(msg: InboundMessage, secret: str) -> list[str]:
    """The Message-IDs the reply names, the most recently named first, forgeries left out."""
    # In-Reply-To names the message answered; References lists the thread oldest first.
    named = dict.fromkeys([*msg.in_reply_to, *reversed(msg.references)])
    return [mid for mid in named if not is_forged(secret, mid)][:MAX_REFERENCES]


def _notifications(db: Session, msg: InboundMessage, secret: str) -> set[int]:
    """The tickets whose agents' notifications the reply names."""
    wanted = _referenced(msg, secret)
    if not wanted:
        return set()
    query = select(AgentNotice.ticket_id).where(AgentNotice.message_id.in_(wanted))
    return set(db.scalars(query))


def _by_references(db: Session, msg: InboundMessage, secret: str) -> list[Ticket]:
    """Tickets whose stored messages, or agents' notifications, the reply names, the most
    recently named first."""
    wanted = _referenced(msg, secret)
    if not wanted:
        return []
    messages = select(Message.message_id, Message.ticket_id).where(Message.message_id.in_(wanted))
    notices = select(AgentNotice.message_id, AgentNotice.ticket_id).where(
        AgentNotice.message_id.in_(wanted)
    )
    rows = [*db.execute(messages).all(), *db.execute(notices).all()]
    found = {message_id: ticket_id for message_id, ticket_id in rows if message_id}
    ticket_ids = dict.fromkeys(found[mid] for mid in wanted if mid in found)
    return [ticket for tid in ticket_ids if (ticket := db.get(Ticket, tid)) is not None]
