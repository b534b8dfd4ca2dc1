from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from doxa.core.db import Base, UTCDateTime, str_enum, utcnow
from doxa.core.enums import (
    Channel,
    ClassificationState,
    DeliveryState,
    Direction,
    Priority,
    SlaState,
    Status,
    ThreadedBy,
)
from doxa.core.sla.models import SlaPolicy
from doxa.core.teams.models import Team
from doxa.core.users.models import User

MAX_TAGS = 50
MAX_TAG_CHARS = 64


def normalize_tags(tags: Iterable[str]) -> list[str]:
    """Tags in the one spelling kept and compared: trimmed, lower-case, each once, sorted."""
    return sorted({tag.strip().lower() for tag in tags} - {""})


class Ticket(Base):
    __tablename__ = "ticket"

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(998))
    status: Mapped[Status] = mapped_column(str_enum(Status), default=Status.NEW)
    priority: Mapped[Priority] = mapped_column(str_enum(Priority), default=Priority.NORMAL)
    category: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[Channel] = mapped_column(str_enum(Channel))
    requester_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    # The mailbox that received it; a mailbox may pin the category (SUPPORT_ADDRESSES addr=cat).
    mailbox: Mapped[str | None] = mapped_column(String(320))
    pinned_category: Mapped[str | None] = mapped_column(String(64))
    # A reply to a closed ticket opens a new one that points back here.
    previous_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"))
    # Addresses copied on the conversation (Cc: of the opening and participants' messages);
    # they are participants and may write into the ticket by mail.
    cc: Mapped[list[str]] = mapped_column(JSON, default=list)
    needs_triage: Mapped[bool] = mapped_column(default=False)
    classification_state: Mapped[ClassificationState] = mapped_column(
        str_enum(ClassificationState), default=ClassificationState.PENDING
    )
    ai_category: Mapped[str | None] = mapped_column(String(64))
    ai_priority: Mapped[Priority | None] = mapped_column(str_enum(Priority))
    ai_confidence: Mapped[float | None]
    ai_priority_confidence: Mapped[float | None]
    ai_model_version: Mapped[str | None] = mapped_column(String(64))
    # The terms that weighed most for ai_category (staff only).
    ai_explanation: Mapped[list[str] | None] = mapped_column(JSON)
    language: Mapped[str | None] = mapped_column(String(8))  # ISO 639-1; None when unsure
    # For similar tickets (core/triage/similar.py); deferred: no ticket read needs it.
    text_vector: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    classification_attempts: Mapped[int] = mapped_column(default=0)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    # Subject and every public message's text, and every internal note's text, both kept by
    # tickets.service.add_text for full-text search (PostgreSQL: the generated search_vector,
    # notes weighted D so clients' queries skip them; SQLite: the ticket_fts FTS5 table).
    search_text: Mapped[str] = mapped_column(Text, default="", deferred=True)
    note_text: Mapped[str] = mapped_column(Text, default="", deferred=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id", ondelete="SET NULL"))
    # Whether who opened it is proven (DMARC/DKIM as for staff mail, or the API): rules may
    # trust `requester.*` only then (the condition field `authenticated`).
    authenticated: Mapped[bool] = mapped_column(default=False)
    # The last event's sequence: the next event takes it + 1 under the ticket row's lock.
    event_sequence: Mapped[int] = mapped_column(default=0)
    # Routing: when the rules first ran (None: not yet), and whether staff have moved the ticket
    # (team or assignee) since, so that a late classification does not route it again.
    routed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    staff_routed: Mapped[bool] = mapped_column(default=False)
    # Service level: the policy that applies, the clock's state and its due times.
    sla_policy_id: Mapped[int | None] = mapped_column(ForeignKey("sla_policy.id"))
    sla_state: Mapped[SlaState | None] = mapped_column(str_enum(SlaState))
    first_response_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_response_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolution_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The soonest due time of a target still running (sort=sla_due, sla_due_before).
    sla_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The next moment the sweep must look at this ticket (a warning or a due time).
    sla_alarm_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sla_breached: Mapped[list[str]] = mapped_column(JSON, default=list)
    sla_warned: Mapped[list[str]] = mapped_column(JSON, default=list)  # in the current cycle
    sla_paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The first customer message no public staff reply has answered yet (next response).
    awaiting_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    requester: Mapped[User] = relationship(foreign_keys=[requester_id])
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id])
    team: Mapped[Team | None] = relationship()
    sla_policy: Mapped[SlaPolicy | None] = relationship()
    # Loaded when read (a page of tickets loads them with selectinload): intake never needs them.
    tag_rows: Mapped[list[TicketTag]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="TicketTag.tag"
    )

    __table_args__ = (
        Index(None, "status", "id"),
        Index(None, "priority", "id"),
        Index(None, "category", "id"),
        Index(None, "channel", "id"),
        Index(None, "requester_id", "id"),
        Index(None, "assignee_id", "id"),
        Index(None, "needs_triage", "id"),
        Index(None, "classification_state", "id"),
        Index(None, "team_id", "id"),
        Index(None, "assignee_id", "status"),  # a member's load
        Index(None, "team_id", "assignee_id", "status"),  # a team's queue (core/teams/assignment)
        Index(None, "routed_at", "created_at"),
        Index(None, "sla_state", "id"),
        Index(None, "sla_due_at", "id"),
        Index(None, "team_id", "sla_due_at", "id"),
        Index(None, "sla_alarm_at"),
    )

    @property
    def reference(self) -> str:
        return f"[#{self.id}]"

    @property
    def tags(self) -> list[str]:
        return sorted(row.tag for row in self.tag_rows)

    @tags.setter
    def tags(self, tags: Iterable[str]) -> None:
        """The whole list: rows of tags kept stay, others go, new ones are added."""
        wanted = normalize_tags(tags)
        kept = [row for row in self.tag_rows if row.tag in wanted]
        have = {row.tag for row in kept}
        self.tag_rows = kept + [TicketTag(tag=tag) for tag in wanted if tag not in have]


class Message(Base):
    __tablename__ = "message"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    direction: Mapped[Direction] = mapped_column(str_enum(Direction))
    internal: Mapped[bool] = mapped_column(default=False)
    body: Mapped[str] = mapped_column(Text)
    full_body: Mapped[str] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    threaded_by: Mapped[ThreadedBy | None] = mapped_column(str_enum(ThreadedBy))
    delivery_state: Mapped[DeliveryState | None] = mapped_column(str_enum(DeliveryState))
    delivery_error: Mapped[str | None] = mapped_column(Text)
    # Automatic messages (acknowledgments): the subject they are sent with, and the recipient's
    # mailbox as the hourly caps count it (acknowledgments.recipient_key). Replies: None.
    subject: Mapped[str | None] = mapped_column(String(998))
    recipient_key: Mapped[str | None] = mapped_column(String(320))
    notes: Mapped[list[str]] = mapped_column(JSON, default=list)
    intake_event_id: Mapped[int | None] = mapped_column(ForeignKey("intake_event.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="message", lazy="selectin", order_by="Attachment.id"
    )
    author: Mapped[User | None] = relationship(foreign_keys=[author_id])
    # Lets intake add a new ticket and its first message in one flush (one INSERT each).
    ticket: Mapped[Ticket] = relationship(foreign_keys=[ticket_id])

    # For the hourly acknowledgment caps: outbound mail of the last hour.
    __table_args__ = (Index(None, "direction", "created_at"),)


class Attachment(Base):
    __tablename__ = "attachment"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("message.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    content_id: Mapped[str | None] = mapped_column(String(998))
    inline: Mapped[bool] = mapped_column(default=False)
    # None when the file was over MAX_ATTACHMENT_BYTES: metadata kept, bytes not stored.
    content: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    message: Mapped[Message] = relationship(back_populates="attachments")


class TicketTag(Base):
    """A ticket's tags, one row each, so `?tag=` is an index lookup on both databases."""

    __tablename__ = "ticket_tag"

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("ticket.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)

    __table_args__ = (Index(None, "tag", "ticket_id"),)
