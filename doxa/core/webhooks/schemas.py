from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from doxa.core.enums import EventType, WebhookDeliveryState
from doxa.core.schemas import NoNul, OneLine, example
from doxa.core.webhooks.models import MAX_URL

ALL = "*"
TYPES = frozenset(event_type.value for event_type in EventType)
EVENTS = f'event types to send ({", ".join(EventType)}), or `["*"]` for every one'
INTERNAL = "send internal notes (message.created of an internal note); false by default"


def _event_types(value: list[str]) -> list[str]:
    if value == [ALL]:
        return value
    unknown = [name for name in value if name not in TYPES]
    if unknown or not value:
        raise ValueError(f"unknown event types {unknown}; use {EVENTS}")
    return sorted(set(value))


Url = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=8, max_length=MAX_URL), NoNul, OneLine
]
Events = Annotated[list[str], Field(min_length=1, max_length=20), AfterValidator(_event_types)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500), NoNul]


class WebhookCreate(BaseModel):
    model_config = example(url="https://hooks.example.com/doxa", events=["ticket.created"])

    url: Url = Field(description="where events are POSTed (http or https)")
    events: Events = Field(default_factory=lambda: [ALL], description=EVENTS)
    description: Description | None = None
    include_internal: bool = Field(False, description=INTERNAL)
    active: bool = True


class WebhookUpdate(BaseModel):
    """Only the fields sent change; `{"active": true}` turns a disabled subscription on again."""

    model_config = example()

    url: Url | None = None
    events: Events | None = None
    description: Description | None = None
    include_internal: bool | None = None
    active: bool | None = None


class WebhookRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    url: str
    events: list[str]
    active: bool
    description: str | None
    include_internal: bool
    disabled_reason: str | None = Field(description="why DOXA turned it off (410, 24 h failing)")
    created_at: datetime


class WebhookCreated(WebhookRead):
    secret: str = Field(description="the signing secret (`whsec_…`), shown in this answer only")


class SecretRead(BaseModel):
    secret: str = Field(
        description="the new signing secret, shown in this answer only; the old one signs too "
        "for 24 hours"
    )


class AttemptRead(BaseModel):
    at: datetime
    status_code: int | None = Field(description="the receiver's HTTP status; null: no answer")
    error: str | None
    duration_ms: int


class DeliveryRead(BaseModel):
    id: int
    event_id: int
    event_type: str
    state: WebhookDeliveryState
    attempts: list[AttemptRead]
    next_attempt_at: datetime | None = Field(description="when it is tried next (pending only)")
