from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query

from doxa.api import problems
from doxa.api.deps import (
    ContextDep,
    CurrentUser,
    IdPath,
    OutboxDep,
    SessionDep,
    StaffUser,
    TriageDep,
)
from doxa.core.events import history
from doxa.core.schemas import MAX_PAGE_SIZE, Page
from doxa.core.tickets import messages, search, service
from doxa.core.tickets.access import get_readable
from doxa.core.tickets.schemas import (
    EventRead,
    MessageCreate,
    MessageRead,
    TicketCreate,
    TicketFilters,
    TicketRead,
    TicketUpdate,
)

router = APIRouter(prefix="/tickets", tags=["tickets"])


@router.post(
    "",
    status_code=201,
    responses=problems.errors(403, e403="A client named someone else as the requester"),
)
def create_ticket(
    body: TicketCreate,
    db: SessionDep,
    me: CurrentUser,
    triage: TriageDep,
    background: BackgroundTasks,
) -> TicketRead:
    """Open a ticket; staff may open one on behalf of `requester_email`."""
    ticket = service.open_ticket(db, body, actor=me)
    background.add_task(triage.classify_soon)  # after the response, so after commit
    return TicketRead.seen_by(ticket, me.role)


@router.get("")
def list_tickets(
    db: SessionDep,
    me: CurrentUser,
    filters: Annotated[TicketFilters, Query()],
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 25,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[TicketRead]:
    """Tickets the caller may see, newest first; `q` searches subject and messages."""
    return search.list_tickets(db, filters, actor=me, cursor=cursor, limit=limit)


@router.get("/{ticket_id}")
def get_ticket(ticket_id: IdPath, db: SessionDep, me: CurrentUser) -> TicketRead:
    """One ticket with its classification."""
    return TicketRead.seen_by(get_readable(db, ticket_id, actor=me), me.role)


@router.patch(
    "/{ticket_id}",
    responses=problems.errors(
        403,
        409,
        e403="A client may only close or reopen their ticket",
        e409="The ticket's status cannot go there from where it is",
    ),
)
def update_ticket(
    ticket_id: IdPath, body: TicketUpdate, db: SessionDep, me: CurrentUser
) -> TicketRead:
    """Change status (owner: close or reopen), or priority, category, assignee, team, tags
    or cc (staff)."""
    return TicketRead.seen_by(service.update_ticket(db, ticket_id, body, actor=me), me.role)


@router.get("/{ticket_id}/messages")
def list_messages(
    ticket_id: IdPath,
    db: SessionDep,
    me: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 25,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[MessageRead]:
    """The conversation, oldest first, a page at a time; clients never see internal notes."""
    return messages.list_messages(db, ticket_id, actor=me, cursor=cursor, limit=limit)


@router.post(
    "/{ticket_id}/messages",
    status_code=201,
    responses=problems.errors(403, e403="Only staff write internal notes"),
)
def post_message(
    ticket_id: IdPath,
    body: MessageCreate,
    db: SessionDep,
    me: CurrentUser,
    context: ContextDep,
    outbox: OutboxDep,
    background: BackgroundTasks,
) -> MessageRead:
    """Reply, or (staff) add an internal note; a public staff reply is emailed to the requester."""
    message = messages.post_message(
        db,
        ticket_id,
        body,
        actor=me,
        relay_configured=context.settings.outbound_smtp_url is not None,
    )

    background.add_task(outbox.kick)  # after the response, so after the commit
    return MessageRead.seen_by(message, me.role)


@router.post(
    "/{ticket_id}/messages/{message_id}/resend",
    responses=problems.errors(
        403, 409, e403="Only staff resend messages", e409="The message is not a failed outbound one"
    ),
)
def resend_message(
    ticket_id: IdPath,
    message_id: IdPath,
    db: SessionDep,
    me: StaffUser,
    outbox: OutboxDep,
    background: BackgroundTasks,
) -> MessageRead:
    """Send a `failed` outbound message again: it is queued, and goes at once."""
    message = messages.resend_message(db, ticket_id, message_id, actor=me)
    background.add_task(outbox.kick)  # after the response, so after the commit
    return MessageRead.seen_by(message, me.role)


@router.get("/{ticket_id}/events")
def list_events(
    ticket_id: IdPath,
    db: SessionDep,
    me: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 25,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[EventRead]:
    """The ticket's history, oldest first, a page at a time: each change with who (a user, a
    rule or the system), when, and the object after it; a client sees the public changes."""
    return history.list_events(db, ticket_id, actor=me, cursor=cursor, limit=limit)
