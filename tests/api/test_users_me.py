"""`PATCH /users/me`: an agent's availability and everyone's mail notifications."""

from __future__ import annotations

import pytest

from doxa.core.enums import Role
from tests.api.test_teams import problem
from tests.conftest import AsUser, MakeUser

ME = "/api/v1/users/me"
ALL_ON = {"assigned": True, "customer_reply": True, "sla": True}


class TestPreferences:
    @pytest.mark.parametrize("role", [Role.AGENT, Role.ADMIN])
    def test_staff_start_available_with_every_notification(
        self, role: Role, as_user: AsUser, make_user: MakeUser
    ) -> None:
        me = as_user(make_user(role)).get(ME).json()
        assert (me["available"], me["notifications"]) == (True, ALL_ON)

    def test_an_agent_goes_away_and_turns_one_notification_off(
        self, as_user: AsUser, make_user: MakeUser
    ) -> None:
        agent = as_user(make_user(Role.AGENT))
        changed = agent.patch(ME, json={"available": False, "notifications": {"sla": False}})
        assert changed.status_code == 200, changed.text
        expected = {"available": False, "notifications": {**ALL_ON, "sla": False}}
        assert {k: changed.json()[k] for k in expected} == expected
        again = agent.patch(ME, json={"notifications": {"assigned": False}}).json()
        assert again["available"] is False
        assert again["notifications"] == {"assigned": False, "customer_reply": True, "sla": False}
        assert agent.patch(ME, json={"available": True}).json()["available"] is True
        assert agent.get(ME).json()["notifications"] == again["notifications"]

    def test_a_client_sets_notifications_but_not_availability(
        self, as_user: AsUser, make_user: MakeUser
    ) -> None:
        client = as_user(make_user(Role.CLIENT))
        assert client.get(ME).json()["available"] is None
        problem(client.patch(ME, json={"available": True}), 403)
        changed = client.patch(ME, json={"notifications": {"customer_reply": False}})
        assert changed.json()["notifications"] == {**ALL_ON, "customer_reply": False}

    @pytest.mark.parametrize(
        "body",
        [{"notifications": {"digest": True}}, {"available": "sometimes"}],
        ids=["unknown notification", "not a boolean"],
    )
    def test_a_bad_body_is_422(
        self, body: dict[str, object], as_user: AsUser, make_user: MakeUser
    ) -> None:
        problem(as_user(make_user(Role.AGENT)).patch(ME, json=body), 422)

    def test_an_admin_reads_another_users_choices(
        self, as_user: AsUser, make_user: MakeUser
    ) -> None:
        agent = make_user(Role.AGENT)
        as_user(agent).patch(ME, json={"available": False})
        shown = as_user(make_user(Role.ADMIN)).get(f"/api/v1/users/{agent.id}").json()
        assert shown["available"] is False
