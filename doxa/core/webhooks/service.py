"""Outbound webhook subscriptions and their delivery log (SPEC "Webhook", "Delivery"): admins
only. The secret is answered by create and rotate, never by a read."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from doxa.core.db import utcnow
from doxa.core.enums import DeliveryState, EventType, Role, WebhookDeliveryState
from doxa.core.errors import Conflict, InvalidInput, NotFound
from doxa.core.events import feed
from doxa.core.events.record import Actor, record
from doxa.core.outbox import queue
from doxa.core.outbox.models import OutboxItem, OutboxKind
from doxa.core.schemas import MAX_PAGE_SIZE, Page, decode_cursor, encode_cursor
from doxa.core.users.models import User
from doxa.core.users.service import require_role
from doxa.core.webhooks import destinations, signing
from doxa.core.webhooks.destinations import Allowed, Resolver
from doxa.core.webhooks.models import Webhook, WebhookDelivery
from doxa.core.webhooks.schemas import (
    AttemptRead,
    DeliveryRead,
    SecretRead,
    WebhookCreate,
    WebhookCreated,
    WebhookRead,
    WebhookUpdate,
)

# The feed's consumer that turns events into deliveries (dispatch.py).
CONSUMER = "webhooks"
# How long the secret before a rotation still signs.
ROTATION_OVERLAP = timedelta(hours=24)


def list_webhooks(db: Session, *, actor: User, cursor: str | None, limit: int) -> Page[WebhookRead]:
    require_role(actor, Role.ADMIN)
    query = select(Webhook).order_by(Webhook.id).limit(min(limit, MAX_PAGE_SIZE) + 1)
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(Webhook.id > after)
    rows = list(db.scalars(query))
    page = rows[:limit]
    return Page(
        items=[WebhookRead.model_validate(hook) for hook in page],
        next_cursor=encode_cursor(page[-1].id) if len(rows) > limit else None,
    )


def get_webhook(db: Session, webhook_id: int, *, actor: User) -> WebhookRead:
    require_role(actor, Role.ADMIN)
    return WebhookRead.model_validate(_get(db, webhook_id))


def create_webhook(
    db: Session,
    data: WebhookCreate,
    *,
    actor: User,
    allowed: Allowed,
    resolve: Resolver = destinations.system_resolver,
) -> WebhookCreated:
    """A subscription, and its secret (answered this once). It hears of events committed from
    now on: the dispatcher's place in the feed is taken here if it had none."""
    require_role(actor, Role.ADMIN)
    _check(data.url, allowed=allowed, resolve=resolve)
    hook = Webhook(
        url=data.url,
        events=data.events,
        description=data.description,
        include_internal=data.include_internal,
        active=data.active,
        secret=signing.new_secret(),
    )
    db.add(hook)
    db.flush()
    feed.consume(db, CONSUMER, limit=0)
    return WebhookCreated(**WebhookRead.model_validate(hook).model_dump(), secret=hook.secret)


def update_webhook(
    db: Session,
    webhook_id: int,
    data: WebhookUpdate,
    *,
    actor: User,
    allowed: Allowed,
    resolve: Resolver = destinations.system_resolver,
) -> WebhookRead:
    """Change the fields sent. Turning it on again forgets why it was turned off."""
    require_role(actor, Role.ADMIN)
    hook = _get(db, webhook_id)
    if data.url is not None and data.url != hook.url:
        _check(data.url, allowed=allowed, resolve=resolve)
        hook.url = data.url
    if data.events is not None:
        hook.events = data.events
    if "description" in data.model_fields_set:
        hook.description = data.description
    if data.include_internal is not None:
        hook.include_internal = data.include_internal
    if data.active is not None:
        if data.active and not hook.active:
            hook.disabled_reason = hook.failing_since = None
        hook.active = data.active
    db.flush()
    return WebhookRead.model_validate(hook)


def delete_webhook(db: Session, webhook_id: int, *, actor: User) -> None:
    """Delete a subscription and its deliveries. Their outbox items that wait are failed (a
    send in flight finds its delivery gone and records nothing)."""
    require_role(actor, Role.ADMIN)
    hook = _get(db, webhook_id)
    deliveries = select(WebhookDelivery.id).where(WebhookDelivery.webhook_id == hook.id)
    db.execute(
        update(OutboxItem)
        .where(
            OutboxItem.kind == OutboxKind.WEBHOOK,
            OutboxItem.ref_id.in_(deliveries),
            OutboxItem.state == DeliveryState.QUEUED,
        )
        .values(state=DeliveryState.FAILED, last_error="the subscription was deleted")
        .execution_options(synchronize_session=False)
    )
    db.delete(hook)
    db.flush()


def rotate_secret(
    db: Session, webhook_id: int, *, actor: User, now: datetime | None = None
) -> SecretRead:
    """A new secret; the current one keeps signing beside it for 24 hours."""
    require_role(actor, Role.ADMIN)
    hook = _get(db, webhook_id)
    now = now or utcnow()
    hook.previous_secret, hook.previous_secret_until = hook.secret, now + ROTATION_OVERLAP
    hook.secret = signing.new_secret()
    db.flush()
    return SecretRead(secret=hook.secret)


def ping(db: Session, webhook_id: int, *, actor: User) -> DeliveryRead:
    """A `ping` event, delivered to this subscription only (the dispatcher skips pings)."""
    require_role(actor, Role.ADMIN)
    hook = _get(db, webhook_id)
    event = record(
        db,
        None,
        EventType.PING,
        actor=Actor.of(actor),
        data={"webhook_id": hook.id, "url": hook.url},
        public=False,
    )
    db.flush()
    delivery = WebhookDelivery(webhook_id=hook.id, event_id=event.id, event_type=event.type)
    db.add(delivery)
    db.flush()
    item = queue.enqueue(db, OutboxKind.WEBHOOK, delivery.id, destination=destination(hook.url))
    return _read(delivery, item)


def list_deliveries(
    db: Session, webhook_id: int, *, actor: User, cursor: str | None, limit: int
) -> Page[DeliveryRead]:
    """The subscription's deliveries, newest first, each with every attempt."""
    require_role(actor, Role.ADMIN)
    hook = _get(db, webhook_id)
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    query = (
        select(WebhookDelivery, OutboxItem)
        .outerjoin(
            OutboxItem,
            (OutboxItem.kind == OutboxKind.WEBHOOK) & (OutboxItem.ref_id == WebhookDelivery.id),
        )
        .where(WebhookDelivery.webhook_id == hook.id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit + 1)
    )
    before = decode_cursor(cursor)
    if before is not None:
        query = query.where(WebhookDelivery.id < before)
    rows = [(row[0], row[1]) for row in db.execute(query)]
    page = rows[:limit]
    return Page(
        items=[_read(delivery, item) for delivery, item in page],
        next_cursor=encode_cursor(page[-1][0].id) if len(rows) > limit else None,
    )


def redeliver(db: Session, webhook_id: int, delivery_id: int, *, actor: User) -> DeliveryRead:
    """Send one delivery again from a fresh start (its attempts so far stay in its log)."""
    require_role(actor, Role.ADMIN)
    hook = _get(db, webhook_id)
    delivery = db.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None or delivery.webhook_id != hook.id:
        raise NotFound("no such delivery")
    if not hook.active:
        raise Conflict("the subscription is not active: turn it on first")
    if delivery.state is WebhookDeliveryState.PENDING:
        raise Conflict("the delivery is still pending")
    delivery.state = WebhookDeliveryState.PENDING
    item = queue.requeue(db, OutboxKind.WEBHOOK, delivery.id, destination=destination(hook.url))
    return _read(delivery, item)


def destination(url: str) -> str:
    """A webhook's destination as the outbox's fairness counts it: the URL's host."""
    return (urlsplit(url).hostname or "")[:255]


def _check(url: str, *, allowed: Allowed, resolve: Resolver) -> None:
    try:
        destinations.check(url, allowed=allowed, resolve=resolve)
    except destinations.Refused as exc:
        raise InvalidInput(f"url: {exc}") from None


def _read(delivery: WebhookDelivery, item: OutboxItem | None) -> DeliveryRead:
    pending = delivery.state is WebhookDeliveryState.PENDING and item is not None
    return DeliveryRead(
        id=delivery.id,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        state=delivery.state,
        attempts=[AttemptRead.model_validate(attempt) for attempt in delivery.attempts],
        next_attempt_at=item.next_attempt_at if pending and item is not None else None,
    )


def _get(db: Session, webhook_id: int) -> Webhook:
    hook = db.get(Webhook, webhook_id)
    if hook is None:
        raise NotFound("no such webhook")
    return hook
