from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query

from doxa.api import problems
from doxa.api.deps import AdminUser, ContextDep, IdPath, OutboxDep, SessionDep
from doxa.core.schemas import MAX_PAGE_SIZE, Page
from doxa.core.webhooks import service as webhooks
from doxa.core.webhooks.destinations import Allowed
from doxa.core.webhooks.schemas import (
    DeliveryRead,
    SecretRead,
    WebhookCreate,
    WebhookCreated,
    WebhookRead,
    WebhookUpdate,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
Cursor = Annotated[str | None, Query(max_length=64)]
E409 = "The subscription is not active, or the delivery is still pending"


def _allowed(context: ContextDep) -> Allowed:
    return context.settings.webhook_allowed_hosts


@router.get("")
def list_webhooks(
    db: SessionDep, admin: AdminUser, limit: Limit = 50, cursor: Cursor = None
) -> Page[WebhookRead]:
    """Every outbound webhook subscription, oldest first (never its secret)."""
    return webhooks.list_webhooks(db, actor=admin, cursor=cursor, limit=limit)


@router.post("", status_code=201)
def create_webhook(
    body: WebhookCreate, db: SessionDep, admin: AdminUser, context: ContextDep
) -> WebhookCreated:
    """Subscribe a URL to events; the answer carries the signing secret, this once."""
    return webhooks.create_webhook(db, body, actor=admin, allowed=_allowed(context))


@router.get("/{webhook_id}")
def get_webhook(webhook_id: IdPath, db: SessionDep, admin: AdminUser) -> WebhookRead:
    """One subscription (never its secret)."""
    return webhooks.get_webhook(db, webhook_id, actor=admin)


@router.patch("/{webhook_id}")
def update_webhook(
    webhook_id: IdPath, body: WebhookUpdate, db: SessionDep, admin: AdminUser, context: ContextDep
) -> WebhookRead:
    """Change the URL, the events, the description; turn it off or on again."""
    return webhooks.update_webhook(db, webhook_id, body, actor=admin, allowed=_allowed(context))


@router.delete("/{webhook_id}", status_code=204)
def delete_webhook(webhook_id: IdPath, db: SessionDep, admin: AdminUser) -> None:
    """Delete a subscription and its delivery log."""
    webhooks.delete_webhook(db, webhook_id, actor=admin)


@router.post("/{webhook_id}/rotate-secret")
def rotate_secret(webhook_id: IdPath, db: SessionDep, admin: AdminUser) -> SecretRead:
    """A new signing secret (answered this once); the old one also signs for 24 hours."""
    return webhooks.rotate_secret(db, webhook_id, actor=admin)


@router.post("/{webhook_id}/ping", status_code=202)
def ping(
    webhook_id: IdPath,
    db: SessionDep,
    admin: AdminUser,
    outbox: OutboxDep,
    background: BackgroundTasks,
) -> DeliveryRead:
    """Send a `ping` event to this subscription now."""
    delivery = webhooks.ping(db, webhook_id, actor=admin)
    background.add_task(outbox.kick)  # after the response, so after the commit
    return delivery


@router.get("/{webhook_id}/deliveries")
def list_deliveries(
    webhook_id: IdPath, db: SessionDep, admin: AdminUser, limit: Limit = 50, cursor: Cursor = None
) -> Page[DeliveryRead]:
    """The subscription's deliveries, newest first, each with every attempt."""
    return webhooks.list_deliveries(db, webhook_id, actor=admin, cursor=cursor, limit=limit)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    responses=problems.errors(409, e409=E409),
)
def redeliver(
    webhook_id: IdPath,
    delivery_id: IdPath,
    db: SessionDep,
    admin: AdminUser,
    outbox: OutboxDep,
    background: BackgroundTasks,
) -> DeliveryRead:
    """Send a delivered or failed delivery again (same event, same `webhook-id`)."""
    delivery = webhooks.redeliver(db, webhook_id, delivery_id, actor=admin)
    background.add_task(outbox.kick)
    return delivery
