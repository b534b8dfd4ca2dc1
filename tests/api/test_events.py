"""GET /tickets/{id}/events from outside: who sees which events, and `data` as each reader
sees the object through the API."""

from __future__ import annotations

import threading
from typing import Any

from fastapi.testclient import TestClient

from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.enums import Role
from doxa.core.tickets.models import Ticket
from doxa.core.triage import service as triage
from doxa.core.triage.prediction import Prediction
from tests.conftest import AsUser, MakeTicket, MakeUser

SURE = Prediction("billing", 0.97, "high", 0.9, "test-model", ("invoice", "charged"))


class Broken:
    def predict(self, subject: str, body: str) -> Prediction:
        raise RuntimeError("model file missing")


def _events(api: TestClient, ticket_id: int, **params: Any) -> list[dict[str, Any]]:
    response = api.get(f"/api/v1/tickets/{ticket_id}/events", params=params)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["next_cursor"] is None
    items: list[dict[str, Any]] = page["items"]
    return items


def _classified(context: Context, ticket: Ticket) -> None:
    with transaction(context.sessions) as db:
        triage.apply(db, db.get_one(Ticket, ticket.id), SURE, threshold=0.5)


def _ai_keys(event: dict[str, Any]) -> list[str]:
    data = event["data"]
    return [key for key in [*data, *data.get("changes", {})] if key.startswith("ai_")]


class TestWhoSeesWhat:
    def test_a_client_reading_another_clients_ticket_events_gets_404(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        ticket = make_ticket(make_user(Role.CLIENT))
        response = as_user(make_user(Role.CLIENT)).get(f"/api/v1/tickets/{ticket.id}/events")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"

    def test_a_client_sees_no_internal_note_and_no_ai_field_an_agent_sees_both(
        self, clean: Context, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        owner, agent = make_user(Role.CLIENT), make_user(Role.AGENT)
        ticket = make_ticket(owner)
        staff, client = as_user(agent), as_user(owner)
        _classified(clean, ticket)
        note = {"body": "Refund approved by Dana; card ends 4242.", "internal": True}
        assert staff.post(f"/api/v1/tickets/{ticket.id}/messages", json=note).status_code == 201
        reply = {"body": "We refunded the second charge."}
        assert staff.post(f"/api/v1/tickets/{ticket.id}/messages", json=reply).status_code == 201

        seen = _events(client, ticket.id)
        assert [e["type"] for e in seen] == [
            "ticket.created",
            "message.created",
            "ticket.classified",
            "message.created",  # the public reply, not the note
            "ticket.updated",  # the reply opened the ticket
        ]
        assert [e["sequence"] for e in seen] == [1, 2, 3, 5, 6]
        assert all(_ai_keys(e) == [] for e in seen)
        assert "Refund approved" not in str(seen)
        assert seen[2]["data"]["changes"] == {
            "classification_state": ["pending", "done"],
            "category": [None, "billing"],
            "priority": ["normal", "high"],
        }

        everything = _events(staff, ticket.id)
        assert [e["sequence"] for e in everything] == [1, 2, 3, 4, 5, 6]
        assert everything[3]["data"]["internal"] is True
        assert everything[3]["data"]["body"] == note["body"]
        assert everything[2]["data"]["ai_category"] == "billing"
        assert everything[2]["data"]["ai_explanation"] == ["invoice", "charged"]
        assert everything[2]["data"]["changes"]["ai_category"] == [None, "billing"]

    def test_a_failed_classification_is_in_staffs_history_only(
        self, clean: Context, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        owner = make_user(Role.CLIENT)
        ticket = make_ticket(owner)
        with transaction(clean.sessions) as db:
            triage.classify(db, db.get_one(Ticket, ticket.id), Broken(), threshold=0.5)
        staff = _events(as_user(make_user(Role.AGENT)), ticket.id)
        assert staff[-1]["type"] == "ticket.classified"
        assert staff[-1]["data"]["changes"] == {
            "error": [None, "model file missing"],
            "needs_triage": [False, True],
        }
        assert "ticket.classified" not in [e["type"] for e in _events(as_user(owner), ticket.id)]

    def test_an_event_shows_the_message_as_the_reader_reads_it(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        owner, agent = make_user(Role.CLIENT), make_user(Role.AGENT)
        ticket = make_ticket(owner)
        for api in (as_user(agent), as_user(owner)):
            messages = api.get(f"/api/v1/tickets/{ticket.id}/messages").json()["items"]
            posted = [e["data"] for e in _events(api, ticket.id) if e["type"] == "message.created"]
            assert posted == messages

    def test_ticket_created_shows_the_ticket_as_staff_read_it(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        ticket = make_ticket()
        staff = as_user(make_user(Role.AGENT))
        shown = staff.get(f"/api/v1/tickets/{ticket.id}").json()
        created = _events(staff, ticket.id)[0]
        assert created["type"] == "ticket.created" and created["actor"]["type"] == "user"
        assert {k: v for k, v in created["data"].items() if k != "updated_at"} == {
            k: v for k, v in shown.items() if k != "updated_at"
        }


class TestPaging:
    def test_pages_go_oldest_first_by_sequence_and_end_without_a_cursor(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        ticket = make_ticket()
        staff = as_user(make_user(Role.AGENT))
        for priority in ("low", "high", "urgent", "normal"):
            staff.patch(f"/api/v1/tickets/{ticket.id}", json={"priority": priority})
        sequences, cursor = [], None
        while True:
            params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            page = staff.get(f"/api/v1/tickets/{ticket.id}/events", params=params).json()
            assert len(page["items"]) <= 2
            sequences += [e["sequence"] for e in page["items"]]
            if (cursor := page["next_cursor"]) is None:
                break
        assert sequences == [1, 2, 3, 4, 5, 6]

    def test_a_limit_over_100_or_a_forged_cursor_is_refused(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        ticket = make_ticket()
        staff = as_user(make_user(Role.AGENT))
        url = f"/api/v1/tickets/{ticket.id}/events"
        assert staff.get(url, params={"limit": 101}).status_code == 422
        assert staff.get(url, params={"cursor": "bm90LWEtY3Vyc29y"}).status_code == 422


class TestConcurrentWriters:
    def test_two_agents_changing_one_ticket_at_once_get_sequences_without_gaps(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        ticket = make_ticket()
        agents = [as_user(make_user(Role.AGENT)) for _ in range(2)]
        start = threading.Barrier(2)

        def write(api: TestClient, priorities: tuple[str, str]) -> None:
            start.wait()
            for n in range(10):
                url = f"/api/v1/tickets/{ticket.id}"
                assert api.patch(url, json={"priority": priorities[n % 2]}).status_code == 200
                body = {"body": f"note {n}", "internal": True}
                assert api.post(f"{url}/messages", json=body).status_code == 201

        threads = [
            threading.Thread(target=write, args=(agents[0], ("low", "high"))),
            threading.Thread(target=write, args=(agents[1], ("urgent", "normal"))),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        events = _events(agents[0], ticket.id, limit=100)
        assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
        assert [e["type"] for e in events].count("message.created") == 21
        final = agents[0].get(f"/api/v1/tickets/{ticket.id}").json()["priority"]
        last = [e for e in events if "priority" in e["data"].get("changes", {})][-1]
        assert last["data"]["changes"]["priority"][1] == final == last["data"]["priority"]
