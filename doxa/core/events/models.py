from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from doxa.core.db import Base, UTCDateTime, str_enum, utcnow
from doxa.core.enums import ActorType


class Event(Base):
    """One change, as SPEC's Event: the object after it (`data`) and, for updates, each field's
    before and after (`changes`). `sequence` rises per ticket (the ticket row's counter, taken
    under its lock); events without a ticket (intake.held, ping) have none."""

    __tablename__ = "event"

    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id", ondelete="CASCADE"))
    sequence: Mapped[int | None]
    actor_type: Mapped[ActorType] = mapped_column(str_enum(ActorType))
    # The user's or the rule's id; the rule's name is kept so a deleted rule still explains.
    actor_id: Mapped[int | None]
    actor_name: Mapped[str | None] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    changes: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Whether the ticket's requester may see it (an internal note's message.created may not).
    public: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("ticket_id", "sequence"),
        Index(None, "type", "id"),
    )
