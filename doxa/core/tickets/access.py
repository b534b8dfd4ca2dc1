"""Who may see what: every ticket read starts from `readable_by`, every message read from
`readable_messages`."""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import Session

from doxa.core.enums import Role
from doxa.core.errors import NotFound
from doxa.core.tickets.models import Message, Ticket
from doxa.core.users.models import User


def _ticket_rules(actor: User) -> list[ColumnElement[bool]]:
    """Staff see every ticket; clients only those they requested."""
    return [Ticket.requester_id == actor.id] if actor.role is Role.CLIENT else []


def readable_by(actor: User) -> Select[Ticket]:
    """Tickets the actor may see."""
    return select(Ticket).where(*_ticket_rules(actor))


def readable_messages(actor: User) -> Select[Message]:
    """Messages the actor may see: on readable tickets, and never an internal note for clients."""
    rules = _ticket_rules(actor)
    if actor.role is Role.CLIENT:
        rules.append(Message.internal.is_(False))
    return select(Message).join(Ticket, Message.ticket_id == Ticket.id).where(*rules)


def get_readable(db: Session, ticket_id: int, *, actor: User, for_update: bool = False) -> Ticket:
    """The ticket, or NotFound when it does not exist or the actor may not see it."""
    query = readable_by(actor).where(Ticket.id == ticket_id)
    if for_update:
        query = query.with_for_update(of=Ticket)
    ticket = db.scalar(query)
    if ticket is None:
        raise NotFound(f"ticket {ticket_id} not found")
    return ticket
