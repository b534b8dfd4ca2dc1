"""The outbox's courier for agents' notifications: the recipient is asked again, then the
mail is composed (the ticket's `[#id]` and subject, what changed, the customer's new text)
with a signed Message-ID of ours, kept on the notice, so that the agent's reply is known
(doxa.core.intake.mail_threads) and becomes an internal note.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from sqlalchemy.orm import Session

from doxa.core.addresses import ascii_address
from doxa.core.config import Settings
from doxa.core.db import utcnow
from doxa.core.message_ids import new_message_id
from doxa.core.notifications.models import AgentNotice, NoticeState
from doxa.core.notifications.recipients import Change, refusal
from doxa.core.outbound import outbound_subject
from doxa.core.outbox.models import OutboxItem
from doxa.core.outbox.relay import Relay
from doxa.core.outbox.sender import NotSent
from doxa.core.tickets.models import Message, Ticket
from doxa.core.users.models import User

MAX_TEXT = 4000  # characters of each customer message quoted
FOOTER = "Reply to this mail to add an internal note to the ticket; the customer does not see it."


class AgentMail:
    """Sends an agent's notification, if they are still active staff who want it."""

    def __init__(self, settings: Settings, relay: Relay) -> None:
        self.settings, self.relay = settings, relay

    def prepare(self, db: Session, item: OutboxItem) -> Callable[[], object]:
        notice = db.get_one(AgentNotice, item.ref_id)
        user = db.get(User, notice.user_id)
        refusals = [refusal(user, Change(each["change"])) for each in notice.items]
        told = [each for each, why in zip(notice.items, refusals, strict=True) if why is None]
        if user is None or not told:
            raise NotSent(next((why for why in refusals if why), "nothing to tell"))
        mail = compose(db, notice, user, told, settings=self.settings)
        return functools.partial(self.relay.send, mail)

    def settle(self, db: Session, item: OutboxItem, receipt: object) -> None:
        notice = db.get_one(AgentNotice, item.ref_id)
        notice.state, notice.delivery_error = NoticeState(item.state.value), item.last_error


def compose(
    db: Session,
    notice: AgentNotice,
    user: User,
    items: list[dict[str, Any]],
    *,
    settings: Settings,
) -> EmailMessage:
    """The notification mail; its Message-ID is made once and kept on the notice."""
    ticket = db.get_one(Ticket, notice.ticket_id)
    mailbox = ticket.mailbox or settings.support_addresses[0].address
    if notice.message_id is None:
        domain = mailbox.partition("@")[2]
        notice.message_id = new_message_id(settings.secret, ticket_id=ticket.id, domain=domain)
    mail = EmailMessage()
    mail["From"] = Address(display_name=settings.support_name, addr_spec=mailbox)
    mail["To"] = ascii_address(user.email)
    mail["Subject"] = outbound_subject(ticket, automatic=False)
    mail["Message-ID"] = f"<{notice.message_id}>"
    mail["Date"] = format_datetime(utcnow())
    mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to it
    mail["X-Auto-Response-Suppress"] = "All"
    mail.set_content(body(db, ticket, items))
    return mail


def body(db: Session, ticket: Ticket, items: list[dict[str, Any]]) -> str:
    """What changed, in order, with the customer's new text; then how to answer."""
    requester = ticket.requester
    who = f"{requester.full_name} <{requester.email}>" if requester.full_name else requester.email
    lines = [f"{ticket.reference} {ticket.subject}", f"Requester: {who}", ""]
    for item in items:
        lines += [*_told(db, item), ""]
    return "\n".join([*lines, "-- ", FOOTER, ""])


def _told(db: Session, item: dict[str, Any]) -> list[str]:
    change = Change(item["change"])
    if change is Change.ASSIGNED:
        return ["Assigned to you."]
    if change is Change.CUSTOMER_REPLY:
        message = db.get(Message, item.get("message_id") or 0)
        if message is None or message.internal:
            return ["The customer wrote (the message is gone)."]
        text = message.body if len(message.body) <= MAX_TEXT else message.body[:MAX_TEXT] + " [...]"
        return ["The customer wrote:", "", *text.splitlines()]
    target = str(item.get("target") or "a target").replace("_", " ")
    if change is Change.SLA_WARNING:
        return [f"SLA warning: {target} is due at {item.get('due_at')}."]
    return [f"SLA breached: {target} was due at {item.get('due_at')}."]
