"""From events to agents' mail: collect each agent's changes to a ticket for a minute, then
queue one mail in the outbox, at most HOURLY_CAP an hour to one agent.

`run` is the periodic step. It reads the event feed as the consumer "notifications": each
event is taken once, by one process, and its notices are written in the transaction that
moves the cursor. Queueing the notices whose minute is up happens in that transaction too,
under the cursor's row lock, so a notice never gains a change after it was queued and two
processes never queue one twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from doxa.core.db import transaction, utcnow
from doxa.core.enums import EventType
from doxa.core.events import feed
from doxa.core.events.models import Event
from doxa.core.notifications.models import AgentNotice, NoticeState
from doxa.core.notifications.recipients import Change, change_of, chosen, refusal
from doxa.core.outbox import queue
from doxa.core.outbox.models import OutboxKind
from doxa.core.tickets.models import Ticket
from doxa.core.users.models import User

log = logging.getLogger(__name__)

CONSUMER = "notifications"
BATCH = 500  # events read, and notices queued, per transaction
WINDOW = timedelta(minutes=1)  # changes to one ticket within it make one mail
# The events that may tell an agent something (recipients.change_of decides which do).
TOLD = frozenset(
    {
        EventType.TICKET_ASSIGNED,
        EventType.MESSAGE_CREATED,
        EventType.SLA_WARNING,
        EventType.SLA_BREACHED,
    }
)
HOURLY_CAP = 30  # mails an hour to one agent
MAX_ITEMS = 20  # changes told in one mail; a busier minute says the first of them
OVER_CAP = f"over {HOURLY_CAP} notifications in an hour to this agent"


def collect(db: Session, events: list[Event], *, now: datetime, window: timedelta) -> int:
    """Add each event's change to the pending notice of every agent it concerns (a new notice,
    due `window` from now, when they have none for that ticket); the changes added."""
    added = 0
    pending: dict[tuple[int, int], AgentNotice] = {}
    for event in events:
        if event.type not in TOLD:
            continue  # most events (created, updated, classified) tell an agent nothing
        ticket = db.get(Ticket, event.ticket_id) if event.ticket_id is not None else None
        change = change_of(event, ticket) if ticket is not None else None
        if ticket is None or change is None:
            continue
        for user in chosen(db, event, ticket, change):
            key = (user.id, ticket.id)
            notice = pending.get(key) or _pending(db, user.id, ticket.id)
            if notice is None:
                notice = AgentNotice(
                    user_id=user.id,
                    ticket_id=ticket.id,
                    state=NoticeState.PENDING,
                    items=[],
                    due_at=now + window,
                    created_at=now,
                )
                db.add(notice)
            pending[key] = notice
            if len(notice.items) < MAX_ITEMS:
                notice.items = [*notice.items, _item(event, change)]  # a new list: JSON changed
                added += 1
    db.flush()
    return added


def _pending(db: Session, user_id: int, ticket_id: int) -> AgentNotice | None:
    query = select(AgentNotice).where(
        AgentNotice.user_id == user_id,
        AgentNotice.ticket_id == ticket_id,
        AgentNotice.state == NoticeState.PENDING,
    )
    return db.scalar(query.limit(1))


def _item(event: Event, change: Change) -> dict[str, Any]:
    item: dict[str, Any] = {"change": str(change), "event_id": event.id}
    data = event.data or {}
    if change is Change.CUSTOMER_REPLY:
        item["message_id"] = data.get("id")
    elif change in (Change.SLA_WARNING, Change.SLA_BREACHED):
        item["target"], item["due_at"] = data.get("target"), data.get("due_at")
    return item


def dispatch(db: Session, *, now: datetime) -> int:
    """Queue the notices whose minute is up (not those over the hourly cap, nor to agents who
    no longer want any of their changes: those are `not_sent`, with why); the number queued."""
    query = (
        select(AgentNotice)
        .where(AgentNotice.state == NoticeState.PENDING, AgentNotice.due_at <= now)
        .order_by(AgentNotice.due_at, AgentNotice.id)
        .limit(BATCH)
    )
    queued = 0
    for notice in db.scalars(query).all():
        user = db.get(User, notice.user_id)
        refusals = [refusal(user, Change(item["change"])) for item in notice.items]
        if user is None or all(refusals):
            _not_sent(notice, next(r for r in refusals if r) if refusals else "nothing to tell")
        elif _sent_within_hour(db, user.id, now) >= HOURLY_CAP:
            _not_sent(notice, OVER_CAP)
        else:
            notice.state, notice.queued_at = NoticeState.QUEUED, now
            destination = queue.mail_destination(user.email)
            queue.enqueue(db, OutboxKind.AGENT_MAIL, notice.id, destination=destination)
            queued += 1
    db.flush()
    return queued


def _sent_within_hour(db: Session, user_id: int, now: datetime) -> int:
    query = select(func.count()).where(
        AgentNotice.user_id == user_id,
        AgentNotice.queued_at > now - timedelta(hours=1),
        AgentNotice.state.in_((NoticeState.QUEUED, NoticeState.SENT, NoticeState.FAILED)),
    )
    return db.scalar(query) or 0


def _not_sent(notice: AgentNotice, reason: str) -> None:
    notice.state, notice.delivery_error = NoticeState.NOT_SENT, reason
    log.info("notification %s to user %s not sent: %s", notice.id, notice.user_id, reason)


def run(
    sessions: sessionmaker[Session],
    *,
    relay: bool,
    window: timedelta = WINDOW,
    now: Callable[[], datetime] = utcnow,
) -> int:
    """Read the new events and queue the notices that are due; the number queued. Without a
    relay (`relay` False) the consumer passes over the events unread: no mail could leave."""
    while True:
        with transaction(sessions) as db:
            if not relay:  # no mail could leave: the events are passed over, unread
                feed.skip(db, CONSUMER, to=feed.latest(db))
                return 0
            events = feed.consume(db, CONSUMER, limit=BATCH)
            collect(db, events, now=now(), window=window)
            if len(events) < BATCH:
                return dispatch(db, now=now()) if relay else 0
