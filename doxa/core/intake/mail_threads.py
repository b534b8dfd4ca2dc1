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


def find_thread(
    db: Session, msg: InboundMessage, *, recipients: list[str], secret: str, author: User | None
) -> Thread:
    """The first named ticket the author (the user `From:` names, if any) takes part in; else
    the first named one, as a link."""
    first: Thread | None = None
    for rule, ticket in _named(db, msg, recipients, secret):
        if is_participant(ticket, msg.sender_email, author):
            return Thread(ticket, rule)
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


def _by_references(db: Session, msg: InboundMessage, secret: str) -> list[Ticket]:
    """Tickets whose stored messages the reply names, the most recently named first."""
    # In-Reply-To names the message answered; References lists the thread oldest first.
    named = dict.fromkeys([*msg.in_reply_to, *reversed(msg.references)])
    wanted = [mid for mid in named if not is_forged(secret, mid)][:MAX_REFERENCES]
    if not wanted:
        return []
    rows = db.execute(
        select(Message.message_id, Message.ticket_id).where(Message.message_id.in_(wanted))
    ).all()
    found = {message_id: ticket_id for message_id, ticket_id in rows}
    ticket_ids = dict.fromkeys(found[mid] for mid in wanted if mid in found)
    return [ticket for tid in ticket_ids if (ticket := db.get(Ticket, tid)) is not None]
