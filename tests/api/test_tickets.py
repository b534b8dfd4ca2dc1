from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.enums import DeliveryState, Role
from doxa.core.errors import PermissionDenied
from doxa.core.models import Message, OutboxItem, Ticket, User
from doxa.core.tickets.messages import resend_message
from tests.conftest import AsUser, MakeTicket, MakeUser

LINE_SEPARATORS = ["\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


class TestCreateTicket:
    @pytest.mark.parametrize("separator", LINE_SEPARATORS)
    def test_line_break_in_the_subject_gets_422(
        self, as_user: AsUser, make_user: MakeUser, separator: str
    ) -> None:
        response = as_user(make_user()).post(
            "/api/v1/tickets", json={"subject": f"Hi{separator}Bcc: x@evil.test", "body": "y"}
        )
        assert response.status_code == 422
        assert "single line" in response.json()["detail"]

    def test_client_opens_a_ticket_for_themselves(
        self, as_user: AsUser, make_user: MakeUser
    ) -> None:
        client = make_user(Role.CLIENT)
        response = as_user(client).post(
            "/api/v1/tickets", json={"subject": " VPN down ", "body": "Since 9am."}
        )
        assert response.status_code == 201
        ticket = response.json()
        assert ticket["subject"] == "VPN down" and ticket["requester_id"] == client.id
        assert ticket["status"] == "new" and ticket["channel"] == "api"
        assert (
            ticket["classification_state"] == "pending"
            and ticket["reference"] == f"[#{ticket['id']}]"
        )

    def test_client_opening_for_someone_else_gets_403(
        self, as_user: AsUser, make_user: MakeUser
    ) -> None:
        response = as_user(make_user()).post(
            "/api/v1/tickets",
            json={"subject": "x", "body": "y", "requester_email": "other@example.com"},
        )
        assert response.status_code == 403

    def test_agent_opens_on_behalf_of_a_new_requester(
        self, as_user: AsUser, make_user: MakeUser
    ) -> None:
        agent = as_user(make_user(Role.AGENT))
        ticket = agent.post(
            "/api/v1/tickets",
            json={
                "subject": "Phone call",
                "body": "Caller lost access.",
                "requester_email": "caller@example.com",
            },
        ).json()
        users = as_user(make_user(Role.ADMIN)).get("/api/v1/users").json()["items"]
        requester = next(u for u in users if u["id"] == ticket["requester_id"])
        assert requester["email"] == "caller@example.com" and requester["role"] == "CLIENT"

    def test_blank_subject_gets_422_problem(self, as_user: AsUser, make_user: MakeUser) -> None:
        response = as_user(make_user()).post(
            "/api/v1/tickets", json={"subject": "   ", "body": "y"}
        )
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"].startswith("body.subject")


class TestListTickets:
    def test_client_sees_only_their_own(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        me = make_user()
        mine = make_ticket(me)
        make_ticket()
        ids = [t["id"] for t in as_user(me).get("/api/v1/tickets").json()["items"]]
        assert ids == [mine.id]

    def test_pages_follow_the_cursor_newest_first_without_gaps(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        agent = as_user(make_user(Role.AGENT))
        created = [make_ticket().id for _ in range(7)]
        first = agent.get("/api/v1/tickets", params={"limit": 3}).json()
        make_ticket()  # arrives while the agent pages: it must not shift later pages
        second = agent.get(
            "/api/v1/tickets", params={"limit": 3, "cursor": first["next_cursor"]}
        ).json()
        third = agent.get(
            "/api/v1/tickets", params={"limit": 3, "cursor": second["next_cursor"]}
        ).json()
        seen = [t["id"] for page in (first, second, third) for t in page["items"]]
        assert seen == sorted(created, reverse=True) and third["next_cursor"] is None

    def test_filters_combine(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        agent = make_user(Role.AGENT)
        wanted = make_ticket(priority="high", assignee_id=agent.id)
        make_ticket(priority="high")
        make_ticket(assignee_id=agent.id)
        response = as_user(agent).get(
            "/api/v1/tickets", params={"priority": "high", "assignee_id": agent.id}
        )
        assert [t["id"] for t in response.json()["items"]] == [wanted.id]

    def test_channel_and_requester_filters(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        requester = make_user()
        wanted = make_ticket(requester, channel="email")
        make_ticket(requester)
        make_ticket(channel="email")
        params: dict[str, str | int] = {"channel": "email", "requester_id": requester.id}
        response = as_user(make_user(Role.AGENT)).get("/api/v1/tickets", params=params)
        assert [t["id"] for t in response.json()["items"]] == [wanted.id]

    def test_timestamps_carry_a_timezone(self, as_user: AsUser, make_user: MakeUser) -> None:
        ticket = as_user(make_user()).post("/api/v1/tickets", json={"subject": "s", "body": "b"})
        created = datetime.fromisoformat(ticket.json()["created_at"])
        assert created.utcoffset() is not None

    def test_triage_queue_filter(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        queued = make_ticket(needs_triage=True)
        make_ticket()
        response = as_user(make_user(Role.AGENT)).get(
            "/api/v1/tickets", params={"needs_triage": "true"}
        )
        assert [t["id"] for t in response.json()["items"]] == [queued.id]

    def test_q_matches_words_in_subject_and_messages_by_prefix(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        hit = make_ticket(subject="Invoice question", body="The refunds were doubled")
        make_ticket(subject="Password reset", body="Locked out")
        agent = as_user(make_user(Role.AGENT))
        for q in ("invoice", "REFUND", "invoice doubled"):
            assert [
                t["id"] for t in agent.get("/api/v1/tickets", params={"q": q}).json()["items"]
            ] == [hit.id]
        assert agent.get("/api/v1/tickets", params={"q": "invoice locked"}).json()["items"] == []

    def test_q_with_search_syntax_is_treated_as_words(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        make_ticket(subject="Printer jam")
        agent = as_user(make_user(Role.AGENT))
        for q in ('"printer', "printer:* | !", "NEAR(a b)", "' OR 1=1 --", "***"):
            assert agent.get("/api/v1/tickets", params={"q": q}).status_code == 200

    def test_client_search_does_not_reach_internal_notes(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        me = make_user()
        ticket = make_ticket(me)
        as_user(make_user(Role.AGENT)).post(
            f"/api/v1/tickets/{ticket.id}/messages",
            json={"body": "suspected fraudster", "internal": True},
        )
        assert as_user(me).get("/api/v1/tickets", params={"q": "fraudster"}).json()["items"] == []

    def test_forged_cursor_gets_422(self, as_user: AsUser, make_user: MakeUser) -> None:
        response = as_user(make_user()).get(
            "/api/v1/tickets", params={"cursor": "bm90LWEtY3Vyc29y"}
        )
        assert response.status_code == 422

    def test_limit_over_100_gets_422(self, as_user: AsUser, make_user: MakeUser) -> None:
        assert as_user(make_user()).get("/api/v1/tickets", params={"limit": 101}).status_code == 422


class TestUpdateTicket:
    def test_agent_changes_fields_and_each_change_is_an_event(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        agent = make_user(Role.AGENT)
        ticket = make_ticket()
        api = as_user(agent)
        response = api.patch(
            f"/api/v1/tickets/{ticket.id}",
            json={
                "status": "open",
                "priority": "urgent",
                "category": "billing",
                "assignee_id": agent.id,
            },
        )
        assert response.status_code == 200 and response.json()["priority"] == "urgent"
        events = api.get(f"/api/v1/tickets/{ticket.id}/events").json()["items"]
        mine = [e for e in events if e["actor"] == {"type": "user", "id": agent.id, "name": None}]
        assert [e["type"] for e in mine] == ["ticket.updated", "ticket.assigned"]
        changes = {**mine[0]["data"]["changes"], **mine[1]["data"]["changes"]}
        assert {field: after for field, (_, after) in changes.items()} == {
            "status": "open",
            "priority": "urgent",
            "category": "billing",
            "assignee_id": agent.id,
        }

    def test_unknown_category_gets_422(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        response = as_user(make_user(Role.AGENT)).patch(
            f"/api/v1/tickets/{make_ticket().id}", json={"category": "astrology"}
        )
        assert response.status_code == 422

    def test_assigning_to_a_client_gets_422(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        response = as_user(make_user(Role.AGENT)).patch(
            f"/api/v1/tickets/{make_ticket().id}", json={"assignee_id": make_user().id}
        )
        assert response.status_code == 422

    def test_moving_back_to_new_gets_409(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        ticket = make_ticket(status="open")
        response = as_user(make_user(Role.AGENT)).patch(
            f"/api/v1/tickets/{ticket.id}", json={"status": "new"}
        )
        assert response.status_code == 409

    def test_owner_closes_and_reopens(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        me = make_user()
        ticket = make_ticket(me)
        api = as_user(me)
        assert (
            api.patch(f"/api/v1/tickets/{ticket.id}", json={"status": "closed"}).json()["status"]
            == "closed"
        )
        assert (
            api.patch(f"/api/v1/tickets/{ticket.id}", json={"status": "open"}).json()["status"]
            == "open"
        )

    def test_owner_cannot_set_pending_or_priority(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        me = make_user()
        ticket = make_ticket(me)
        api = as_user(me)
        assert (
            api.patch(f"/api/v1/tickets/{ticket.id}", json={"status": "pending"}).status_code == 403
        )
        assert (
            api.patch(f"/api/v1/tickets/{ticket.id}", json={"priority": "urgent"}).status_code
            == 403
        )

    def test_staff_set_cc_in_the_spelling_intake_compares(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        ticket = make_ticket(make_user())
        cc = ["Bob@Example.ORG.", '"carol"@example.net', "bob@example.org"]
        response = as_user(make_user(Role.AGENT)).patch(
            f"/api/v1/tickets/{ticket.id}", json={"cc": cc}
        )
        assert response.status_code == 200
        assert response.json()["cc"] == ["bob@example.org", "carol@example.net"]

    def test_a_client_cannot_add_participants(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        me = make_user()
        ticket = make_ticket(me)
        response = as_user(me).patch(f"/api/v1/tickets/{ticket.id}", json={"cc": ["m@evil.test"]})
        assert response.status_code == 403

    def test_cc_that_is_no_address_gets_422_naming_it(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        ticket = make_ticket(make_user())
        api = as_user(make_user(Role.AGENT))
        response = api.patch(f"/api/v1/tickets/{ticket.id}", json={"cc": ["bob@", "a@b.org"]})
        assert response.status_code == 422
        assert "bob@" in response.json()["detail"]


class TestMessages:
    def test_client_never_sees_internal_notes(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        me = make_user()
        ticket = make_ticket(me)
        agent = as_user(make_user(Role.AGENT))
        agent.post(
            f"/api/v1/tickets/{ticket.id}/messages", json={"body": "check fraud", "internal": True}
        )
        agent.post(f"/api/v1/tickets/{ticket.id}/messages", json={"body": "We are on it."})
        page = as_user(me).get(f"/api/v1/tickets/{ticket.id}/messages").json()
        assert [m["body"] for m in page["items"]] == [
            "The office printer is smoking.",
            "We are on it.",
        ]
        assert len(agent.get(f"/api/v1/tickets/{ticket.id}/messages").json()["items"]) == 3

    def test_client_cannot_write_internal_notes(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        me = make_user()
        response = as_user(me).post(
            f"/api/v1/tickets/{make_ticket(me).id}/messages",
            json={"body": "psst", "internal": True},
        )
        assert response.status_code == 403

    def test_public_staff_reply_is_outbound_and_not_sent_without_a_relay(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        ticket = make_ticket()
        reply = (
            as_user(make_user(Role.AGENT))
            .post(f"/api/v1/tickets/{ticket.id}/messages", json={"body": "Fixed."})
            .json()
        )
        assert reply["direction"] == "out" and reply["delivery_state"] == "not_sent"

    def test_requester_reply_reopens_a_resolved_ticket(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        me = make_user()
        ticket = make_ticket(me, status="resolved")
        as_user(me).post(f"/api/v1/tickets/{ticket.id}/messages", json={"body": "Still broken"})
        assert as_user(me).get(f"/api/v1/tickets/{ticket.id}").json()["status"] == "open"


class TestHealth:
    def test_healthz_answers(self, client: TestClient) -> None:
        assert client.get("/healthz").json() == {"status": "ok"}

    def test_readyz_checks_the_database(self, client: TestClient) -> None:
        response = client.get("/readyz")
        assert response.status_code == 200 and response.json()["checks"]["database"] == "ok"


class TestDocs:
    def test_swagger_ui_loads_its_assets_from_the_app(self, client: TestClient) -> None:
        page = client.get("/docs").text
        assert "/docs-assets/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
        assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200

    def test_redoc_loads_its_assets_from_the_app(self, client: TestClient) -> None:
        page = client.get("/redoc").text
        assert "/docs-assets/redoc.standalone.js" in page and "fonts.googleapis" not in page
        assert client.get("/docs-assets/redoc.standalone.js").status_code == 200

    def test_openapi_declares_the_password_flow_for_authorize(self, client: TestClient) -> None:
        schemes = client.get("/openapi.json").json()["components"]["securitySchemes"]
        assert (
            schemes["OAuth2PasswordBearer"]["flows"]["password"]["tokenUrl"] == "/api/v1/auth/login"
        )


class TestListMessages:
    def test_a_long_conversation_is_paged_oldest_first_with_a_cursor(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        me = make_user()
        ticket = make_ticket(me)
        client = as_user(me)
        path = f"/api/v1/tickets/{ticket.id}/messages"
        for n in range(6):
            client.post(path, json={"body": f"reply {n}"})
        bodies, cursor = [], None
        while True:
            page = client.get(path, params={"limit": 3, **({"cursor": cursor} if cursor else {})})
            assert page.status_code == 200 and len(page.json()["items"]) <= 3
            bodies += [m["body"] for m in page.json()["items"]]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        assert bodies == ["The office printer is smoking."] + [f"reply {n}" for n in range(6)]

    def test_a_limit_over_the_maximum_gets_422(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        me = make_user()
        response = as_user(me).get(
            f"/api/v1/tickets/{make_ticket(me).id}/messages", params={"limit": 101}
        )
        assert response.status_code == 422


def _reply(context: Context, ticket: Ticket, state: DeliveryState | None) -> int:
    """A staff reply on the ticket in `state` (None: an inbound message)."""
    with transaction(context.sessions) as db:
        message = Message(
            ticket_id=ticket.id,
            direction="out" if state else "in",
            body="Reply",
            full_body="Reply",
            delivery_state=state,
            delivery_error="554 5.7.1 refused" if state is DeliveryState.FAILED else None,
        )
        db.add(message)
        db.flush()
        return message.id


class TestResend:
    def _path(self, ticket_id: int, message_id: int) -> str:
        return f"/api/v1/tickets/{ticket_id}/messages/{message_id}/resend"

    def test_a_failed_reply_is_queued_again(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket, clean: Context
    ) -> None:
        ticket = make_ticket()
        failed = _reply(clean, ticket, DeliveryState.FAILED)
        answer = as_user(make_user(Role.AGENT)).post(self._path(ticket.id, failed))
        assert answer.status_code == 200, answer.text
        assert answer.json()["delivery_state"] == "queued"
        assert answer.json()["delivery_error"] is None
        with clean.sessions() as db:
            item = db.scalars(sa.select(OutboxItem)).one()
        assert (item.ref_id, item.state, item.attempts) == (failed, DeliveryState.QUEUED, 0)

    @pytest.mark.parametrize("state", [DeliveryState.QUEUED, DeliveryState.SENT, None])
    def test_a_message_that_has_not_failed_gets_409(
        self,
        as_user: AsUser,
        make_user: MakeUser,
        make_ticket: MakeTicket,
        clean: Context,
        state: DeliveryState | None,
    ) -> None:
        ticket = make_ticket()
        answer = as_user(make_user(Role.ADMIN)).post(
            self._path(ticket.id, _reply(clean, ticket, state))
        )
        assert answer.status_code == 409
        assert answer.headers["content-type"] == "application/problem+json"

    def test_a_message_of_another_ticket_gets_404(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket, clean: Context
    ) -> None:
        failed = _reply(clean, make_ticket(), DeliveryState.FAILED)
        answer = as_user(make_user(Role.AGENT)).post(self._path(make_ticket().id, failed))
        assert answer.status_code == 404
        assert answer.headers["content-type"] == "application/problem+json"

    def test_a_client_may_not_resend_even_on_their_own_ticket(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket, clean: Context
    ) -> None:
        me = make_user()
        ticket = make_ticket(me)
        failed = _reply(clean, ticket, DeliveryState.FAILED)
        assert as_user(me).post(self._path(ticket.id, failed)).status_code == 403
        with transaction(clean.sessions) as db, pytest.raises(PermissionDenied):
            resend_message(db, ticket.id, failed, actor=db.get_one(User, me.id))
