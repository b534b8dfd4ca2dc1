"""Teams from outside: what admins make, agents read, and what a ticket's team and tags do."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from doxa.core.context import Context
from doxa.core.enums import Role
from doxa.core.events.models import Event
from doxa.core.teams.models import Team
from tests.conftest import AsUser, MakeTicket, MakeUser

TEAMS = "/api/v1/teams"


@pytest.fixture
def admin(as_user: AsUser, make_user: MakeUser) -> TestClient:
    return as_user(make_user(Role.ADMIN))


def make_team(admin: TestClient, name: str = "Billing", **fields: Any) -> dict[str, Any]:
    response = admin.post(TEAMS, json={"name": name, **fields})
    assert response.status_code == 201, response.text
    team: dict[str, Any] = response.json()
    return team


def problem(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    detail: str = response.json()["detail"]
    return detail


class TestTeams:
    def test_an_admin_makes_a_team_that_agents_read(
        self, admin: TestClient, as_user: AsUser, make_user: MakeUser
    ) -> None:
        members = [make_user(Role.AGENT).id, make_user(Role.ADMIN).id]
        team = make_team(
            admin,
            mailbox="Billing@Example.com",
            member_ids=[members[1], members[0], members[1]],
            assignment="round_robin",
            capacity=10,
        )
        assert team == {
            "id": team["id"],
            "name": "Billing",
            "mailbox": "billing@example.com",
            "member_ids": sorted(members),
            "assignment": "round_robin",
            "capacity": 10,
        }
        agent = as_user(make_user(Role.AGENT))
        assert agent.get(f"{TEAMS}/{team['id']}").json() == team
        assert agent.get(TEAMS).json() == {"items": [team], "next_cursor": None}

    def test_a_new_team_assigns_by_hand_without_a_cap(self, admin: TestClient) -> None:
        team = make_team(admin)
        assert (team["mailbox"], team["member_ids"], team["assignment"], team["capacity"]) == (
            None,
            [],
            "manual",
            None,
        )

    def test_a_mailbox_that_is_not_ours_is_422_naming_it(self, admin: TestClient) -> None:
        response = admin.post(TEAMS, json={"name": "Sales", "mailbox": "sales@example.com"})
        assert "sales@example.com is not a support address" in problem(response, 422)

    def test_a_mailbox_another_team_owns_is_409(self, admin: TestClient) -> None:
        make_team(admin, mailbox="billing@example.com")
        response = admin.post(TEAMS, json={"name": "Money", "mailbox": "billing@example.com"})
        assert "belongs to team" in problem(response, 409)

    def test_a_taken_name_is_409(self, admin: TestClient) -> None:
        make_team(admin)
        problem(admin.post(TEAMS, json={"name": "Billing"}), 409)

    @pytest.mark.parametrize(
        ("role", "active"),
        [(Role.CLIENT, True), (Role.AGENT, False), (None, True)],
        ids=["client", "inactive agent", "nobody"],
    )
    def test_a_member_who_is_not_an_active_agent_is_422_naming_them(
        self, admin: TestClient, make_user: MakeUser, role: Role | None, active: bool
    ) -> None:
        bad = make_user(role, active=active).id if role else 999_999
        members = [make_user(Role.AGENT).id, bad]
        response = admin.post(TEAMS, json={"name": "Billing", "member_ids": members})
        assert f"member_ids[1]: user {bad} is not an active agent" in problem(response, 422)
        assert admin.get(TEAMS).json()["items"] == []

    @pytest.mark.parametrize(
        "body",
        [{"capacity": 0}, {"assignment": "random"}, {"name": ""}, {"name": "a\nb"}],
        ids=["capacity 0", "unknown assignment", "empty name", "two lines"],
    )
    def test_invalid_fields_are_422(self, admin: TestClient, body: dict[str, Any]) -> None:
        problem(admin.post(TEAMS, json={"name": "Billing", **body}), 422)

    def test_a_change_sets_what_is_sent_and_null_clears(
        self, admin: TestClient, make_user: MakeUser
    ) -> None:
        first, second = make_user(Role.AGENT).id, make_user(Role.AGENT).id
        team = make_team(admin, mailbox="billing@example.com", member_ids=[first], capacity=3)
        response = admin.patch(
            f"{TEAMS}/{team['id']}",
            json={"member_ids": [second], "mailbox": None, "capacity": None, "name": "Money"},
        )
        assert response.status_code == 200, response.text
        changed = response.json()
        assert (changed["name"], changed["mailbox"], changed["capacity"]) == ("Money", None, None)
        assert changed["member_ids"] == [second] and changed["assignment"] == "manual"
        assert admin.patch(f"{TEAMS}/{team['id']}", json={}).json() == changed

    def test_a_team_keeps_its_own_mailbox_and_name_on_a_change(self, admin: TestClient) -> None:
        team = make_team(admin, mailbox="billing@example.com")
        again = {"name": "Billing", "mailbox": "billing@example.com"}
        assert admin.patch(f"{TEAMS}/{team['id']}", json=again).status_code == 200

    def test_teams_are_listed_a_page_at_a_time(self, admin: TestClient) -> None:
        made = [make_team(admin, name)["id"] for name in ("A", "B", "C")]
        first = admin.get(TEAMS, params={"limit": 2}).json()
        rest = admin.get(TEAMS, params={"limit": 2, "cursor": first["next_cursor"]}).json()
        assert [t["id"] for t in first["items"] + rest["items"]] == made
        assert rest["next_cursor"] is None

    def test_deleting_a_team_takes_its_tickets_out_with_an_event_each(
        self, admin: TestClient, make_ticket: MakeTicket, db: Session
    ) -> None:
        team = make_team(admin)
        ticket = make_ticket(team_id=team["id"])
        assert admin.delete(f"{TEAMS}/{team['id']}").status_code == 204
        problem(admin.get(f"{TEAMS}/{team['id']}"), 404)
        shown = admin.get(f"/api/v1/tickets/{ticket.id}").json()
        assert (shown["team_id"], shown["team"]) == (None, None)
        history = select(Event).where(Event.ticket_id == ticket.id).order_by(Event.sequence)
        last = db.scalars(history).all()[-1]
        assert last.changes == {"team_id": [team["id"], None]}


class TestRaces:
    def test_a_name_taken_by_a_concurrent_request_is_409_not_500(
        self, admin: TestClient, clean: Context
    ) -> None:
        """The service checks the name is free, but another transaction's uncommitted team
        is invisible to that check: the insert waits for it, then conflicts."""
        if clean.engine.dialect.name != "postgresql":
            pytest.skip("SQLite has one writer: no second transaction can hold the name")
        with clean.engine.connect() as other:
            other.execute(insert(Team).values(name="Billing", assignment="manual", **_times()))
            with ThreadPoolExecutor(1) as pool:
                posted = pool.submit(admin.post, TEAMS, json={"name": "Billing"})
                time.sleep(0.5)  # the post's insert is waiting on our row
                other.commit()
                answer = posted.result(timeout=30)
        assert "concurrent change" in problem(answer, 409)


def _times() -> dict[str, datetime]:
    now = datetime.now(UTC)
    return {"created_at": now, "updated_at": now}
