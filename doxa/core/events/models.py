from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from doxa.core.db import Base, UTCDateTime, str_enum, utcnow
from doxa.core.enums import ActorType


class current_xact(FunctionElement[int]):
    """The writing transaction's id on PostgreSQL (the feed's order: doxa.core.events.feed);
    NULL on SQLite, whose one writer at a time already commits in id order."""

    type = BigInteger()
    inherit_cache = True


@compiles(current_xact, "postgresql")
def _current_xact_pg(element: current_xact, compiler: SQLCompiler, **kw: object) -> str:
    return "pg_current_xact_id()::text::bigint"


@compiles(current_xact)
def _current_xact(element: current_xact, compiler: SQLCompiler, **kw: object) -> str:
    return "NULL"


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
    # The writing transaction (PostgreSQL): the feed serves events by (xact, id) once no
    # transaction that could still commit an earlier one is open.
    xact: Mapped[int | None] = mapped_column(BigInteger, default=current_xact())

    __table_args__ = (
        UniqueConstraint("ticket_id", "sequence"),
        Index(None, "type", "id"),
        Index(None, "xact", "id"),
    )


class EventCursor(Base):
    """How far one consumer of the feed (webhook dispatch, notifications) has read; its row is
    locked while a batch is taken, so processes share a consumer without doubling it."""

    __tablename__ = "event_cursor"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    xact: Mapped[int | None] = mapped_column(BigInteger)
    event_id: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class StreamTicket(Base):
    """A single-use ticket that opens one event stream (`POST /events/stream-ticket`), for
    browsers' EventSource, which cannot send an Authorization header. Only its SHA-256 is kept;
    it is deleted when used, so it opens one stream whichever process it reaches."""

    __tablename__ = "stream_ticket"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    # The user's token version when it was issued: a password change since voids it.
    token_version: Mapped[int]
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
