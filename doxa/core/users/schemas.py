from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from doxa.core.auth import MAX_PASSWORD_BYTES
from doxa.core.enums import Role
from doxa.core.schemas import NoNul, OneLine


def _fits_bcrypt(password: str) -> str:
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise ValueError(f"must be at most {MAX_PASSWORD_BYTES} bytes")
    return password


Password = Annotated[
    str, Field(min_length=8, max_length=MAX_PASSWORD_BYTES), NoNul, AfterValidator(_fits_bcrypt)
]
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
    email: EmailStr
    password: Password
    full_name: FullName | None = None


class UserCreate(Registration):
    role: Role = Role.CLIENT


class UserUpdate(BaseModel):
    full_name: FullName | None = None
    role: Role | None = None
    is_active: bool | None = None
    password: Password | None = None


class AccessToken(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int
