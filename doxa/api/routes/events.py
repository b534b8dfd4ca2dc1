"""The event feed (`GET /events`) and its live form (`GET /events/stream`, Server-Sent Events),
each event as the caller may see it."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask

from doxa.api import problems
from doxa.api.deps import ContextDep, CurrentUser, NetworkDep, SessionDep, oauth2
from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.errors import InvalidInput, Unauthenticated
from doxa.core.events import feed, views
from doxa.core.events.feed import Position
from doxa.core.schemas import MAX_ID, MAX_PAGE_SIZE, Page
from doxa.core.tickets.schemas import EventRead
from doxa.core.users.models import User
from doxa.core.users.throttle import hashing_network
from doxa.runtime.fanout import EventFanout, Subscription
from doxa.runtime.threads import on_thread

router = APIRouter(prefix="/events", tags=["events"])

CATCH_UP = 500  # events read from the database at a time while a stream catches up
SEND_TIMEOUT = 30.0  # a stream whose reader takes no bytes for this long is closed

_TICKET = {"id": 42, "subject": "Invoice 2231 charged twice", "status": "open"}
_MESSAGE = {"id": 77, "ticket_id": 42, "body": "Charged twice on 3 May.", "internal": False}
# One example payload (`data`) per event type: the catalog in the OpenAPI description.
CATALOG: dict[str, tuple[str, dict[str, Any]]] = {
    "ticket.created": ("a ticket was opened (the ticket)", _TICKET),
    "ticket.updated": (
        "fields changed (the ticket, with `changes: {field: [before, after]}`)",
        {**_TICKET, "status": "pending", "changes": {"status": ["open", "pending"]}},
    ),
    "ticket.classified": (
        "the model filed it (staff see the `ai_*` fields)",
        {**_TICKET, "category": "billing", "ai_confidence": 0.91},
    ),
    "ticket.assigned": (
        "its team or assignee changed",
        {**_TICKET, "assignee_id": 3, "changes": {"assignee_id": [None, 3]}},
    ),
    "message.created": ("a message (an internal note: staff only)", _MESSAGE),
    "sla.warning": ("a due time is near", {**_TICKET, "sla": {"first_response_due": "…"}}),
    "sla.breached": ("a due time passed", {**_TICKET, "sla": {"breached": ["first_response"]}}),
    "intake.held": (
        "an input was held (admins only)",
        {"id": 9, "channel": "email", "status": "held", "reason": "spoofed"},
    ),
    "intake.rejected": (
        "an input was rejected (admins only)",
        {"id": 10, "channel": "form", "status": "rejected", "reason": "unusable"},
    ),
    "ping": ("a test event", {}),
}


def _catalog() -> str:
    lines = ["", "**Event types** (each with an example `data`):", ""]
    for kind, (meaning, example) in CATALOG.items():
        lines.append(f"- `{kind}`: {meaning}. `{json.dumps(example)}`")
    return "\n".join(lines)


FEED_DOC = (
    "Events the caller may see, oldest first, after `after=<event id>` or `cursor`: a client "
    "the public events of their own tickets (no internal notes, no `ai_*` fields), agents all "
    "but `intake.*`, admins all. `next_cursor` is always given: ask again with it (an event that"
    " commits late, after a higher id, is still served: the feed waits for it)." + _catalog()
)


@router.get("", description=FEED_DOC)
def list_events(
    db: SessionDep,
    me: CurrentUser,
    after: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
    cursor: Annotated[str | None, Query(max_length=96)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
) -> Page[EventRead]:
    start = views.start_of(db, after=after, cursor=cursor)
    return views.page(db, me, start, limit=limit)


class StreamTicketRead(BaseModel):
    ticket: str
    expires_in: int


@router.post("/stream-ticket", status_code=201)
def create_stream_ticket(db: SessionDep, me: CurrentUser) -> StreamTicketRead:
    """A single-use ticket for `GET /events/stream?ticket=…`, valid for 60 seconds: for a
    browser's EventSource, which cannot send the Authorization header."""
    return StreamTicketRead(
        ticket=views.issue_ticket(db, me), expires_in=views.STREAM_TICKET_SECONDS
    )


def _fanout(request: Request) -> EventFanout:
    fanout: EventFanout = request.app.state.event_fanout
    return fanout


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "`text/event-stream`: `id:` the event id, `event:` its type, `data:` "
            "the event as in `GET /events`; a comment line every 15 s",
            # Each event as a reader parses it (schemathesis checks a stream's events so).
            "content": {
                "text/event-stream": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "id": {"type": "string"},
                            "event": {"type": "string"},
                            "data": {"type": "string"},
                        },
                    }
                }
            },
        },
        **problems.errors(
            401,
            422,
            429,
            e401="No valid bearer token or stream ticket",
            e429="Too many streams for this user, network or server; see Retry-After",
        ),
    },
)
async def stream_events(
    request: Request,
    context: ContextDep,
    network: NetworkDep,
    token: Annotated[str | None, Depends(oauth2)],
    ticket: Annotated[str | None, Query(max_length=128)] = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> EventSourceResponse:
    """The feed as Server-Sent Events, live. Authenticate with the bearer token or
    `ticket=` from `POST /events/stream-ticket`. Resumes after `Last-Event-ID` (or `after=`);
    otherwise starts with what comes next. The user is checked again at each keep-alive and
    the stream ends when that fails; a reader more than 1,000 events behind is dropped (resume
    with Last-Event-ID)."""
    resume = after
    if last_event_id:
        if not last_event_id.isdigit() or int(last_event_id) > MAX_ID:
            raise InvalidInput("Last-Event-ID: not an event id")
        resume = int(last_event_id)
    fanout = _fanout(request)
    where = hashing_network(network)
    # Cheap refusals first, on the loop: a cap reached costs no query.
    fanout.check(0, where)
    reader, start = await on_thread(_open, context, token, ticket, resume)
    subscription = await fanout.subscribe(reader.user_id, reader.role, where)
    keepalive = fanout.keepalive
    return EventSourceResponse(
        _stream(context, fanout, subscription, reader, start, keepalive),
        ping=0,  # ours: the reader is checked with each
        send_timeout=SEND_TIMEOUT,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        # Also here: a stream whose body never started still gives its place back.
        background=BackgroundTask(fanout.unsubscribe, subscription),
    )


def _open(
    context: Context, token: str | None, ticket: str | None, resume: int | None
) -> tuple[views.Reader, Position | None]:
    """Who reads (bearer token or stream ticket) and where they resume; one short transaction."""
    with transaction(context.sessions) as db:
        if token:
            reader, _ = views.reader_of_token(db, context.tokens, token)
        elif ticket:
            reader, _ = views.redeem_ticket(db, ticket)
        else:
            raise Unauthenticated("not authenticated: a bearer token or ?ticket= is needed")
        start = feed.position_of(db, resume) if resume is not None else None
    return reader, start


def _catch_up(
    context: Context, reader: views.Reader, start: Position, end: Position
) -> list[tuple[Position, int, str, str]]:
    with transaction(context.sessions) as db:
        user = db.get_one(User, reader.user_id)
        return views.between(db, user, start, end, limit=CATCH_UP)


def _valid(context: Context, reader: views.Reader) -> bool:
    with transaction(context.sessions) as db:
        return views.still_valid(db, context.tokens, reader)


async def _stream(
    context: Context,
    fanout: EventFanout,
    subscription: Subscription,
    reader: views.Reader,
    start: Position | None,
    keepalive: float,
) -> AsyncIterator[ServerSentEvent]:
    """Catch up from the database to where the fan-out took over, then the live events; a
    comment (and a check of the reader) every `keepalive` seconds. No transaction is open
    while it waits or sends."""
    try:
        place = start
        while place is not None and place < subscription.start:
            events = await on_thread(_catch_up, context, reader, place, subscription.start)
            for event_place, event_id, kind, data in events:
                yield ServerSentEvent(data=data, event=kind, id=str(event_id))
                place = event_place
            if len(events) < CATCH_UP:
                break
        check_at = time.monotonic() + keepalive
        while True:
            event = await subscription.next(max(0.0, check_at - time.monotonic()))
            if subscription.dropped:
                yield ServerSentEvent(comment=f"dropped: {subscription.reason}")
                return
            if event is not None:
                event_place, event_id, kind, data = event
                if start is None or event_place > start:
                    yield ServerSentEvent(data=data, event=kind, id=str(event_id))
            if time.monotonic() >= check_at:
                yield ServerSentEvent(comment="keep-alive")
                if not await on_thread(_valid, context, reader):
                    return
                check_at = time.monotonic() + keepalive
    finally:
        fanout.unsubscribe(subscription)
