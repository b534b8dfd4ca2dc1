"""Who is told of an event, and whether they still want to be (SPEC "Events out").

An agent is told when a ticket is assigned to them (not when they took it themselves), when
the ticket's requester writes on it, and of an SLA warning or breach on it; an unassigned
ticket's SLA alarms go to its team's members. "Assigned" is as it was when the event
happened (the events before it say), not when the event is read. Only active staff whose
`notifications` leave that kind on (each is on unless turned off) are ever chosen, and the
courier asks again at send time.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from doxa.core.enums import ActorType, Direction, EventType
from doxa.core.events.models import Event
from doxa.core.teams.models import TeamMember
from doxa.core.tickets.models import Ticket
from doxa.core.users.models import User
from doxa.core.users.schemas import Notifications


class Change(StrEnum):
    """One thing a notification tells; its preference is `PREFERENCE[change]`."""

    ASSIGNED = "assigned"
    CUSTOMER_REPLY = "customer_reply"
    SLA_WARNING = "sla_warning"
    SLA_BREACHED = "sla_breached"


PREFERENCE = {
    Change.ASSIGNED: "assigned",
    Change.CUSTOMER_REPLY: "customer_reply",
    Change.SLA_WARNING: "sla",
    Change.SLA_BREACHED: "sla",
}


def refusal(user: User | None, change: Change) -> str | None:
    """Why `user` may not be told of `change` now, or None when they may."""
    if user is None or not user.is_active:
        return "the recipient is deactivated"
    if not user.is_staff:
        return "the recipient is no longer staff"
    if not getattr(Notifications.of(user.notifications), PREFERENCE[change]):
        return f"the recipient turned {PREFERENCE[change]} notifications off"
    return None


def change_of(event: Event, ticket: Ticket) -> Change | None:
    """What the event means to an agent, or None when it tells them nothing."""
    if event.type == EventType.TICKET_ASSIGNED:
        return Change.ASSIGNED
    if event.type == EventType.MESSAGE_CREATED:
        data = event.data or {}
        written_by_requester = data.get("author_id") == ticket.requester_id
        customer = data.get("direction") == Direction.IN and not data.get("internal", True)
        return Change.CUSTOMER_REPLY if written_by_requester and customer else None
    if event.type == EventType.SLA_WARNING:
        return Change.SLA_WARNING
    if event.type == EventType.SLA_BREACHED:
        return Change.SLA_BREACHED
    return None


def chosen(db: Session, event: Event, ticket: Ticket, change: Change) -> list[User]:
    """The agents to tell of `change`, each of whom wants it now."""
    if change is Change.ASSIGNED:
        before, after = (event.changes or {}).get("assignee_id", [None, None])
        self_assigned = event.actor_type is ActorType.USER and event.actor_id == after
        ids = [] if after is None or self_assigned or after == before else [after]
    elif (assignee := assignee_at(db, event)) is not None:
        ids = [assignee]
    elif change is not Change.CUSTOMER_REPLY and ticket.team_id is not None:
        query = select(TeamMember.user_id).where(TeamMember.team_id == ticket.team_id)
        ids = list(db.scalars(query.order_by(TeamMember.user_id)))
    else:
        ids = []
    users = [db.get(User, user_id) for user_id in ids]
    return [user for user in users if user is not None and refusal(user, change) is None]


def assignee_at(db: Session, event: Event) -> int | None:
    """The ticket's assignee when the event happened (the last ticket.assigned before it), not
    now: an agent who takes a ticket is not told of the message that opened it."""
    query = (
        select(Event.changes)
        .where(
            Event.ticket_id == event.ticket_id,
            Event.type == EventType.TICKET_ASSIGNED,
            Event.sequence < (event.sequence or 0),
        )
        .order_by(Event.sequence.desc())
        .limit(1)
    )
    changes = db.scalar(query) or {}
    assignee = changes.get("assignee_id", [None, None])[1]
    return assignee if isinstance(assignee, int) else None
