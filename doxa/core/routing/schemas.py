"""Rules as the API reads and writes them. `when` and `then` are read by conditions.py and
actions.py (not by these models), so a bad part is named by its path: `then[1].value: ...`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints

from doxa.core.schemas import Id, NoNul, OneLine

Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NoNul, OneLine
]
Position = Annotated[int, Field(ge=0, le=1_000_000)]

EXAMPLE_WHEN: JsonValue = {
    "all": [
        {"field": "ai_category", "op": "is", "value": "billing"},
        {"field": "ai_confidence", "op": "gte", "value": 0.6},
    ],
    "any": [],
}
EXAMPLE_THEN: JsonValue = [{"set": "priority", "value": "high"}, {"add_tag": "billing"}]


class RuleCreate(BaseModel):
    # Valid as written on a fresh install: it names no team or user that may not exist.
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Billing questions are high priority",
                    "position": 10,
                    "active": True,
                    "when": EXAMPLE_WHEN,
                    "then": EXAMPLE_THEN,
                    "stop": False,
                }
            ]
        }
    )

    name: Name
    position: Position = 0
    active: bool = True
    when: dict[str, Any] | None = Field(
        None,
        description="`{all: [condition], any: [condition]}`; a condition is `{field, op, value}`"
        " (null or empty: every ticket)",
    )
    then: list[Any] = Field(
        description='`[{set: "team_id" | "priority" | "category" | "assignee_id" | "status",'
        ' value} | {add_tag: "..."}]`'
    )
    stop: bool = Field(False, description="no later rule runs after this one matched")


class RuleUpdate(BaseModel):
    """Only the fields sent change; the rule as a whole is read again."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"active": False}]})

    name: Name | None = None
    position: Position | None = None
    active: bool | None = None
    when: dict[str, Any] | None = None
    then: list[Any] | None = None
    stop: bool | None = None


class RuleRead(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 3,
                    "name": "Billing questions are high priority",
                    "position": 10,
                    "active": True,
                    "when": EXAMPLE_WHEN,
                    "then": EXAMPLE_THEN,
                    "stop": False,
                    "created_at": "2026-12-01T09:00:00Z",
                    "updated_at": "2026-12-01T09:00:00Z",
                }
            ]
        },
    )

    id: int
    name: str
    position: int
    active: bool
    when: dict[str, Any]
    then: list[dict[str, Any]]
    stop: bool
    created_at: datetime
    updated_at: datetime


class RuleTest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"ticket_id": 42}]})

    ticket_id: Id


class ActionOutcome(BaseModel):
    action: dict[str, Any] = Field(description="the action as the rule writes it")
    skipped: str | None = Field(description="why it would be skipped (a team gone), or null")


class RuleMatch(BaseModel):
    rule_id: int
    name: str
    position: int
    stop: bool
    actions: list[ActionOutcome]


class RuleTestRead(BaseModel):
    """Which active rules match the ticket, in order, and what each would do; nothing changed."""

    ticket_id: int
    matches: list[RuleMatch]
