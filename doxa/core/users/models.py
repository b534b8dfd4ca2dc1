from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from doxa.core.db import Base, UTCDateTime, str_enum, utcnow
from doxa.core.enums import DeliveryState, Role, TokenPurpose


class User(Base):
    __tablename__ = "user"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    full_name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(str_enum(Role))
    # None for users first seen through an inbound message: they cannot log in until the
    # mailbox owner sets a password through a mailed link.
    password_hash: Mapped[str | None] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(default=True)
    # In every access token; bumping it (password change or reset) ends the earlier tokens.
    token_version: Mapped[int] = mapped_column(default=0)
    # Set whenever an access token is issued: an account someone has used is never promoted by
    # the DOXA_ADMIN_EMAIL bootstrap.
    token_issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Agents: whether assignment may pick them, which mail notifications they get, and when
    # assignment last picked them (least-open's tie-break).
    available: Mapped[bool] = mapped_column(default=True)
    notifications: Mapped[dict[str, bool]] = mapped_column(JSON, default=dict)
    last_assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    @property
    def is_staff(self) -> bool:
        return self.role in (Role.AGENT, Role.ADMIN)


class AccountNetwork(Base):
    """A client network that signed in to an account, and when it last did: past the account's
    failure cap such a network may still try (SPEC). In the database, so every process knows."""

    __tablename__ = "account_network"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), primary_key=True
    )
    network: Mapped[str] = mapped_column(String(64), primary_key=True)
    signed_in_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AccountToken(Base):
    """A mailed, single-use link token (sign-up or password reset); only its SHA-256 is kept."""

    __tablename__ = "account_token"
    __table_args__ = (Index(None, "email", "purpose"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[TokenPurpose] = mapped_column(str_enum(TokenPurpose))
    # An address, not a user: a sign-up creates nothing until the token comes back.
    email: Mapped[str] = mapped_column(String(320))
    full_name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AccountMail(Base):
    """Account mail waiting for the relay; the link is blanked once the relay has it."""

    __tablename__ = "account_mail"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_id: Mapped[int | None] = mapped_column(
        ForeignKey("account_token.id", ondelete="SET NULL")
    )
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    delivery_state: Mapped[DeliveryState] = mapped_column(
        str_enum(DeliveryState), default=DeliveryState.QUEUED, index=True
    )
    delivery_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
