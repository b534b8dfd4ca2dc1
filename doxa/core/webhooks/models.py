from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from doxa.core.db import Base, UTCDateTime, str_enum, utcnow
from doxa.core.enums import WebhookDeliveryState

MAX_URL = 2048


class Webhook(Base):
    """An admin's subscription: where events go, which, and the secret that signs them."""

    __tablename__ = "webhook"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(MAX_URL))
    events: Mapped[list[str]] = mapped_column(JSON, default=list)  # types, or ["*"]
    active: Mapped[bool] = mapped_column(default=True)
    description: Mapped[str | None] = mapped_column(String(500))
    include_internal: Mapped[bool] = mapped_column(default=False)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    # Kept to sign with; never shown again after the answer that made it.
    secret: Mapped[str] = mapped_column(String(64))
    # After a rotation the old secret signs too, until `previous_secret_until`.
    previous_secret: Mapped[str | None] = mapped_column(String(64))
    previous_secret_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The first failed attempt since the last delivered one: 24 hours of failure disable it.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookDelivery(Base):
    """One event for one subscription, sent by the outbox item (kind webhook, ref_id: this id);
    `attempts` is its log: `[{at, status_code, error, duration_ms}]`."""

    __tablename__ = "webhook_delivery"

    id: Mapped[int] = mapped_column(primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhook.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(32))
    state: Mapped[WebhookDeliveryState] = mapped_column(
        str_enum(WebhookDeliveryState), default=WebhookDeliveryState.PENDING
    )
    attempts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index(None, "webhook_id", "id"), Index(None, "event_id"))
