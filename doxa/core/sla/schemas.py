"""Calendars, SLA policies and a ticket's `sla`, as the API reads and writes them.

Shapes only: what a calendar's hours or a policy's targets may hold is checked by the service
(`doxa.core.sla.service`), whose 422 names the path of the bad part (`hours.mon[0]: ...`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from doxa.core.enums import SlaState
from doxa.core.schemas import Id, NoNul, OneLine, example

Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), NoNul, OneLine
]
Hours = dict[str, list[list[str]]]
Targets = dict[str, dict[str, int]]
HOURS_HELP = (
    'per weekday (`mon` … `sun`) the working ranges in local time, `[["09:00", "12:00"], '
    '["13:00", "17:00"]]`; `"24:00"` ends a day; a day left out is not worked'
)
TARGETS_HELP = (
    "per priority (`low`, `normal`, `high`, `urgent`): `{first_response, next_response, "
    "resolution}` in business minutes, each optional"
)

CALENDAR_EXAMPLE: dict[str, Any] = {
    "name": "Berlin office",
    "timezone": "Europe/Berlin",
    "hours": {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": ["2026-12-25", "2026-12-26", "2027-01-01"],
}
POLICY_EXAMPLE: dict[str, Any] = {
    "name": "Billing",
    "position": 10,
    "active": True,
    "when": {"all": [{"field": "category", "op": "is", "value": "billing"}]},
    "calendar_id": None,
    "targets": {
        "normal": {"first_response": 240, "resolution": 2400},
        "urgent": {"first_response": 60, "next_response": 60, "resolution": 480},
    },
    "warn_at": 0.8,
}


class CalendarCreate(BaseModel):
    model_config = example(**CALENDAR_EXAMPLE)

    name: Name
    timezone: Annotated[str, StringConstraints(max_length=64)] = Field(
        description="an IANA time zone, e.g. `Europe/Berlin`"
    )
    hours: Hours = Field(description=HOURS_HELP)
    holidays: list[date] = Field(default_factory=list, max_length=1000)


class CalendarUpdate(BaseModel):
    """Only the fields sent change."""

    model_config = example(holidays=["2026-12-24", "2026-12-25", "2026-12-26", "2027-01-01"])

    name: Name | None = None
    timezone: Annotated[str, StringConstraints(max_length=64)] | None = None
    hours: Hours | None = Field(None, description=HOURS_HELP)
    holidays: list[date] | None = Field(None, max_length=1000)


class CalendarRead(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={"examples": [{"id": 1, **CALENDAR_EXAMPLE}]},
    )

    id: int
    name: str
    timezone: str
    hours: Hours
    holidays: list[date]


class SlaPolicyCreate(BaseModel):
    model_config = example(**POLICY_EXAMPLE)

    name: Name
    position: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    active: bool = True
    when: dict[str, Any] = Field(
        default_factory=dict,
        description="conditions as a routing rule's; `{}` matches every ticket",
    )
    calendar_id: Id | None = Field(None, description="business hours; null: around the clock")
    targets: Targets = Field(description=TARGETS_HELP)
    warn_at: float = Field(0.8, description="the fraction of a target at which it warns")


class SlaPolicyUpdate(BaseModel):
    """Only the fields sent change; tickets already under the policy keep their due times
    until their priority, team or channel changes."""

    model_config = example(warn_at=0.75)

    name: Name | None = None
    position: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    active: bool | None = None
    when: dict[str, Any] | None = None
    calendar_id: Id | None = None
    targets: Targets | None = Field(None, description=TARGETS_HELP)
    warn_at: float | None = None


class SlaPolicyRead(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={"examples": [{"id": 1, **POLICY_EXAMPLE}]},
    )

    id: int
    name: str
    position: int
    active: bool
    when: dict[str, Any]
    calendar_id: int | None
    targets: Targets
    warn_at: float


SLA_HELP = (
    "null without a policy; else the due times of the targets still to meet (null when met, "
    "or none), `state` and the targets missed"
)
FINISHED = ("resolved", "closed")


class SlaRead(BaseModel):
    """A ticket's service level: due times of the targets still running, what was missed."""

    policy_id: int
    state: SlaState = Field(description="ok | warning | breached | paused | met")
    first_response_due_at: datetime | None
    next_response_due_at: datetime | None
    resolution_due_at: datetime | None
    breached: list[str] = Field(description="the targets missed")

    @classmethod
    def of(cls, ticket: Any) -> SlaRead | None:
        """The `sla` of a ticket (None without a policy); a finished ticket has nothing due."""
        if ticket.sla_policy_id is None or ticket.sla_state is None:
            return None
        finished = str(ticket.status) in FINISHED
        return cls(
            policy_id=ticket.sla_policy_id,
            state=ticket.sla_state,
            first_response_due_at=None if finished else ticket.first_response_due_at,
            next_response_due_at=None if finished else ticket.next_response_due_at,
            resolution_due_at=None if finished else ticket.resolution_due_at,
            breached=list(ticket.sla_breached or []),
        )
