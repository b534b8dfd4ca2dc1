"""Routing rules from outside: CRUD and roles, bad rules named by path, what rules do to a
ticket (order, stop, text conditions), trying them, routing on demand."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.enums import ClassificationState, Role
from doxa.core.events.models import Event
from doxa.core.routing.models import Rule
from doxa.core.teams.models import Team
from doxa.core.tickets.models import Ticket
from doxa.main import create_app
from tests.conftest import AsUser, MakeTicket, MakeUser, make_settings

RULES = "/api/v1/rules"
Client = TestClient


def cond(field: str, op: str, value: object) -> dict[str, object]:
    return {"field": field, "op": op, "value": value}


def rule(
    *then: dict[str, Any],
    position: int = 0,
    stop: bool = False,
    name: str = "r",
    **when: list[dict[str, Any]],
) -> dict[str, Any]:
    return {"name": name, "position": position, "when": when, "then": list(then), "stop": stop}


@pytest.fixture
def admin(as_user: AsUser, make_user: MakeUser) -> Client:
    return as_user(make_user(Role.ADMIN))


@pytest.fixture
def agent(as_user: AsUser, make_user: MakeUser) -> Client:
    return as_user(make_user(Role.AGENT))


@pytest.fixture
def team(clean: Context) -> Callable[[str], int]:
    def make(name: str) -> int:
        with transaction(clean.sessions) as db:
            row = Team(name=name)
            db.add(row)
            db.flush()
            return row.id

    return make


def _created(http: Client, body: dict[str, Any]) -> dict[str, Any]:
    response = http.post(RULES, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _route(http: Client, ticket_id: int) -> dict[str, Any]:
    response = http.post(f"/api/v1/tickets/{ticket_id}/route")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _events(context: Context, ticket_id: int) -> list[Event]:
    with context.sessions() as db:
        query = select(Event).where(Event.ticket_id == ticket_id).order_by(Event.sequence)
        return list(db.scalars(query))


class TestCrud:
    def test_admins_write_staff_read_clients_never(
        self, admin: Client, agent: Client, as_user: AsUser, make_user: MakeUser, client: Client
    ) -> None:
        body = rule(
            {"set": "priority", "value": "high"},
            {"add_tag": "vip"},
            position=5,
            all=[cond("requester.domain", "is", "bigcorp.example")],
        )
        made = _created(admin, body)
        assert made["name"] == "r" and made["position"] == 5 and made["active"] is True
        assert made["when"] == {"all": body["when"]["all"], "any": []}
        assert made["then"] == body["then"] and made["stop"] is False
        path = f"{RULES}/{made['id']}"
        assert agent.get(RULES).json() == {"items": [made], "next_cursor": None}
        assert agent.get(path).json() == made
        assert agent.post(RULES, json=body).status_code == 403
        assert agent.patch(path, json={"active": False}).status_code == 403
        assert agent.delete(path).status_code == 403
        customer = as_user(make_user(Role.CLIENT))
        assert customer.get(RULES).status_code == 403
        assert customer.post(f"{RULES}/test", json={"ticket_id": 1}).status_code == 403
        assert client.get(RULES).status_code == 401
        changed = admin.patch(path, json={"active": False, "stop": True})
        assert changed.status_code == 200 and changed.json()["active"] is False
        assert changed.json()["stop"] is True and changed.json()["then"] == body["then"]
        assert admin.delete(path).status_code == 204
        assert agent.get(path).status_code == 404
        assert admin.get(RULES).json()["items"] == []

    def test_rules_are_listed_in_the_order_they_run(self, admin: Client) -> None:
        then = {"add_tag": "x"}
        for name, position in (("c", 30), ("a", 10), ("b", 20)):
            _created(admin, rule(then, position=position, name=name))
        assert [r["name"] for r in admin.get(RULES).json()["items"]] == ["a", "b", "c"]

    def test_at_most_200_rules(self, admin: Client, clean: Context) -> None:
        with transaction(clean.sessions) as db:
            db.add_all(Rule(name=f"r{n}", when={}, then=[{"add_tag": "x"}]) for n in range(200))
        response = admin.post(RULES, json=rule({"add_tag": "x"}))
        assert response.status_code == 409 and "200" in response.json()["detail"]


class TestBadRules:
    @pytest.mark.parametrize(
        ("body", "detail"),
        [
            (rule({"add_tag": "a"}, {"set": "team_id", "value": 42}), "then[1].value: no team 42"),
            (rule({"set": "team", "value": 1}), "then[0].set: 'team' cannot be set"),
            (rule({"set": "priority", "value": "asap"}), "then[0].value: 'asap' is not one of"),
            (
                rule({"set": "category", "value": "astrology"}),
                "then[0].value: unknown category 'astrology'",
            ),
            (rule({"add_tag": "x"}, all=[cond("subject", "gte", 3)]), "when.all[0].op: 'gte'"),
            (
                rule({"add_tag": "x"}, any=[cond("subject", "is", "a"), cond("colour", "is", 1)]),
                "when.any[1].field: unknown field 'colour'",
            ),
            (
                rule({"add_tag": "x"}, all=[cond("business_hours", "is", 9)]),
                "when.all[0].value: no calendar 9",
            ),
            (
                rule({"add_tag": "x"}, all=[cond("body", "contains", "...")]),
                "when.all[0].value: words or a phrase",
            ),
            ({**rule({"add_tag": "x"}), "then": []}, "then: must be a list of 1 to 20 actions"),
        ],
    )
    def test_the_detail_names_the_path_of_the_bad_part(
        self, admin: Client, body: dict[str, Any], detail: str
    ) -> None:
        response = admin.post(RULES, json=body)
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"].startswith(detail), response.json()["detail"]

    def test_an_inactive_agent_or_a_client_cannot_be_assigned(
        self, admin: Client, make_user: MakeUser
    ) -> None:
        for user in (make_user(Role.CLIENT), make_user(Role.AGENT, active=False)):
            response = admin.post(RULES, json=rule({"set": "assignee_id", "value": user.id}))
            assert response.status_code == 422
            assert (
                response.json()["detail"] == f"then[0].value: user {user.id} is not an active agent"
            )

    def test_a_patch_is_checked_as_a_whole_and_changes_nothing_when_bad(
        self, admin: Client, agent: Client
    ) -> None:
        made = _created(admin, rule({"add_tag": "x"}))
        bad = admin.patch(f"{RULES}/{made['id']}", json={"then": [{"set": "team_id", "value": 7}]})
        assert bad.status_code == 422 and bad.json()["detail"] == "then[0].value: no team 7"
        assert agent.get(f"{RULES}/{made['id']}").json() == made


class TestRouting:
    def test_actions_apply_in_position_order_until_a_stop(
        self, admin: Client, agent: Client, make_ticket: MakeTicket, context: Context
    ) -> None:
        _created(admin, rule({"set": "priority", "value": "low"}, position=20, name="low"))
        _created(admin, rule({"set": "priority", "value": "high"}, position=10, name="high"))
        _created(
            admin, rule({"set": "status", "value": "open"}, position=30, name="stops", stop=True)
        )
        _created(admin, rule({"set": "priority", "value": "urgent"}, position=40, name="after"))
        ticket = make_ticket()
        routed = _route(agent, ticket.id)
        assert routed["priority"] == "low" and routed["status"] == "open"
        names = [e.actor_name for e in _events(context, ticket.id) if e.actor_type == "rule"]
        assert names == ["high", "low", "stops"]

    def test_body_contains_reads_the_first_64_kib_only(
        self, admin: Client, agent: Client, make_ticket: MakeTicket
    ) -> None:
        _created(
            admin,
            rule(
                {"add_tag": "x"},
                {"set": "priority", "value": "urgent"},
                all=[cond("body", "contains", "lawsuit")],
            ),
        )
        early = make_ticket(body="a lawsuit " + "x" * 70_000)
        late = make_ticket(body="word " * 13_200 + "lawsuit")  # from character 66,000 on
        assert _route(agent, early.id)["priority"] == "urgent"
        assert _route(agent, late.id)["priority"] == "normal"

    def test_contains_ignores_case_and_accents(
        self, admin: Client, agent: Client, make_ticket: MakeTicket
    ) -> None:
        _created(
            admin,
            rule(
                {"set": "priority", "value": "high"},
                any=[cond("subject", "contains", "facture impayée")],
            ),
        )
        assert _route(agent, make_ticket(subject="FACTURE IMPAYEE n°3").id)["priority"] == "high"
        assert _route(agent, make_ticket(subject="Facture payée").id)["priority"] == "normal"

    def test_a_deleted_team_is_skipped_and_the_event_says_so(
        self,
        admin: Client,
        agent: Client,
        make_ticket: MakeTicket,
        context: Context,
        team: Callable[[str], int],
    ) -> None:
        billing = team("Billing")
        made = _created(
            admin,
            rule(
                {"set": "team_id", "value": billing},
                {"set": "priority", "value": "high"},
                name="to billing",
            ),
        )
        with transaction(context.sessions) as db:
            db.delete(db.get_one(Team, billing))
        ticket = make_ticket()
        routed = _route(agent, ticket.id)
        assert routed["priority"] == "high"
        with context.sessions() as db:
            assert db.get_one(Ticket, ticket.id).team_id is None
        skipped = [e for e in _events(context, ticket.id) if e.data.get("skipped")]
        assert [(e.actor_id, e.actor_name, e.data) for e in skipped] == [
            (
                made["id"],
                "to billing",
                {"skipped": {"set": "team_id", "value": billing}, "reason": f"no team {billing}"},
            )
        ]

    def test_an_event_keeps_the_rule_name_after_the_rule_is_deleted(
        self, admin: Client, agent: Client, make_ticket: MakeTicket
    ) -> None:
        made = _created(admin, rule({"set": "priority", "value": "high"}, name="VIP first"))
        ticket = make_ticket()
        _route(agent, ticket.id)
        assert admin.delete(f"{RULES}/{made['id']}").status_code == 204
        events = agent.get(f"/api/v1/tickets/{ticket.id}/events").json()["items"]
        by_rule = [e for e in events if e["actor"]["type"] == "rule"]
        assert by_rule and by_rule[0]["actor"]["name"] == "VIP first"
        assert by_rule[0]["data"]["changes"] == {"priority": ["normal", "high"]}

    def test_only_staff_route_and_clients_see_no_other_ticket(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        customer = make_user(Role.CLIENT)
        own = make_ticket(customer)
        assert as_user(customer).post(f"/api/v1/tickets/{own.id}/route").status_code == 403
        staff = as_user(make_user(Role.AGENT))
        assert staff.post("/api/v1/tickets/999/route").status_code == 404

    def test_api_tickets_are_authenticated(
        self, admin: Client, agent: Client, as_user: AsUser, make_user: MakeUser
    ) -> None:
        _created(
            admin,
            rule({"set": "priority", "value": "high"}, all=[cond("authenticated", "is", True)]),
        )
        opened = as_user(make_user(Role.CLIENT)).post(
            "/api/v1/tickets", json={"subject": "Hello", "body": "Hi"}
        )
        assert _route(agent, opened.json()["id"])["priority"] == "high"


class TestTryingRules:
    def test_rules_test_answers_what_would_happen_and_changes_nothing(
        self,
        admin: Client,
        agent: Client,
        make_ticket: MakeTicket,
        context: Context,
        team: Callable[[str], int],
    ) -> None:
        gone = team("Gone")
        first = _created(
            admin,
            rule(
                {"set": "team_id", "value": gone},
                all=[cond("subject", "contains", "printer")],
                name="a",
            ),
        )
        with transaction(context.sessions) as db:
            db.delete(db.get_one(Team, gone))
        second = _created(
            admin, rule({"set": "priority", "value": "urgent"}, position=1, stop=True, name="b")
        )
        _created(admin, rule({"add_tag": "never"}, position=2, name="c"))
        _created(
            admin,
            rule(
                {"add_tag": "no"},
                position=0,
                all=[cond("subject", "contains", "scanner")],
                name="d",
            ),
        )
        ticket = make_ticket(subject="Printer jam")
        before = agent.get(f"/api/v1/tickets/{ticket.id}").json()
        answer = agent.post(f"{RULES}/test", json={"ticket_id": ticket.id})
        assert answer.status_code == 200
        assert answer.json() == {
            "ticket_id": ticket.id,
            "matches": [
                {
                    "rule_id": first["id"],
                    "name": "a",
                    "position": 0,
                    "stop": False,
                    "actions": [
                        {"action": {"set": "team_id", "value": gone}, "skipped": f"no team {gone}"}
                    ],
                },
                {
                    "rule_id": second["id"],
                    "name": "b",
                    "position": 1,
                    "stop": True,
                    "actions": [
                        {"action": {"set": "priority", "value": "urgent"}, "skipped": None}
                    ],
                },
            ],
        }
        assert agent.get(f"/api/v1/tickets/{ticket.id}").json() == before
        assert [e.type for e in _events(context, ticket.id)] == [
            "ticket.created",
            "message.created",
        ]
        with context.sessions() as db:
            assert db.get_one(Ticket, ticket.id).routed_at is None

    def test_an_unknown_ticket_is_404(self, agent: Client) -> None:
        assert agent.post(f"{RULES}/test", json={"ticket_id": 12345}).status_code == 404


@pytest.fixture
def start_app(clean: Context) -> Iterator[Callable[..., TestClient]]:
    """The real app with the local classifier on (the suite's default is off)."""
    with ExitStack() as stack:

        def start(**overrides: object) -> TestClient:
            values = {"ai_provider": "local", "jwt_secret": clean.settings.secret, **overrides}
            settings = make_settings(clean.settings.database_url, **values)
            app = create_app(settings, context=replace(clean, settings=settings))
            return stack.enter_context(TestClient(app, raise_server_exceptions=False))

        yield start


def test_the_ai_category_sends_a_new_ticket_to_its_team(
    start_app: Callable[..., TestClient],
    clean: Context,
    make_user: MakeUser,
    team: Callable[[str], int],
) -> None:
    billing = team("Billing")
    with transaction(clean.sessions) as db:
        db.add(
            Rule(
                name="billing to Billing",
                when={"all": [cond("ai_category", "is", "billing")]},
                then=[{"set": "team_id", "value": billing}],
            )
        )
    http = start_app()
    customer = make_user(Role.CLIENT)
    token = clean.tokens.issue(customer.id, customer.token_version)
    opened = http.post(
        "/api/v1/tickets",
        json={
            "subject": "Charged twice on my invoice",
            "body": "My credit card was charged twice for the invoice this month. "
            "Please refund the duplicate payment.",
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert opened.status_code == 201
    deadline = time.monotonic() + 30
    while True:
        with clean.sessions() as db:
            ticket = db.get_one(Ticket, opened.json()["id"])
        if ticket.routed_at is not None or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert ticket.classification_state is ClassificationState.DONE
    assert ticket.ai_category == "billing" and ticket.team_id == billing
    with clean.sessions() as db:
        by_rule = db.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.ticket_id == ticket.id, Event.actor_name == "billing to Billing")
        )
    assert by_rule == 1
