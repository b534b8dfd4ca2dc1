from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from doxa.core.db import Base, UTCDateTime, str_enum, utcnow


class NoticeState(StrEnum):
    PENDING = "pending"  # collecting the changes of its minute
    QUEUED = "queued"  # in the outbox
    SENT = "sent"
    FAILED = "failed"
    NOT_SENT = "not_sent"  # over the hourly cap, or the recipient no longer wants it


class AgentNotice(Base):
    """One mail to one agent about one ticket: the changes of a minute (`items`, in event
    order), then its delivery. Our Message-ID is kept so that the agent's reply is known."""

    __tablename__ = "agent_notice"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id", ondelete="CASCADE"))
    state: Mapped[NoticeState] = mapped_column(str_enum(NoticeState))
    # [{kind, event_id, message_id?, target?, due_at?}]: what changed, at most MAX_ITEMS.
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())  # its minute is up
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    message_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    delivery_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        Index(None, "state", "due_at"),  # the pending ones whose minute is up
        Index(None, "user_id", "queued_at"),  # the hourly cap
        Index(None, "user_id", "ticket_id", "state"),  # an agent's pending one for a ticket
    )
