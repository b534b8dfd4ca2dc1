from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from doxa.core.enums import Channel, IntakeStatus


class IntakeEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    channel: Channel
    external_id: str | None
    status: IntakeStatus
    reason: str | None
    error: str | None
    ticket_id: int | None
    duplicate_of_id: int | None
    mailbox: str | None
    envelope_from: str | None
    sender: str | None
    raw_size: int
    attempts: int
    received_at: datetime
    processed_at: datetime | None
    released_by_id: int | None
