"""Who may see what: every ticket read starts from `readable_by`."""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from doxa.core.enums import Role
from doxa.core.errors import NotFound
from doxa.core.tickets.models import Ticket
from doxa.core.users.models import User


def readable_by(actor: User) -> Select[Ticket]:
    """Tickets the actor may see: staff see all, clients only those they requested."""
    query = select(Ticket)
    if actor.role is Role.CLIENT:
        query = query.where(Ticket.requester_id == actor.id)
    return query


def get_readable(db: Session, ticket_id: int, *, actor: User, for_update: bool = False) -> Ticket:
    """The ticket, or NotFound when it does not exist or the actor may not see it."""
    query = readable_by(actor).where(Ticket.id == ticket_id)
    if for_update:
        query = query.with_for_update(of=Ticket)
    ticket = db.scalar(query)
    if ticket is None:
        raise NotFound(f"ticket {ticket_id} not found")
    return ticket
