"""A rule's `then`: read with the path of what is wrong; what it names checked on write."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from doxa.core.enums import Role
from doxa.core.errors import InvalidInput
from doxa.core.routing.actions import Action, check_then, read_then
from doxa.core.teams.models import Team
from tests.conftest import MakeUser


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ([], "then: must be a list"),
        ({"set": "priority"}, "then: must be a list"),
        (["x"], "then[0]: must be an object"),
        ([{"set": "priority", "value": "low"}, {"set": "subject", "value": "x"}], "then[1].set:"),
        ([{"set": "priority"}], "then[0].value: missing"),
        ([{"set": "priority", "value": "asap"}], "then[0].value: 'asap' is not one of"),
        ([{"set": "status", "value": "done"}], "then[0].value:"),
        ([{"set": "team_id", "value": "billing"}], "then[0].value: an id"),
        ([{"set": "team_id", "value": True}], "then[0].value: an id"),
        ([{"set": "category", "value": 3}], "then[0].value: a category"),
        ([{"add_tag": ""}], "then[0].add_tag:"),
        ([{"add_tag": "x" * 65}], "then[0].add_tag:"),
        ([{"add_tag": "vip", "value": 1}], "then[0].value: unknown key"),
        ([{"set": "priority", "value": "low", "when": 1}], "then[0].when: unknown key"),
        ([{"add_tag": "x"}] * 21, "then: at most 20"),
    ],
)
def test_what_cannot_be_read_is_named_by_its_path(raw: object, path: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        read_then(raw)
    assert caught.value.detail.startswith(path), caught.value.detail


def test_actions_read_back_as_written() -> None:
    raw = [
        {"set": "team_id", "value": 4},
        {"set": "assignee_id", "value": None},
        {"add_tag": " vip "},
    ]
    actions = read_then(raw)
    assert actions == (Action("team_id", 4), Action("assignee_id", None), Action("add_tag", "vip"))
    assert [a.as_json() for a in actions] == [*raw[:2], {"add_tag": "vip"}]


def test_what_an_action_names_must_exist(db: Session, make_user: MakeUser) -> None:
    team = Team(name="Billing")
    db.add(team)
    db.commit()
    agent, client = make_user(Role.AGENT), make_user(Role.CLIENT)
    gone = make_user(Role.AGENT, active=False)
    check_then(
        db,
        read_then(
            [
                {"set": "team_id", "value": team.id},
                {"set": "assignee_id", "value": agent.id},
                {"set": "category", "value": "billing"},
            ]
        ),
    )
    cases = {
        "then[1].value: no team 42": [{"add_tag": "x"}, {"set": "team_id", "value": 42}],
        f"then[0].value: user {client.id} is not an active agent": [
            {"set": "assignee_id", "value": client.id}
        ],
        f"then[0].value: user {gone.id} is not an active agent": [
            {"set": "assignee_id", "value": gone.id}
        ],
        "then[0].value: unknown category 'astrology'": [{"set": "category", "value": "astrology"}],
    }
    for detail, raw in cases.items():
        with pytest.raises(InvalidInput) as caught:
            check_then(db, read_then(raw))
        assert caught.value.detail.startswith(detail), caught.value.detail
