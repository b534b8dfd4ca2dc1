from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from doxa.core.db import Base, UTCDateTime, str_enum, utcnow
from doxa.core.enums import Assignment


class Team(Base):
    __tablename__ = "team"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # A support address this team owns: mail to it lands here without a rule.
    mailbox: Mapped[str | None] = mapped_column(String(320), unique=True)
    assignment: Mapped[Assignment] = mapped_column(str_enum(Assignment), default=Assignment.MANUAL)
    capacity: Mapped[int | None]  # most open tickets per member (over all teams); None: no cap
    # Round robin's turn, shared by every process: the member assigned last (taken under the
    # team row's lock).
    last_assignee_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class TeamMember(Base):
    __tablename__ = "team_member"

    team_id: Mapped[int] = mapped_column(
        ForeignKey("team.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), primary_key=True, index=True
    )
