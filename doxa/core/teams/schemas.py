from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from doxa.core.enums import Assignment
from doxa.core.schemas import Id, NoNul, OneLine, example

MAX_MEMBERS = 500

TeamName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), NoNul, OneLine
]
Address = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=3, max_length=320), NoNul, OneLine
]
Capacity = Annotated[int, Field(ge=1, le=10_000)]

MAILBOX = (
    "a support address (one of SUPPORT_ADDRESSES) whose new tickets land in this team without a "
    "rule, or null; each address belongs to one team at most"
)
MEMBERS = "active agents and admins; the whole list"
CAPACITY = "the most `new` and `open` tickets per member, counted over every team; null: no cap"


class TeamCreate(BaseModel):
    # Valid as written on any help desk: no mailbox (each desk has its own) and no members.
    model_config = example(name="Billing", mailbox=None, assignment="round_robin", capacity=10)

    name: TeamName
    mailbox: Address | None = Field(None, description=MAILBOX)
    member_ids: list[Id] = Field(default_factory=list, max_length=MAX_MEMBERS, description=MEMBERS)
    assignment: Assignment = Field(
        Assignment.MANUAL,
        description="`manual`, or how a new unassigned ticket gets its member: "
        "`round_robin` (in turn) or `least_open` (the fewest open tickets)",
    )
    capacity: Capacity | None = Field(None, description=CAPACITY)


class TeamUpdate(BaseModel):
    """Only the fields sent change, e.g. `{"capacity": 12}` or `{"mailbox": null}`."""

    # Sent as it stands from Swagger, the example must change nothing: an empty change.
    model_config = example()

    name: TeamName | None = None
    mailbox: Address | None = Field(None, description=MAILBOX)
    member_ids: list[Id] | None = Field(None, max_length=MAX_MEMBERS, description=MEMBERS)
    assignment: Assignment | None = None
    capacity: Capacity | None = Field(None, description=CAPACITY)


class TeamRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 2,
                    "name": "Billing",
                    "mailbox": "billing@example.com",
                    "member_ids": [3, 5, 8],
                    "assignment": "round_robin",
                    "capacity": 10,
                }
            ]
        },
    )

    id: int
    name: str
    mailbox: str | None
    member_ids: list[int] = Field(description="sorted")
    assignment: Assignment
    capacity: int | None
