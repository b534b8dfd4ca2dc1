"""Agents see people, not ids: requesters and authors embedded in reads, and GET /users/{id}."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event

from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.enums import Direction, Role
from doxa.core.models import Message
from tests.conftest import AsUser, MakeTicket, MakeUser


@contextmanager
def counted_queries(context: Context) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(context.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(context.engine, "before_cursor_execute", count)


class TestTicketReads:
    def test_ticket_embeds_its_requester(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        requester = make_user(email="ada@example.com")
        ticket = make_ticket(requester)
        body = as_user(make_user(Role.AGENT)).get(f"/api/v1/tickets/{ticket.id}").json()
        assert body["requester"] == {
            "id": requester.id,
            "email": "ada@example.com",
            "full_name": "Test Client",
        }

    def test_created_and_patched_tickets_embed_the_requester(
        self, as_user: AsUser, make_user: MakeUser
    ) -> None:
        agent = as_user(make_user(Role.AGENT))
        created = agent.post(
            "/api/v1/tickets",
            json={"subject": "Call", "body": "Lost access.", "requester_email": "bob@example.org"},
        ).json()
        assert created["requester"]["email"] == "bob@example.org"
        patched = agent.patch(f"/api/v1/tickets/{created['id']}", json={"priority": "high"})
        assert patched.json()["requester"]["id"] == created["requester_id"]

    def test_listing_loads_requesters_without_a_query_per_ticket(
        self, context: Context, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        agent = as_user(make_user(Role.AGENT))

        def queries_for_list(tickets: int) -> int:
            for _ in range(tickets):
                make_ticket(make_user())  # a different requester each
            with counted_queries(context) as statements:
                items = agent.get("/api/v1/tickets?limit=100").json()["items"]
            assert all(item["requester"]["email"] for item in items)
            return len(statements)

        assert queries_for_list(2) == queries_for_list(6)


class TestMessageReads:
    def test_messages_embed_their_author_and_automatic_mail_has_none(
        self, context: Context, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        client = make_user(email="cleo@example.com")
        ticket = make_ticket(client)
        agent_user = make_user(Role.AGENT)
        agent = as_user(agent_user)
        agent.post(f"/api/v1/tickets/{ticket.id}/messages", json={"body": "On it."})
        with transaction(context.sessions) as db:
            db.add(
                Message(ticket_id=ticket.id, direction=Direction.OUT, body="ack", full_body="ack")
            )
        messages = agent.get(f"/api/v1/tickets/{ticket.id}/messages").json()["items"]
        authors = [m["author"] for m in messages]
        assert authors[0] == {
            "id": client.id,
            "email": "cleo@example.com",
            "full_name": "Test Client",
            "role": "CLIENT",
        }
        assert authors[1]["id"] == agent_user.id and authors[1]["role"] == "AGENT"
        assert authors[2] is None

    def test_posted_reply_embeds_its_author(
        self, as_user: AsUser, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        me = make_user()
        reply = as_user(me).post(
            f"/api/v1/tickets/{make_ticket(me).id}/messages", json={"body": "Any news?"}
        )
        assert reply.status_code == 201 and reply.json()["author"]["email"] == me.email


class TestGetUser:
    def test_agent_reads_a_requester(self, as_user: AsUser, make_user: MakeUser) -> None:
        requester = make_user(email="dora@example.com")
        response = as_user(make_user(Role.AGENT)).get(f"/api/v1/users/{requester.id}")
        assert response.status_code == 200
        assert response.json()["email"] == "dora@example.com"
        assert response.json()["role"] == "CLIENT"

    def test_client_gets_403_problem(self, as_user: AsUser, make_user: MakeUser) -> None:
        other = make_user()
        response = as_user(make_user()).get(f"/api/v1/users/{other.id}")
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/problem+json"

    def test_unknown_user_gets_404(self, as_user: AsUser, make_user: MakeUser) -> None:
        assert as_user(make_user(Role.ADMIN)).get("/api/v1/users/424242").status_code == 404
