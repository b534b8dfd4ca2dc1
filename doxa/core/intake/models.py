from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, deferred, mapped_column

from doxa.core.db import Base, UTCDateTime, str_enum, utcnow
from doxa.core.enums import Channel, IntakeStatus


class IntakeEvent(Base):
    """One inbound delivery: its raw bytes are committed before the sender hears "accepted"."""

    __tablename__ = "intake_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[Channel] = mapped_column(str_enum(Channel))
    # Message-ID, provider id or Idempotency-Key, as the sender named it.
    external_id: Mapped[str | None] = mapped_column(String(998))
    # Unique per accepted delivery (mailbox + Message-ID, or a hash of the bytes);
    # None on the records of repeated deliveries, which point at the first.
    dedupe_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("intake_event.id"))
    mailbox: Mapped[str | None] = mapped_column(String(320))
    envelope_from: Mapped[str | None] = mapped_column(String(320))
    envelope_to: Mapped[list[str]] = mapped_column(JSON, default=list)
    sender: Mapped[str | None] = mapped_column(String(320))  # indexed with received_at, below
    # A trusted MTA vouched for the sender: such mail has its own hourly allowance.
    authenticated: Mapped[bool] = mapped_column(default=False, server_default=false())
    raw: Mapped[bytes] = deferred(mapped_column(LargeBinary))
    raw_size: Mapped[int] = mapped_column(default=0)
    # Channel-specific extras (form fields, provider ids) that are not in the raw bytes.
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[IntakeStatus] = mapped_column(
        str_enum(IntakeStatus), default=IntakeStatus.RECEIVED
    )
    reason: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id", ondelete="SET NULL"))
    attempts: Mapped[int] = mapped_column(default=0)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # An admin vouched for a held message: it is processed without the hold rules.
    released_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))

    __table_args__ = (
        Index(None, "status", "id"),
        Index(None, "sender", "received_at"),
    )


class IntakeKey(Base):
    """A key a webhook sender may use once: an Idempotency-Key, a form signature, a Mailgun
    token. Unique per scope, so two racing requests with one key store one event."""

    __tablename__ = "intake_key"

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(255))
    body_sha256: Mapped[str] = mapped_column(String(64))
    intake_event_id: Mapped[int | None] = mapped_column(
        ForeignKey("intake_event.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)

    __table_args__ = (UniqueConstraint("scope", "key"),)
