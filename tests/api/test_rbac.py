"""The SPEC's role table, probed over HTTP: every endpoint x role x own/other resource."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.enums import Role
from doxa.core.models import Attachment, IntakeEvent, Message, Team, Ticket, User
from tests.conftest import PASSWORD, AsUser, MakeTicket, MakeUser

C, A, D = Role.CLIENT, Role.AGENT, Role.ADMIN


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    expected: dict[Role | None, int]  # None: anonymous
    json: dict[str, Any] | None = None


def every(status: int, anonymous: int = 401) -> dict[Role | None, int]:
    return {None: anonymous, C: status, A: status, D: status}


def roles(client: int, agent: int, admin: int) -> dict[Role | None, int]:
    return {None: 401, C: client, A: agent, D: admin}


CASES = {
    "me": Case("GET", "/api/v1/users/me", every(200)),
    "list users": Case("GET", "/api/v1/users", roles(403, 403, 200)),
    "create user": Case(
        "POST",
        "/api/v1/users",
        roles(403, 403, 201),
        {"email": "new@example.com", "password": "long enough", "role": "AGENT"},
    ),
    "read a user": Case("GET", "/api/v1/users/{someone}", roles(403, 200, 200)),
    "read an unknown user": Case("GET", "/api/v1/users/999999", roles(403, 404, 404)),
    "change user": Case(
        "PATCH", "/api/v1/users/{someone}", roles(403, 403, 200), {"full_name": "N"}
    ),
    "set own availability": Case(
        "PATCH", "/api/v1/users/me", roles(403, 200, 200), {"available": False}
    ),
    "set own notifications": Case(
        "PATCH", "/api/v1/users/me", every(200), {"notifications": {"sla": False}}
    ),
    "open ticket": Case("POST", "/api/v1/tickets", every(201), {"subject": "s", "body": "b"}),
    "list tickets": Case("GET", "/api/v1/tickets", every(200)),
    "get own ticket": Case("GET", "/api/v1/tickets/{own}", every(200)),
    "get other's ticket": Case("GET", "/api/v1/tickets/{other}", roles(404, 200, 200)),
    "close own ticket": Case("PATCH", "/api/v1/tickets/{own}", every(200), {"status": "closed"}),
    "close other's ticket": Case(
        "PATCH", "/api/v1/tickets/{other}", roles(404, 200, 200), {"status": "closed"}
    ),
    "prioritise own ticket": Case(
        "PATCH", "/api/v1/tickets/{own}", roles(403, 200, 200), {"priority": "high"}
    ),
    "assign other's ticket": Case(
        "PATCH", "/api/v1/tickets/{other}", roles(404, 200, 200), {"assignee_id": None}
    ),
    "take own ticket out of its team": Case(
        "PATCH", "/api/v1/tickets/{own}", roles(403, 200, 200), {"team_id": None}
    ),
    "tag own ticket": Case(
        "PATCH", "/api/v1/tickets/{own}", roles(403, 200, 200), {"tags": ["vip"]}
    ),
    "read own messages": Case("GET", "/api/v1/tickets/{own}/messages", every(200)),
    "read other's messages": Case("GET", "/api/v1/tickets/{other}/messages", roles(404, 200, 200)),
    "reply on own": Case("POST", "/api/v1/tickets/{own}/messages", every(201), {"body": "hi"}),
    "reply on other's": Case(
        "POST", "/api/v1/tickets/{other}/messages", roles(404, 201, 201), {"body": "hi"}
    ),
    "internal note on own": Case(
        "POST",
        "/api/v1/tickets/{own}/messages",
        roles(403, 201, 201),
        {"body": "hm", "internal": True},
    ),
    # The matrix's reply has failed: staff queue it again, clients may not.
    "resend a failed reply": Case(
        "POST", "/api/v1/tickets/{own}/messages/{failed_reply}/resend", roles(403, 200, 200)
    ),
    "events of own": Case("GET", "/api/v1/tickets/{own}/events", every(200)),
    "events of other's": Case("GET", "/api/v1/tickets/{other}/events", roles(404, 200, 200)),
    "own attachment": Case("GET", "/api/v1/attachments/{own_file}", every(200)),
    "other's attachment": Case("GET", "/api/v1/attachments/{other_file}", roles(404, 200, 200)),
    "attachment on an internal note": Case(
        "GET", "/api/v1/attachments/{note_file}", roles(404, 200, 200)
    ),
    "list teams": Case("GET", "/api/v1/teams", roles(403, 200, 200)),
    "read a team": Case("GET", "/api/v1/teams/{team}", roles(403, 200, 200)),
    "read an unknown team": Case("GET", "/api/v1/teams/999999", roles(403, 404, 404)),
    "create team": Case("POST", "/api/v1/teams", roles(403, 403, 201), {"name": "Sales"}),
    "change team": Case("PATCH", "/api/v1/teams/{team}", roles(403, 403, 200), {"capacity": 5}),
    "delete team": Case("DELETE", "/api/v1/teams/{team}", roles(403, 403, 204)),
    "intake log": Case("GET", "/api/v1/intake", roles(403, 403, 200)),
    "intake event": Case("GET", "/api/v1/intake/{event}", roles(403, 403, 200)),
    "reprocess": Case("POST", "/api/v1/intake/{event}/reprocess", roles(403, 403, 202)),
    # The matrix's event is a failed one: admins reach the rule that only held events go back.
    "release": Case("POST", "/api/v1/intake/{event}/release", roles(403, 403, 409)),
    "similar tickets": Case("GET", "/api/v1/tickets/{own}/similar", roles(403, 200, 200)),
    "add a category": Case(
        "PATCH", "/api/v1/classifier", roles(403, 403, 200), {"categories": ["security"]}
    ),
    "metrics from another host": Case("GET", "/metrics", roles(403, 403, 200)),
    # Open to anyone; this app has no relay, so self sign-up says it is unavailable.
    "register": Case(
        "POST", "/api/v1/auth/register", every(503, anonymous=503), {"email": "fresh@example.com"}
    ),
    "change own password": Case(
        "POST",
        "/api/v1/users/me/password",
        every(200),
        {"current_password": PASSWORD, "new_password": "a fresh long secret"},
    ),
}


def _failed_event(context: Context) -> int:
    with transaction(context.sessions) as db:
        event = IntakeEvent(channel="email", raw=b"junk", status="failed", error="InvalidInput")
        db.add(event)
        db.flush()
        return event.id


def _team(context: Context) -> int:
    with transaction(context.sessions) as db:
        team = Team(name="Billing")
        db.add(team)
        db.flush()
        return team.id


def _failed_reply(context: Context, ticket: Ticket) -> int:
    with transaction(context.sessions) as db:
        message = Message(
            ticket_id=ticket.id,
            direction="out",
            body="reply",
            full_body="reply",
            delivery_state="failed",
        )
        db.add(message)
        db.flush()
        return message.id


def _attach(context: Context, ticket: Ticket, *, internal: bool = False) -> int:
    with transaction(context.sessions) as db:
        message = Message(
            ticket_id=ticket.id,
            direction="in",
            body="see file",
            full_body="see file",
            internal=internal,
        )
        db.add(message)
        db.flush()
        attachment = Attachment(
            message_id=message.id,
            filename="a.txt",
            content_type="text/plain",
            size=2,
            sha256="0" * 64,
            content=b"hi",
        )
        db.add(attachment)
        db.flush()
        return attachment.id


@pytest.mark.parametrize("role", [None, C, A, D], ids=["anonymous", "client", "agent", "admin"])
@pytest.mark.parametrize("name", list(CASES))
def test_role_matrix(
    name: str,
    role: Role | None,
    client: TestClient,
    context: Context,
    as_user: AsUser,
    make_user: MakeUser,
    make_ticket: MakeTicket,
) -> None:
    case = CASES[name]
    caller: User | None = make_user(role) if role else None
    make_user(D)  # an admin always remains, so "change user" is not blocked by the last-admin rule
    own = make_ticket(caller) if caller else make_ticket()
    other = make_ticket()
    ids = {
        "own": own.id,
        "other": other.id,
        "someone": make_user(A).id,
        "own_file": _attach(context, own),
        "other_file": _attach(context, other),
        "note_file": _attach(context, own, internal=True),
        "event": _failed_event(context),
        "failed_reply": _failed_reply(context, own),
        "team": _team(context),
    }
    http = as_user(caller) if caller else client
    response = http.request(case.method, case.path.format(**ids), json=case.json)
    assert response.status_code == case.expected[role], response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
