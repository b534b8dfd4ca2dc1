"""Service levels from outside: calendars and policies, a ticket's `sla` as it goes through
its life (an injectable clock stands in for time), the sweep's events, the lists."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from doxa.core.context import Context
from doxa.core.enums import Role
from doxa.core.sla import clock, sweep
from tests.conftest import AsUser, MakeUser

BERLIN = ZoneInfo("Europe/Berlin")
OFFICE = {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, *parts: int) -> None:
        year, month, day, hour, minute = parts
        self.now = datetime(year, month, day, hour, minute, tzinfo=BERLIN).astimezone(UTC)

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def time(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClock]:
    # Tuesday 10:00 in Berlin, years ahead: the app's own sweep (real time) never reaches it
    fake = FakeClock(datetime(2037, 12, 8, 9, 0, tzinfo=UTC))
    monkeypatch.setattr(clock, "time_source", fake)
    yield fake


@pytest.fixture
def admin(as_user: AsUser, make_user: MakeUser) -> TestClient:
    return as_user(make_user(Role.ADMIN))


@pytest.fixture
def agent(as_user: AsUser, make_user: MakeUser) -> TestClient:
    return as_user(make_user(Role.AGENT))


@pytest.fixture
def customer(as_user: AsUser, make_user: MakeUser) -> TestClient:
    return as_user(make_user(Role.CLIENT))


def berlin(text: str) -> str:
    """A Berlin wall-clock time as the API answers it (UTC)."""
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).astimezone(UTC).isoformat()


def at(value: str | None) -> str | None:
    return None if value is None else datetime.fromisoformat(value).astimezone(UTC).isoformat()


def make_policy(
    admin: TestClient, targets: dict[str, dict[str, int]], *, office: bool = True, **extra: Any
) -> dict[str, Any]:
    calendar_id = None
    if office:
        calendar = {"name": "Berlin", "timezone": "Europe/Berlin", "hours": OFFICE}
        response = admin.post("/api/v1/calendars", json={**calendar, **extra.pop("calendar", {})})
        assert response.status_code == 201, response.text
        calendar_id = response.json()["id"]
    body = {"name": "Support", "targets": targets, "calendar_id": calendar_id, **extra}
    response = admin.post("/api/v1/sla-policies", json=body)
    assert response.status_code == 201, response.text
    policy: dict[str, Any] = response.json()
    return policy


def open_ticket(client: TestClient, **fields: Any) -> dict[str, Any]:
    response = client.post(
        "/api/v1/tickets", json={"subject": "VPN down", "body": "Since 9.", **fields}
    )
    assert response.status_code == 201, response.text
    ticket: dict[str, Any] = response.json()
    return ticket


def sla(client: TestClient, ticket_id: int) -> dict[str, Any]:
    response = client.get(f"/api/v1/tickets/{ticket_id}")
    assert response.status_code == 200
    value: dict[str, Any] = response.json()["sla"]
    return value


def due(client: TestClient, ticket_id: int) -> dict[str, str | None]:
    found = sla(client, ticket_id)
    return {name: at(found[f"{name}_due_at"]) for name in clock.DUE}


class TestCalendars:
    def test_admin_writes_and_staff_read_but_clients_may_not(
        self, admin: TestClient, agent: TestClient, customer: TestClient
    ) -> None:
        body = {
            "name": "Berlin",
            "timezone": "Europe/Berlin",
            "hours": OFFICE,
            "holidays": ["2037-12-25"],
        }
        created = admin.post("/api/v1/calendars", json=body)
        assert created.status_code == 201
        calendar_id = created.json()["id"]
        assert agent.get(f"/api/v1/calendars/{calendar_id}").json()["holidays"] == ["2037-12-25"]
        assert [c["id"] for c in agent.get("/api/v1/calendars").json()["items"]] == [calendar_id]
        assert agent.post("/api/v1/calendars", json=body).status_code == 403
        assert customer.get("/api/v1/calendars").status_code == 403
        assert (
            admin.patch(f"/api/v1/calendars/{calendar_id}", json={"name": "HQ"}).json()["name"]
            == "HQ"
        )

    @pytest.mark.parametrize(
        ("change", "detail"),
        [
            ({"hours": {}}, "hours: a calendar needs working hours"),
            ({"hours": {"mon": []}}, "hours: a calendar needs working hours"),
            ({"timezone": "Mars/Olympus"}, "timezone: 'Mars/Olympus' is not an IANA time zone"),
            ({"hours": {"mon": [["17:00", "09:00"]]}}, "hours.mon[0]: starts at 17:00"),
            ({"hours": {"mon": [["9:00", "17:00"]]}}, "hours.mon[0]: a time of day HH:MM"),
            (
                {"hours": {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}},
                "hours.mon[1]: overlaps",
            ),
            ({"hours": {"monday": [["09:00", "17:00"]]}}, "hours.monday: not a weekday"),
            ({"hours": {"tue": [["09:00", "24:01"]]}}, "hours.tue[0]: a time of day from 00:00"),
        ],
    )
    def test_a_calendar_that_cannot_be_read_is_refused_naming_the_path(
        self, admin: TestClient, change: dict[str, Any], detail: str
    ) -> None:
        body = {"name": "Berlin", "timezone": "Europe/Berlin", "hours": OFFICE, **change}
        response = admin.post("/api/v1/calendars", json=body)
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"].startswith(detail)

    def test_a_calendar_a_policy_uses_cannot_be_deleted(self, admin: TestClient) -> None:
        policy = make_policy(admin, {"normal": {"resolution": 60}})
        calendar_id = policy["calendar_id"]
        response = admin.delete(f"/api/v1/calendars/{calendar_id}")
        assert response.status_code == 409
        admin.patch(f"/api/v1/sla-policies/{policy['id']}", json={"calendar_id": None})
        assert admin.delete(f"/api/v1/calendars/{calendar_id}").status_code == 204
        assert admin.get(f"/api/v1/calendars/{calendar_id}").status_code == 404


class TestPolicies:
    @pytest.mark.parametrize(
        ("change", "detail"),
        [
            (
                {"when": {"all": [{"field": "colour", "op": "is", "value": "red"}]}},
                "when.all[0].field",
            ),
            ({"targets": {"normal": {"first_response": 0}}}, "targets.normal.first_response"),
            (
                {"targets": {"normal": {"first_reply": 5}}},
                "targets.normal.first_reply: not a target",
            ),
            ({"targets": {"asap": {"resolution": 5}}}, "targets.asap: not a priority"),
            ({"warn_at": 1.0}, "warn_at:"),
            ({"warn_at": 0}, "warn_at:"),
            ({"calendar_id": 99}, "calendar_id: no calendar 99"),
            (
                {"when": {"any": [{"field": "business_hours", "op": "is", "value": 7}]}},
                "when: business_hours names no calendar 7",
            ),
            (
                {"when": {"any": [{"field": "business_hours", "op": "is", "value": 2**40}]}},
                f"when: business_hours names no calendar {2**40}",
            ),
        ],
    )
    def test_a_policy_that_cannot_be_read_is_refused_naming_the_path(
        self, admin: TestClient, change: dict[str, Any], detail: str
    ) -> None:
        body = {"name": "Support", "targets": {"normal": {"resolution": 60}}, **change}
        response = admin.post("/api/v1/sla-policies", json=body)
        assert response.status_code == 422, response.text
        assert response.json()["detail"].startswith(detail)

    def test_agents_read_policies_and_only_admins_write(
        self, admin: TestClient, agent: TestClient, customer: TestClient
    ) -> None:
        policy = make_policy(admin, {"normal": {"resolution": 60}}, office=False)
        assert agent.get(f"/api/v1/sla-policies/{policy['id']}").json()["warn_at"] == 0.8
        assert (
            agent.patch(f"/api/v1/sla-policies/{policy['id']}", json={"warn_at": 0.5}).status_code
            == 403
        )
        assert customer.get("/api/v1/sla-policies").status_code == 403

    def test_a_policy_a_ticket_is_under_cannot_be_deleted(
        self, admin: TestClient, customer: TestClient, time: FakeClock
    ) -> None:
        policy = make_policy(admin, {"normal": {"resolution": 60}}, office=False)
        unused = make_policy(admin, {"normal": {"resolution": 60}}, office=False, active=False)
        open_ticket(customer)
        assert admin.delete(f"/api/v1/sla-policies/{policy['id']}").status_code == 409
        assert admin.delete(f"/api/v1/sla-policies/{unused['id']}").status_code == 204

    def test_the_first_matching_active_policy_by_position_applies(
        self, admin: TestClient, customer: TestClient, time: FakeClock
    ) -> None:
        urgent = {"all": [{"field": "priority", "op": "is", "value": "urgent"}]}
        targets = {"urgent": {"first_response": 30}, "normal": {"first_response": 600}}
        make_policy(admin, targets, office=False, position=0, active=False, name="Off")
        make_policy(admin, targets, office=False, position=1, name="Everything")
        chosen = make_policy(admin, targets, office=False, position=0, when=urgent, name="Urgent")
        ticket = open_ticket(customer, priority="urgent")
        assert ticket["sla"]["policy_id"] == chosen["id"]
        assert (
            at(ticket["sla"]["first_response_due_at"])
            == (time.now + timedelta(minutes=30)).isoformat()
        )
        assert open_ticket(customer)["sla"]["policy_id"] != chosen["id"]


class TestTicketSla:
    def test_without_a_policy_the_ticket_has_no_sla(self, customer: TestClient) -> None:
        assert open_ticket(customer)["sla"] is None

    def test_a_ticket_at_half_past_four_is_due_at_half_past_nine_the_next_day(
        self, admin: TestClient, customer: TestClient, time: FakeClock
    ) -> None:
        make_policy(admin, {"normal": {"first_response": 60}})
        time.set(2037, 12, 8, 16, 30)
        ticket = open_ticket(customer)
        assert ticket["sla"]["state"] == "ok"
        assert at(ticket["sla"]["first_response_due_at"]) == berlin("2037-12-09T09:30")

    def test_a_friday_ticket_skips_the_weekend_and_a_holiday(
        self, admin: TestClient, customer: TestClient, time: FakeClock
    ) -> None:
        make_policy(
            admin, {"normal": {"first_response": 120}}, calendar={"holidays": ["2037-12-14"]}
        )
        time.set(2037, 12, 11, 16, 0)
        ticket = open_ticket(customer)
        assert at(ticket["sla"]["first_response_due_at"]) == berlin("2037-12-15T10:00")

    def test_a_ticket_staff_opened_has_its_first_response_met(
        self, admin: TestClient, agent: TestClient, time: FakeClock
    ) -> None:
        make_policy(admin, {"normal": {"first_response": 60, "resolution": 480}})
        ticket = open_ticket(agent, requester_email="ann@example.org")
        assert ticket["sla"]["first_response_due_at"] is None
        assert at(ticket["sla"]["resolution_due_at"]) == berlin("2037-12-09T10:00")

    def test_a_public_staff_reply_is_the_response_and_a_note_is_not(
        self, admin: TestClient, agent: TestClient, customer: TestClient, time: FakeClock
    ) -> None:
        make_policy(admin, {"normal": {"first_response": 60, "next_response": 30}})
        ticket = open_ticket(customer)
        path = f"/api/v1/tickets/{ticket['id']}/messages"
        agent.post(path, json={"body": "Looking", "internal": True})
        assert at(sla(agent, ticket["id"])["first_response_due_at"]) == berlin("2037-12-08T11:00")
        time.advance(minutes=20)
        agent.post(path, json={"body": "Which VPN client?", "internal": False})
        assert sla(agent, ticket["id"]) == {
            "policy_id": ticket["sla"]["policy_id"],
            "state": "met",
            "first_response_due_at": None,
            "next_response_due_at": None,
            "resolution_due_at": None,
            "breached": [],
        }

    def test_each_customer_message_unanswered_starts_a_next_response(
        self, admin: TestClient, agent: TestClient, customer: TestClient, time: FakeClock
    ) -> None:
        make_policy(admin, {"normal": {"first_response": 60, "next_response": 30}})
        ticket = open_ticket(customer)
        path = f"/api/v1/tickets/{ticket['id']}/messages"
        agent.post(path, json={"body": "Which client?"})
        time.advance(minutes=10)
        customer.post(path, json={"body": "Cisco."})
        time.advance(minutes=10)
        customer.post(path, json={"body": "Version 5."})  # the cycle counts from the first
        assert due(agent, ticket["id"])["next_response"] == berlin("2037-12-08T10:40")
        agent.post(path, json={"body": "Update it, please."})
        assert due(agent, ticket["id"])["next_response"] is None

    def test_two_business_hours_pending_move_every_due_time_by_two_hours(
        self, admin: TestClient, agent: TestClient, customer: TestClient, time: FakeClock
    ) -> None:
        make_policy(admin, {"normal": {"first_response": 240, "resolution": 960}})
        ticket = open_ticket(customer)
        before = due(agent, ticket["id"])
        assert before["first_response"] == berlin("2037-12-08T14:00")
        assert before["resolution"] == berlin("2037-12-10T10:00")
        time.advance(hours=1)
        agent.patch(f"/api/v1/tickets/{ticket['id']}", json={"status": "pending"})
        assert sla(agent, ticket["id"])["state"] == "paused"
        time.advance(hours=2)
        agent.patch(f"/api/v1/tickets/{ticket['id']}", json={"status": "open"})
        assert due(agent, ticket["id"]) == {
            "first_response": berlin("2037-12-08T16:00"),
            "next_response": None,
            "resolution": berlin("2037-12-10T12:00"),
        }

    def test_pending_overnight_counts_only_business_time(
        self, admin: TestClient, agent: TestClient, customer: TestClient, time: FakeClock
    ) -> None:
        make_policy(admin, {"normal": {"first_response": 240}})
        ticket = open_ticket(customer)  # due Tuesday 14:00
        time.set(2037, 12, 8, 12, 0)
        agent.patch(f"/api/v1/tickets/{ticket['id']}", json={"status": "pending"})
        time.set(2037, 12, 9, 11, 0)  # 7 business hours: 5 on Tuesday, 2 on Wednesday
        agent.patch(f"/api/v1/tickets/{ticket['id']}", json={"status": "open"})
        assert due(agent, ticket["id"])["first_response"] == berlin("2037-12-09T13:00")

    def test_the_requesters_message_on_a_pending_ticket_opens_it_and_the_clock_runs(
        self, admin: TestClient, agent: TestClient, customer: TestClient, time: FakeClock
    ) -> None:
        make_policy(admin, {"normal": {"first_response": 240}})
        ticket = open_ticket(customer)
        agent.patch(f"/api/v1/tickets/{ticket['id']}", json={"status": "pending"})
        time.advance(hours=1)
        customer.post(f"/api/v1/tickets/{ticket['id']}/messages", json={"body": "Still down."})
        read = agent.get(f"/api/v1/tickets/{ticket['id']}").json()
        assert read["status"] == "open" and read["sla"]["state"] == "ok"
        assert at(read["sla"]["first_response_due_at"]) == berlin("2037-12-08T15:00")

    def test_reopening_resumes_resolution_without_the_time_spent_resolved(
        self, admin: TestClient, agent: TestClient, customer: TestClient, time: FakeClock
    ) -> None:
        make_policy(admin, {"normal": {"resolution": 240}})
        ticket = open_ticket(customer)
        time.advance(hours=1)
        agent.patch(f"/api/v1/tickets/{ticket['id']}", json={"status": "resolved"})
        assert sla(agent, ticket["id"])["state"] == "met"
        time.advance(hours=3)
        customer.post(f"/api/v1/tickets/{ticket['id']}/messages", json={"body": "Broken again."})
        read = sla(agent, ticket["id"])
        assert read["state"] == "ok"
        assert at(read["resolution_due_at"]) == berlin("2037-12-08T17:00")

    def test_a_new_priority_chooses_the_targets_again_keeping_the_time_used(
        self, admin: TestClient, agent: TestClient, customer: TestClient, time: FakeClock
    ) -> None:
        make_policy(admin, {"normal": {"first_response": 240}, "urgent": {"first_response": 60}})
        ticket = open_ticket(customer)
        time.advance(minutes=20)
        agent.patch(f"/api/v1/tickets/{ticket['id']}", json={"priority": "urgent"})
        assert due(agent, ticket["id"])["first_response"] == berlin("2037-12-08T11:00")
        agent.patch(f"/api/v1/tickets/{ticket['id']}", json={"priority": "low"})
        assert sla(agent, ticket["id"])["state"] == "met"  # the policy sets no target for low
        assert due(agent, ticket["id"])["first_response"] is None


class TestSweep:
    def test_one_warning_and_one_breach_each_once(
        self,
        admin: TestClient,
        agent: TestClient,
        customer: TestClient,
        time: FakeClock,
        clean: Context,
    ) -> None:
        make_policy(admin, {"normal": {"first_response": 60}}, warn_at=0.5)
        ticket = open_ticket(customer)

        def run() -> int:
            return sweep.run(clean.sessions, now=time)

        time.advance(minutes=29)
        assert run() == 0
        time.advance(minutes=1)
        assert run() == 1 and run() == 0
        assert sla(agent, ticket["id"])["state"] == "warning"
        time.advance(minutes=30)
        assert run() == 1 and run() == 0
        read = sla(agent, ticket["id"])
        assert read["state"] == "breached" and read["breached"] == ["first_response"]
        events = agent.get(f"/api/v1/tickets/{ticket['id']}/events").json()["items"]
        fired = [
            (e["type"], e["data"]["target"], e["actor"]["type"])
            for e in events
            if e["type"].startswith("sla.")
        ]
        assert fired == [
            ("sla.warning", "first_response", "system"),
            ("sla.breached", "first_response", "system"),
        ]

    def test_next_response_warns_and_breaches_once_per_cycle(
        self,
        admin: TestClient,
        agent: TestClient,
        customer: TestClient,
        time: FakeClock,
        clean: Context,
    ) -> None:
        make_policy(admin, {"normal": {"first_response": 600, "next_response": 30}}, office=False)
        ticket = open_ticket(customer)
        path = f"/api/v1/tickets/{ticket['id']}/messages"
        agent.post(path, json={"body": "Hello"})
        for _ in range(2):
            customer.post(path, json={"body": "Anyone?"})
            time.advance(minutes=31)
            assert sweep.run(clean.sessions, now=time) == 2  # warning and breach, late
            assert sweep.run(clean.sessions, now=time) == 0
            agent.post(path, json={"body": "Here."})
        events = agent.get(f"/api/v1/tickets/{ticket['id']}/events").json()["items"]
        assert [e["type"] for e in events if e["type"].startswith("sla.")] == [
            "sla.warning",
            "sla.breached",
        ] * 2
        assert sla(agent, ticket["id"])["breached"] == ["next_response"]

    def test_a_paused_ticket_does_not_breach(
        self,
        admin: TestClient,
        agent: TestClient,
        customer: TestClient,
        time: FakeClock,
        clean: Context,
    ) -> None:
        make_policy(admin, {"normal": {"first_response": 60}}, office=False)
        ticket = open_ticket(customer)
        agent.patch(f"/api/v1/tickets/{ticket['id']}", json={"status": "pending"})
        time.advance(hours=5)
        assert sweep.run(clean.sessions, now=time) == 0
        assert sla(agent, ticket["id"])["state"] == "paused"


class TestLists:
    def test_filters_and_the_soonest_due_first_page_by_page(
        self,
        admin: TestClient,
        agent: TestClient,
        customer: TestClient,
        time: FakeClock,
        clean: Context,
    ) -> None:
        make_policy(
            admin,
            {
                p: {"first_response": m}
                for p, m in [("low", 300), ("normal", 120), ("high", 60), ("urgent", 30)]
            },
            office=False,
        )
        ids: dict[str, list[int]] = {}
        for priority in ("low", "urgent", "normal", "high", "urgent"):
            ids.setdefault(priority, []).append(open_ticket(customer, priority=priority)["id"])
        time.advance(minutes=45)
        sweep.run(clean.sessions, now=time)
        breached = agent.get("/api/v1/tickets", params={"sla_state": "breached"}).json()["items"]
        assert sorted(t["id"] for t in breached) == sorted(ids["urgent"])
        soon = (time.now + timedelta(minutes=60)).isoformat()
        before = agent.get("/api/v1/tickets", params={"sla_due_before": soon}).json()["items"]
        assert sorted(t["id"] for t in before) == sorted(ids["urgent"] + ids["high"])
        order, cursor = [], None
        while True:
            params: dict[str, Any] = {"sort": "sla_due", "limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = agent.get("/api/v1/tickets", params=params).json()
            order += [t["id"] for t in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert order == [*ids["urgent"], *ids["high"], *ids["normal"], *ids["low"]]

    def test_a_search_sorted_by_due_time_lists_only_its_matches(
        self, admin: TestClient, agent: TestClient, customer: TestClient, time: FakeClock
    ) -> None:
        make_policy(admin, {"normal": {"first_response": 60}, "high": {"first_response": 30}})
        later = open_ticket(customer, subject="Printer jam")["id"]
        open_ticket(customer, subject="VPN down", priority="high")
        sooner = open_ticket(customer, subject="Printer smoking", priority="high")["id"]
        params = {"q": "printer", "sort": "sla_due"}
        found = agent.get("/api/v1/tickets", params=params).json()["items"]
        assert [t["id"] for t in found] == [sooner, later]

    def test_a_cursor_of_another_order_is_refused(self, agent: TestClient) -> None:
        response = agent.get("/api/v1/tickets", params={"sort": "sla_due", "cursor": "aWQ6NQ"})
        assert response.status_code == 422


class TestExamples:
    def test_the_documented_examples_are_accepted_as_written(self, admin: TestClient) -> None:
        schemas = admin.get("/openapi.json").json()["components"]["schemas"]

        def example(name: str) -> dict[str, Any]:
            value: dict[str, Any] = schemas[name]["examples"][0]
            return value

        calendar = admin.post("/api/v1/calendars", json=example("CalendarCreate"))
        assert calendar.status_code == 201, calendar.text
        path = f"/api/v1/calendars/{calendar.json()['id']}"
        assert admin.patch(path, json=example("CalendarUpdate")).status_code == 200
        policy = admin.post("/api/v1/sla-policies", json=example("SlaPolicyCreate"))
        assert policy.status_code == 201, policy.text
        path = f"/api/v1/sla-policies/{policy.json()['id']}"
        assert admin.patch(path, json=example("SlaPolicyUpdate")).status_code == 200
