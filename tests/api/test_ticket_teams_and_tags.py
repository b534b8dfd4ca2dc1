"""A ticket's team and tags from outside: staff set them (each change an event), clients
cannot, and `GET /tickets` filters by both, page after page."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from doxa.core.enums import Role
from doxa.core.events.models import Event
from doxa.core.tickets.models import Ticket
from tests.api.test_teams import make_team, problem
from tests.conftest import AsUser, MakeTicket, MakeUser

TICKETS = "/api/v1/tickets"


@pytest.fixture
def agent(as_user: AsUser, make_user: MakeUser) -> TestClient:
    return as_user(make_user(Role.AGENT))


@pytest.fixture
def team(as_user: AsUser, make_user: MakeUser) -> dict[str, Any]:
    return make_team(as_user(make_user(Role.ADMIN)))


def changes(db: Session, ticket_id: int) -> list[dict[str, Any] | None]:
    """The ticket's updates, oldest first."""
    query = select(Event.changes).where(
        Event.ticket_id == ticket_id, Event.type == "ticket.updated"
    )
    query = query.order_by(Event.sequence)
    return list(db.scalars(query))


class TestTeam:
    def test_an_agent_moves_a_ticket_into_a_team_and_out(
        self, agent: TestClient, team: dict[str, Any], make_ticket: MakeTicket, db: Session
    ) -> None:
        ticket = make_ticket()
        moved = agent.patch(f"{TICKETS}/{ticket.id}", json={"team_id": team["id"]})
        assert moved.status_code == 200, moved.text
        assert (moved.json()["team_id"], moved.json()["team"]) == (
            team["id"],
            {"id": team["id"], "name": "Billing"},
        )
        out = agent.patch(f"{TICKETS}/{ticket.id}", json={"team_id": None}).json()
        assert (out["team_id"], out["team"]) == (None, None)
        assert changes(db, ticket.id) == [
            {"team_id": [None, team["id"]]},
            {"team_id": [team["id"], None]},
        ]
        assert db.scalars(select(Ticket.staff_routed)).one() is True

    def test_an_unknown_team_is_422(self, agent: TestClient, make_ticket: MakeTicket) -> None:
        response = agent.patch(f"{TICKETS}/{make_ticket().id}", json={"team_id": 4242})
        assert "no team 4242" in problem(response, 422)

    @pytest.mark.parametrize("body", [{"team_id": 1}, {"tags": ["vip"]}], ids=["team", "tags"])
    def test_a_client_cannot_set_them_on_their_own_ticket(
        self,
        body: dict[str, Any],
        team: dict[str, Any],
        as_user: AsUser,
        make_user: MakeUser,
        make_ticket: MakeTicket,
    ) -> None:
        owner = make_user(Role.CLIENT)
        ticket = make_ticket(owner)
        problem(as_user(owner).patch(f"{TICKETS}/{ticket.id}", json=body), 403)
        shown = as_user(owner).get(f"{TICKETS}/{ticket.id}").json()
        assert (shown["team_id"], shown["tags"]) == (None, [])


class TestTags:
    def test_tags_are_one_lower_case_sorted_list_and_each_change_an_event(
        self, agent: TestClient, make_ticket: MakeTicket, db: Session
    ) -> None:
        ticket = make_ticket()
        url = f"{TICKETS}/{ticket.id}"
        first = agent.patch(url, json={"tags": ["VIP", " refund ", "vip"]})
        assert first.status_code == 200, first.text
        assert first.json()["tags"] == ["refund", "vip"]
        assert agent.patch(url, json={"tags": ["Refund", "vip"]}).json()["tags"] == [
            "refund",
            "vip",
        ]
        assert agent.patch(url, json={"tags": ["vip", "late"]}).json()["tags"] == ["late", "vip"]
        assert agent.patch(url, json={"tags": []}).json()["tags"] == []
        assert changes(db, ticket.id) == [  # the unchanged list made no event
            {"tags": [[], ["refund", "vip"]]},
            {"tags": [["refund", "vip"], ["late", "vip"]]},
            {"tags": [["late", "vip"], []]},
        ]

    @pytest.mark.parametrize(
        "tags",
        [[f"t{i}" for i in range(51)], ["x" * 65], [""], ["two\nlines"]],
        ids=["51 tags", "65 characters", "empty", "two lines"],
    )
    def test_a_bad_list_is_422(
        self, agent: TestClient, make_ticket: MakeTicket, tags: list[str]
    ) -> None:
        problem(agent.patch(f"{TICKETS}/{make_ticket().id}", json={"tags": tags}), 422)

    def test_fifty_tags_of_64_characters_fit(
        self, agent: TestClient, make_ticket: MakeTicket
    ) -> None:
        tags = sorted(f"{i:02}" + "x" * 62 for i in range(50))
        response = agent.patch(f"{TICKETS}/{make_ticket().id}", json={"tags": tags})
        assert response.json()["tags"] == tags


def _pages(http: TestClient, **params: Any) -> list[int]:
    """Every ticket id of the listing, page by page (two a page)."""
    ids: list[int] = []
    cursor = None
    while True:
        query = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = http.get(TICKETS, params=query).json()
        ids += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


class TestFilters:
    def test_by_team_across_pages_newest_first(
        self, agent: TestClient, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        admin = as_user(make_user(Role.ADMIN))
        billing, sales = make_team(admin, "Billing")["id"], make_team(admin, "Sales")["id"]
        placed = [make_ticket(team_id=(billing, sales, None)[i % 3]).id for i in range(9)]
        assert _pages(agent, team_id=billing) == placed[::3][::-1]
        assert _pages(agent, team_id=sales) == placed[1::3][::-1]

    def test_by_tag_across_pages_and_with_q(
        self, agent: TestClient, make_ticket: MakeTicket
    ) -> None:
        made = [make_ticket(subject=("Printer", "Refund")[i % 2]).id for i in range(7)]
        for i, ticket_id in enumerate(made):
            if i != 3:
                agent.patch(f"{TICKETS}/{ticket_id}", json={"tags": ["vip", f"n{i}"]})
        assert _pages(agent, tag="VIP") == [made[i] for i in (6, 5, 4, 2, 1, 0)]
        assert _pages(agent, tag="vip", q="refund") == [made[5], made[1]]
        assert _pages(agent, tag="n5") == [made[5]]
        assert _pages(agent, tag="none") == []

    def test_a_client_filtering_by_tag_sees_only_their_own(
        self, agent: TestClient, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        owner = make_user(Role.CLIENT)
        mine, theirs = make_ticket(owner), make_ticket()
        for ticket in (mine, theirs):
            agent.patch(f"{TICKETS}/{ticket.id}", json={"tags": ["vip"]})
        assert _pages(as_user(owner), tag="vip") == [mine.id]
