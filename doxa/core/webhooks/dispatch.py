"""From events to deliveries: the feed's consumer `webhooks` takes the next committed events and,
in the same transaction, makes one delivery and one outbox item for each active subscription
that wants each; the outbox sends them.

Only ids are stored: the body is built from the event row when each attempt is sent (courier.py).
An event never changes, so every attempt sends the same bytes, and a hundred subscriptions cost
a hundred small rows, not a hundred copies of a 256 KiB payload.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from doxa.core.db import transaction
from doxa.core.enums import EventType
from doxa.core.events import feed
from doxa.core.events.models import Event
from doxa.core.outbox import queue
from doxa.core.outbox.models import OutboxKind
from doxa.core.webhooks.models import Webhook, WebhookDelivery
from doxa.core.webhooks.schemas import ALL
from doxa.core.webhooks.service import CONSUMER, destination

BATCH = 500


def wants(hook: Webhook, event: Event) -> bool:
    """Whether a subscription gets an event: its type is listed (or `*`); an internal note (a
    message event that is not public) only with `include_internal` (SPEC). Other events that
    clients do not see (SLA warnings and breaches, a low-confidence classification, `intake.*`)
    are staff's and admins', and so are subscriptions. A ping goes only to the subscription it
    was sent to (service.ping)."""
    if event.type == EventType.PING:
        return False
    if ALL not in hook.events and event.type not in hook.events:
        return False
    internal_note = event.type == EventType.MESSAGE_CREATED and not event.public
    return hook.include_internal or not internal_note


def dispatch(db: Session, *, limit: int = BATCH) -> tuple[int, int]:
    """Queue the next events' deliveries: (events taken, deliveries queued). The caller
    commits both the deliveries and the consumer's new place at once."""
    now = feed.latest(db)  # before looking for subscriptions: see feed.skip
    hooks = list(db.scalars(select(Webhook).where(Webhook.active.is_(True))))
    if not hooks:  # nobody to send to: no event is read (a flood's events cost nothing here)
        feed.skip(db, CONSUMER, to=now)
        return 0, 0
    events = feed.consume(db, CONSUMER, limit=limit)
    if not events:
        return 0, 0
    deliveries = [
        WebhookDelivery(webhook_id=hook.id, event_id=event.id, event_type=event.type)
        for event in events
        for hook in hooks
        if wants(hook, event)
    ]
    db.add_all(deliveries)
    db.flush()
    hosts = {hook.id: destination(hook.url) for hook in hooks}
    rows = [(delivery.id, hosts[delivery.webhook_id]) for delivery in deliveries]
    queue.enqueue_many(db, OutboxKind.WEBHOOK, rows)
    return len(events), len(deliveries)


def run(sessions: sessionmaker[Session], *, limit: int = BATCH) -> int:
    """One periodic pass, a transaction a batch until the feed is caught up; how many
    deliveries were queued."""
    queued = 0
    while True:
        with transaction(sessions) as db:
            taken, made = dispatch(db, limit=limit)
        queued += made
        if taken < limit:
            return queued
