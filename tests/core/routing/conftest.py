"""Rules and teams written as an admin would have them (rows, as the API stores them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.enums import ActorType
from doxa.core.events.models import Event
from doxa.core.routing.models import Rule
from doxa.core.teams.models import Team

MakeRule = Callable[..., Rule]
MakeTeam = Callable[[str], Team]


@pytest.fixture
def make_rule(clean: Context) -> MakeRule:
    def make(
        *then: dict[str, Any],
        position: int = 0,
        stop: bool = False,
        name: str | None = None,
        **when: list[dict[str, Any]],
    ) -> Rule:
        with transaction(clean.sessions) as db:
            rule = Rule(
                name=name or f"rule {position}",
                position=position,
                when=when,
                then=list(then),
                stop=stop,
            )
            db.add(rule)
        return rule

    return make


@pytest.fixture
def make_team(clean: Context) -> MakeTeam:
    def make(name: str) -> Team:
        with transaction(clean.sessions) as db:
            team = Team(name=name)
            db.add(team)
        return team

    return make


def rule_events(context: Context, ticket_id: int) -> list[Event]:
    with context.sessions() as db:
        query = select(Event).where(
            Event.ticket_id == ticket_id, Event.actor_type == ActorType.RULE
        )
        return list(db.scalars(query.order_by(Event.sequence)))


def cond(field: str, op: str, value: object) -> dict[str, object]:
    return {"field": field, "op": op, "value": value}


# The real app with its SMTP listener (tests/gateway), for mail played through smtplib.
from tests.gateway.conftest import start_smtp as start_smtp  # noqa: E402
