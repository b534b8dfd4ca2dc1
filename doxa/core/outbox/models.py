from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from doxa.core.db import Base, UTCDateTime, str_enum, utcnow
from doxa.core.enums import DeliveryState


class OutboxKind(StrEnum):
    TICKET_MAIL = "ticket_mail"  # ref_id: message.id
    ACCOUNT_MAIL = "account_mail"  # ref_id: account_mail.id
    AGENT_MAIL = "agent_mail"  # ref_id: agent_notice.id
    WEBHOOK = "webhook"  # ref_id: webhook_delivery.id


class OutboxItem(Base):
    """One thing to send, its lease while a sender has it, and its retries."""

    __tablename__ = "outbox_item"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[OutboxKind] = mapped_column(str_enum(OutboxKind))
    ref_id: Mapped[int]
    # Where it goes, as fairness counts it: for mail the recipient's domain, for a webhook
    # the URL's host.
    destination: Mapped[str] = mapped_column(String(255))
    # queued until sent or failed; not_sent items (account mail that may not go) never leave.
    state: Mapped[DeliveryState] = mapped_column(str_enum(DeliveryState))
    attempts: Mapped[int] = mapped_column(default=0)
    # While leased, next_attempt_at is the lease's end: an item is due when this has passed.
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    give_up_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    leased_by: Mapped[str | None] = mapped_column(String(128))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("kind", "ref_id"),
        Index(None, "state", "next_attempt_at"),  # the claim's due items
        Index(None, "lease_until"),  # items in flight, per destination
    )
