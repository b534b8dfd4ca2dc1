"""`bench/webhooks.py --routing`: the setup of issue 21's CPU target, written into the database
before `doxa serve` starts: 3 round-robin teams of 2 agents, 2 SLA policies, and 20 active
rules of 3 conditions each, 5 of them reading `body contains`, 3 of which match every form the
benchmark posts (`Question N about my order` / `Hello, order ORD-N has not arrived yet.`)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from doxa.core.enums import Assignment, Role
from doxa.core.routing.actions import read_then
from doxa.core.routing.conditions import read_when
from doxa.core.routing.models import Rule
from doxa.core.sla.models import SlaPolicy
from doxa.core.teams.models import Team, TeamMember
from doxa.core.users.models import User


def _c(field: str, op: str, value: object) -> dict[str, object]:
    return {"field": field, "op": op, "value": value}


def rules(team_ids: list[int]) -> list[dict[str, Any]]:
    """20 rules; the three marked match every benchmark form, the others fail at some
    condition (some at the first, some at the last), as a real rule set mostly does."""
    one, two, three = team_ids
    matching = [
        (
            [
                _c("channel", "is", "form"),
                _c("subject", "contains", "order"),
                _c("body", "contains", "not arrived"),
            ],
            [{"set": "team_id", "value": one}],
        ),
        (
            [
                _c("channel", "in", ["form", "email"]),
                _c("ai_confidence", "gte", 0),
                _c("body", "contains", "order"),
            ],
            [{"set": "priority", "value": "high"}],
        ),
        (
            [
                _c("requester.domain", "is", "example.org"),
                _c("subject", "contains", "question"),
                _c("metadata.page", "is", "/contact"),
            ],
            [{"set": "status", "value": "open"}],
        ),
    ]
    missing = [
        (
            [
                _c("channel", "is", "form"),
                _c("subject", "contains", "order"),
                _c("body", "contains", "refund"),
            ],
            [{"set": "team_id", "value": two}],
        ),
        (
            [
                _c("channel", "is", "form"),
                _c("requester.domain", "is_not", "bigcorp.example"),
                _c("body", "contains", "invoice charged twice"),
            ],
            [{"set": "team_id", "value": two}],
        ),
        (
            [
                _c("body", "contains", "password reset"),
                _c("channel", "is", "form"),
                _c("priority", "lte", "urgent"),
            ],
            [{"set": "team_id", "value": three}],
        ),
    ]
    for n in range(14):
        field = ["requester.domain", "subject", "mailbox", "language"][n % 4]
        miss = {
            "requester.domain": f"customer{n}.example",
            "subject": f"outage{n}",
            "mailbox": f"team{n}@example.com",
            "language": "ja",
        }[field]
        op = "contains" if field == "subject" else "is"
        when = [
            _c("channel", "in", ["form", "email", "api"]),
            _c("priority", "gte", "low"),
            _c(field, op, miss),
        ]
        if n % 2:
            when.reverse()  # fails at its first condition
        missing.append((when, [{"set": "team_id", "value": [one, two, three][n % 3]}]))
    made = [{"when": {"all": when, "any": []}, "then": then} for when, then in matching + missing]
    # Spread the matching ones: positions 3, 10 and 17.
    order = [*made[3:6], made[0], *made[6:12], made[1], *made[12:18], made[2], *made[18:]]
    return [dict(rule, position=10 * n, name=f"bench rule {n}") for n, rule in enumerate(order)]


def install(engine: sa.Engine) -> None:
    with Session(engine) as db, db.begin():
        agents = [
            User(email=f"agent{n}@bench.example", full_name=f"Agent {n}", role=Role.AGENT)
            for n in range(6)
        ]
        teams = [
            Team(name=name, assignment=Assignment.ROUND_ROBIN, capacity=1000)
            for name in ("Orders", "Billing", "Accounts")
        ]
        db.add_all([*agents, *teams])
        db.flush()
        db.add_all(
            TeamMember(team_id=team.id, user_id=agents[2 * n + k].id)
            for n, team in enumerate(teams)
            for k in range(2)
        )
        db.add_all(
            [
                SlaPolicy(
                    name="Urgent",
                    position=0,
                    when={"all": [_c("priority", "is", "urgent")]},
                    targets={"urgent": {"first_response": 60, "resolution": 480}},
                ),
                SlaPolicy(
                    name="Everyone",
                    position=1,
                    when={},
                    targets={
                        p: {"first_response": 240, "next_response": 480, "resolution": 2880}
                        for p in ("low", "normal", "high", "urgent")
                    },
                ),
            ]
        )
        for rule in rules([team.id for team in teams]):
            read_when(rule["when"]), read_then(rule["then"])  # valid as the API would take it
            db.add(Rule(**rule, active=True, stop=False))
