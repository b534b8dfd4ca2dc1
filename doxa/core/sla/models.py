from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from doxa.core.db import Base, UTCDateTime, utcnow


class Calendar(Base):
    __tablename__ = "calendar"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64))  # IANA
    hours: Mapped[dict[str, list[list[str]]]] = mapped_column(JSON, default=dict)
    holidays: Mapped[list[str]] = mapped_column(JSON, default=list)  # ISO dates
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class SlaPolicy(Base):
    __tablename__ = "sla_policy"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(default=0, index=True)
    active: Mapped[bool] = mapped_column(default=True)
    when: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # as a rule's
    calendar_id: Mapped[int | None] = mapped_column(ForeignKey("calendar.id"))  # None: 24/7
    # Per priority: {first_response, next_response, resolution} in minutes, each optional.
    targets: Mapped[dict[str, dict[str, int]]] = mapped_column(JSON, default=dict)
    warn_at: Mapped[float] = mapped_column(default=0.8)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
