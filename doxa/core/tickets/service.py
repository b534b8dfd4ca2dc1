"""Tickets: opening, changing and the audit trail of every change."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from doxa.core.addresses import normalize_address
from doxa.core.enums import (
    ActorType,
    Channel,
    ClassificationState,
    Direction,
    EventType,
    Priority,
    Role,
    Status,
)
from doxa.core.errors import Conflict, InvalidInput, PermissionDenied
from doxa.core.events.record import Actor, record
from doxa.core.sla import clock
from doxa.core.teams import assignment
from doxa.core.teams.models import Team
from doxa.core.tickets.access import get_readable
from doxa.core.tickets.models import Message, Ticket, normalize_tags
from doxa.core.tickets.schemas import TicketCreate, TicketUpdate
from doxa.core.triage.labels import categories
from doxa.core.triage.models import ClassificationCorrection
from doxa.core.users import service as users
from doxa.core.users.models import User

SEARCH_TEXT_LIMIT = 100_000

# Moves staff may make; a client may only close, or reopen a resolved or closed ticket.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.NEW: frozenset({Status.OPEN, Status.PENDING, Status.RESOLVED, Status.CLOSED}),
    Status.OPEN: frozenset({Status.PENDING, Status.RESOLVED, Status.CLOSED}),
    Status.PENDING: frozenset({Status.OPEN, Status.RESOLVED, Status.CLOSED}),
    Status.RESOLVED: frozenset({Status.OPEN, Status.CLOSED}),
    Status.CLOSED: frozenset({Status.OPEN}),
}
CLIENT_MOVES: dict[Status, frozenset[Status]] = {
    Status.CLOSED: frozenset(Status) - {Status.CLOSED},
    Status.OPEN: frozenset({Status.RESOLVED, Status.CLOSED}),
}


def open_ticket(
    db: Session, data: TicketCreate, *, actor: User, channel: Channel = Channel.API
) -> Ticket:
    """Open a ticket; clients open for themselves, staff may open on behalf of a requester."""
    requester = actor
    if data.requester_email is not None and data.requester_email.lower() != actor.email:
        if actor.role is Role.CLIENT:
            raise PermissionDenied("clients open tickets for themselves only")
        requester = users.requester_for(db, email=data.requester_email, name=None)
    ticket = Ticket(
        subject=data.subject,
        priority=data.priority or Priority.NORMAL,
        channel=channel,
        requester=requester,
        classification_state=ClassificationState.PENDING,
        meta={},
        search_text=data.subject,
        tag_rows=[],  # loaded (none): the events' snapshots ask no query for them
        authenticated=True,  # the API knows who opened it (SPEC: rules may trust it)
    )
    db.add(ticket)
    db.flush()
    message = add_text(
        db,
        ticket,
        Message(
            ticket_id=ticket.id,
            author=actor,
            attachments=[],  # loaded (none): the event's snapshot asks no query for them
            direction=Direction.IN,
            body=data.body,
            full_body=data.body,
        ),
    )
    record(db, ticket, EventType.TICKET_CREATED, actor=Actor.of(actor))
    record(db, ticket, EventType.MESSAGE_CREATED, actor=Actor.of(actor), subject=message)
    clock.start(db, ticket, by_staff=actor.is_staff)
    return ticket


def add_text(db: Session, ticket: Ticket, message: Message) -> Message:
    """Store a message and make its text searchable: public text for everyone, an internal
    note's text apart (`note_text`), which only staff searches reach."""
    db.add(message)
    if message.internal:
        ticket.note_text = f"{ticket.note_text or ''}\n{message.full_body}"[:SEARCH_TEXT_LIMIT]
    else:
        ticket.search_text = f"{ticket.search_text}\n{message.full_body}"[:SEARCH_TEXT_LIMIT]
    db.flush()
    return message


def update_ticket(db: Session, ticket_id: int, data: TicketUpdate, *, actor: User) -> Ticket:
    """Change status, priority, category, assignee, team, tags or cc, recording each change."""
    ticket = get_readable(db, ticket_id, actor=actor, for_update=True)
    changes = {name: getattr(data, name) for name in data.model_fields_set}
    if actor.role is Role.CLIENT and set(changes) - {"status"}:
        raise PermissionDenied("clients may only close or reopen their tickets")
    if changes.get("status") is not None:
        _move(ticket, changes["status"], actor=actor)
    if "assignee_id" in changes:
        _check_assignee(db, changes["assignee_id"])
    if changes.get("team_id") is not None and db.get(Team, changes["team_id"]) is None:
        raise InvalidInput(f"team_id: no team {changes['team_id']}")
    if changes.get("cc") is not None:
        changes["cc"] = _participants(changes["cc"])
    if changes.get("category") is not None:
        known = categories(db)
        if changes["category"] not in known:
            raise InvalidInput(f"category must be one of {', '.join(known)}")
    for name in ("priority", "category"):
        if changes.get(name) is not None:
            _learn(db, ticket, name, changes[name], actor=actor)
    nullable = {"assignee_id", "team_id"}
    wanted = {k: v for k, v in changes.items() if v is not None or k in nullable}
    if {"priority", "category"} & changes.keys():
        wanted["needs_triage"] = False  # a person decided
    change(db, ticket, wanted, actor=Actor.of(actor))
    db.flush()
    return ticket


def change(
    db: Session, ticket: Ticket, changes: Mapping[str, object], *, actor: Actor
) -> dict[str, list[object]]:
    """Set the fields that differ and record them: `ticket.assigned` for a new assignee,
    `ticket.updated` for the rest; then assignment and the service level follow the change.
    The one way staff edits, routing rules and the system change a ticket's fields."""
    applied: dict[str, list[object]] = {}
    for name, given in changes.items():
        new = normalize_tags(given) if name == "tags" and isinstance(given, list) else given
        old = getattr(ticket, name)
        if old != new:
            setattr(ticket, name, new)
            applied[name] = [old, new]
    if not applied:
        return applied
    if "team_id" in applied:
        db.expire(ticket, ["team"])  # a loaded `team` would still be the old one
    if actor.type is ActorType.USER and {"team_id", "assignee_id"} & applied.keys():
        ticket.staff_routed = True  # a late classification no longer routes it
    assigned = {k: v for k, v in applied.items() if k == "assignee_id"}
    updated = {k: v for k, v in applied.items() if k != "assignee_id"}
    if updated:
        record(db, ticket, EventType.TICKET_UPDATED, actor=actor, changes=updated)
    if assigned:
        record(db, ticket, EventType.TICKET_ASSIGNED, actor=actor, changes=assigned)
    assignment.follow(db, ticket, set(applied))
    clock.follow(db, ticket, applied)
    return applied


def _participants(addresses: list[str]) -> list[str]:
    """Staff's cc list in the one spelling intake compares (core.addresses), each once."""
    normalized = [normalize_address(address) for address in addresses]
    bad = [address for address, each in zip(addresses, normalized, strict=True) if each is None]
    if bad:
        raise InvalidInput(f"cc: not an email address: {bad[0]}")
    return list(dict.fromkeys(address for address in normalized if address))


def _move(ticket: Ticket, target: Status, *, actor: User) -> None:
    if target == ticket.status:
        return
    if actor.role is Role.CLIENT and ticket.status not in CLIENT_MOVES.get(target, frozenset()):
        raise PermissionDenied(f"clients cannot move a ticket from {ticket.status} to {target}")
    if target not in TRANSITIONS[ticket.status]:
        raise Conflict(f"a {ticket.status} ticket cannot become {target}")


def _check_assignee(db: Session, assignee_id: int | None) -> None:
    if assignee_id is None:
        return
    assignee = db.get(User, assignee_id)
    if assignee is None or not assignee.is_active or not assignee.is_staff:
        raise InvalidInput(f"user {assignee_id} is not an active agent")


def _learn(db: Session, ticket: Ticket, field: str, value: str, *, actor: User) -> None:
    """A staff change to what the classifier said is a label for the next training."""
    predicted = ticket.ai_category if field == "category" else ticket.ai_priority
    if ticket.classification_state is not ClassificationState.DONE or predicted is None:
        return
    if str(value) == str(predicted) and not ticket.needs_triage:
        return
    db.add(
        ClassificationCorrection(
            ticket_id=ticket.id,
            actor_id=actor.id,
            field=field,
            predicted=str(predicted),
            corrected=str(value),
            text=f"{ticket.subject}\n{first_body(db, ticket.id)}",
            model_version=ticket.ai_model_version,
        )
    )


# The classifier and the similar-tickets vector cost CPU per character (a 1 MiB body took
# 2.5 s for the vector alone); the opening of a ticket says what it is about.
FIRST_BODY_CHARS = 20_000


def first_body(db: Session, ticket_id: int) -> str:
    """The opening of the text that opened the ticket: what the classifier reads."""
    body = func.substr(Message.body, 1, FIRST_BODY_CHARS)
    query = select(body).where(Message.ticket_id == ticket_id).order_by(Message.id)
    return db.scalar(query.limit(1)) or ""
