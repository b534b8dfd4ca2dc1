"""GET /api/v1/events: the feed in each caller's view, paged, never skipping a late commit."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from doxa.core.context import Context
from doxa.core.db import backend, transaction
from doxa.core.enums import EventType, Role
from doxa.core.events.record import SYSTEM, record
from doxa.core.models import Ticket
from tests.conftest import AsUser, MakeTicket, MakeUser

URL = "/api/v1/events"


def ping(db: Session, **data: Any) -> int:
    event = record(db, None, EventType.PING, actor=SYSTEM, data=data)
    db.flush()
    return event.id


def intake_held(context: Context) -> int:
    with transaction(context.sessions) as db:
        event = record(db, None, EventType.INTAKE_HELD, actor=SYSTEM, data={"id": 1}, public=False)
        db.flush()
        return event.id


def read_all(reader: TestClient, *, wait_for: int = 0, **params: int | str) -> list[dict[str, Any]]:
    """Every page after `params`; waiting up to 10 s for `wait_for` events (on PostgreSQL any
    transaction open on the server, another test's too, holds the feed back)."""
    deadline = time.monotonic() + 10
    while True:
        items: list[dict[str, Any]] = []
        query: dict[str, int | str] = {"limit": 100, **params}
        while True:
            answer = reader.get(URL, params=query)
            assert answer.status_code == 200, answer.text
            page = answer.json()
            items += page["items"]
            if not page["items"]:
                break
            query = {"limit": 100, "cursor": page["next_cursor"]}
        if len(items) >= wait_for or time.monotonic() > deadline:
            return items
        time.sleep(0.05)


@pytest.fixture
def scene(
    make_user: MakeUser, make_ticket: MakeTicket, as_user: AsUser, clean: Context
) -> dict[str, Any]:
    """Ann's ticket with a public reply and an internal note, Bob's ticket, a held intake."""
    ann, bob = make_user(Role.CLIENT), make_user(Role.CLIENT)
    agent, admin = make_user(Role.AGENT), make_user(Role.ADMIN)
    mine, other = make_ticket(ann), make_ticket(bob)
    staff = as_user(agent)
    for internal in (True, False):
        answer = staff.post(
            f"/api/v1/tickets/{mine.id}/messages", json={"body": "Looking", "internal": internal}
        )
        assert answer.status_code == 201, answer.text
    held = intake_held(clean)
    return {
        "ann": as_user(ann),
        "agent": staff,
        "admin": as_user(admin),
        "mine": mine,
        "other": other,
        "held": held,
    }


class TestWhoSeesWhat:
    def test_a_client_sees_only_public_events_of_own_tickets_without_ai_fields(
        self, scene: dict[str, Any]
    ) -> None:
        items = read_all(scene["ann"], wait_for=4)
        mine: Ticket = scene["mine"]
        assert {item["ticket_id"] for item in items} == {mine.id}
        assert [item["type"] for item in items] == [
            "ticket.created",
            "message.created",
            "message.created",  # the public reply; the internal note is not here
            "ticket.updated",  # the reply made it pending
        ]
        assert not any(item["data"].get("internal") for item in items)
        assert not any(key.startswith("ai_") for item in items for key in item["data"])

    def test_an_agent_sees_all_but_intake_and_an_admin_all(self, scene: dict[str, Any]) -> None:
        agent = read_all(scene["agent"], wait_for=7)
        admin = read_all(scene["admin"], wait_for=8)
        assert scene["held"] not in [item["id"] for item in agent]
        assert [item["id"] for item in admin] == [item["id"] for item in agent] + [scene["held"]]
        assert any(item["data"].get("internal") for item in agent)  # the note, for staff
        assert any(key.startswith("ai_") for key in agent[0]["data"])

    def test_after_an_event_id_gives_what_came_after(self, scene: dict[str, Any]) -> None:
        everything = read_all(scene["admin"], wait_for=8)
        later = read_all(scene["admin"], wait_for=5, after=everything[2]["id"])
        assert later == everything[3:]


class TestOrder:
    def test_a_lower_id_committing_last_reaches_a_poller(
        self, clean: Context, make_user: MakeUser, as_user: AsUser, db: Session
    ) -> None:
        if backend(db).orders_commits_by_id:
            pytest.skip(
                "SQLite has one writer at a time: a second writer waits for the first to commit,"
                " so ids commit in order and a lower id never commits after a higher one"
            )
        admin = as_user(make_user(Role.ADMIN))
        seen: list[int] = []
        with clean.sessions() as slow:
            first = ping(slow)  # id taken, not committed
            with transaction(clean.sessions) as fast:
                second = ping(fast)
            for _ in range(3):  # a poller meanwhile: 2 is committed, but 1 may still come
                page = admin.get(URL, params={"after": seen[-1] if seen else 0}).json()
                seen += [item["id"] for item in page["items"]]
            assert first not in seen and second not in seen
            slow.commit()
        deadline = time.monotonic() + 10
        while len(seen) < 2 and time.monotonic() < deadline:
            page = admin.get(URL, params={"after": seen[-1] if seen else 0}).json()
            seen += [item["id"] for item in page["items"]]
            time.sleep(0.05)
        assert seen == [first, second]


class TestPaging:
    def test_pages_follow_the_cursor_and_a_bad_cursor_is_422(
        self, clean: Context, make_user: MakeUser, as_user: AsUser
    ) -> None:
        with transaction(clean.sessions) as db:
            ids = [ping(db) for _ in range(5)]
        admin = as_user(make_user(Role.ADMIN))
        read_all(admin, wait_for=5)
        first = admin.get(URL, params={"limit": 2}).json()
        second = admin.get(URL, params={"limit": 2, "cursor": first["next_cursor"]}).json()
        assert [i["id"] for i in first["items"] + second["items"]] == ids[:4]
        assert admin.get(URL, params={"cursor": "bm9wZQ"}).status_code == 422

    def test_anonymous_is_401(self, client: TestClient) -> None:
        assert client.get(URL).status_code == 401
