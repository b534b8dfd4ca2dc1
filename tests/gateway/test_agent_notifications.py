"""Agents' mail notifications, end to end: the running app, mail in through the real SMTP
listener, notifications out through the outbox to a real relay, and the agent's answer back
in through the listener."""

from __future__ import annotations

import time
from datetime import timedelta
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from doxa.core.enums import IntakeStatus, Role
from doxa.core.events.models import EventCursor
from doxa.core.notifications import service as notifications
from doxa.core.notifications.models import AgentNotice
from doxa.core.tickets.models import Ticket
from doxa.core.users.models import User
from tests.conftest import MakeUser
from tests.gateway.conftest import Smtp, StartSmtp, message, relayed
from tests.relays import Sink

CUSTOMER = "alice@example.org"
AGENT = "ann@example.net"
TRUSTED = {"trusted_authserv_ids": "mx.ours.test", "trusted_relays": "127.0.0.1"}
AGENT_PASSES = "mx.ours.test; dmarc=pass header.from=example.net"


@pytest.fixture
def desk(start_smtp: StartSmtp, sink: Sink) -> Smtp:
    """The app with a relay; no minute to wait for (tests/core/notifications play the minute)."""
    smtp = start_smtp(outbound_smtp_url=sink.url, notification_window_seconds=0, **TRUSTED)
    # The consumer starts at the present: its first run marks it. Run here, as a second process
    # would (the job's claims make that safe), instead of a second waiting for the app's run.
    notifications.run(smtp.context.sessions, relay=True, window=timedelta(0))
    with smtp.context.sessions() as db:
        assert db.get(EventCursor, "notifications") is not None
    return smtp


@pytest.fixture
def agent(make_user: MakeUser) -> User:
    return make_user(Role.AGENT, email=AGENT)


def _bearer(smtp: Smtp, user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {smtp.context.tokens.issue(user.id)}"}


def _mail_to(sink: Sink, address: str, count: int, timeout: float = 20) -> list[EmailMessage]:
    deadline = time.monotonic() + timeout
    while len(mails := [m for m in sink.received if m["To"] == address]) < count:
        assert time.monotonic() < deadline, f"{address} got {len(mails)} of {count} mails"
        time.sleep(0.05)
    return mails


def _assigned_ticket(desk: Smtp, sink: Sink, agent: User, admin: User) -> tuple[Ticket, str]:
    """A customer's ticket assigned to the agent, and the notification's Message-ID."""
    desk.send(message("Printer is broken", "It prints blank pages.", sender=CUSTOMER))
    desk.settle()
    ticket = desk.tickets()[-1]
    answer = desk.http.patch(
        f"/api/v1/tickets/{ticket.id}", json={"assignee_id": agent.id}, headers=_bearer(desk, admin)
    )
    assert answer.status_code == 200, answer.text
    [mail] = _mail_to(sink, AGENT, 1)
    return ticket, mail["Message-ID"]


class TestNotified:
    def test_the_assignee_is_mailed_and_then_gets_the_customers_text(
        self, desk: Smtp, sink: Sink, agent: User, make_user: MakeUser
    ) -> None:
        ticket, _ = _assigned_ticket(desk, sink, agent, make_user(Role.ADMIN))
        first = _mail_to(sink, AGENT, 1)[0]
        assert first["Subject"] == f"[#{ticket.id}] Printer is broken"
        assert "Assigned to you." in first.get_content()
        reply = f"Re: [#{ticket.id}] Printer is broken"
        desk.send(message(reply, "Still blank, and now it beeps.", sender=CUSTOMER))
        second = _mail_to(sink, AGENT, 2)[1]
        assert "Still blank, and now it beeps." in second.get_content()

    def test_an_agent_with_notifications_off_gets_nothing(
        self, desk: Smtp, sink: Sink, agent: User, make_user: MakeUser
    ) -> None:
        admin, other = make_user(Role.ADMIN), make_user(Role.AGENT)
        off = {"notifications": {"assigned": False}}
        assert desk.http.patch(
            "/api/v1/users/me", json=off, headers=_bearer(desk, agent)
        ).is_success
        desk.send(message("Printer is broken", sender=CUSTOMER))
        desk.send(message("Scanner is broken", sender="bob@example.org"))
        desk.settle()
        first, second = desk.tickets()
        for ticket, assignee in ((first, agent), (second, other)):
            path, body = f"/api/v1/tickets/{ticket.id}", {"assignee_id": assignee.id}
            assert desk.http.patch(path, json=body, headers=_bearer(desk, admin)).is_success
        _mail_to(sink, other.email, 1)  # the later assignment is told: the earlier was read
        with desk.context.sessions() as db:
            assert (
                db.scalars(select(AgentNotice).where(AgentNotice.user_id == agent.id)).all() == []
            )
        assert _mail_to(sink, AGENT, 0) == []


class TestReplies:
    def test_the_agents_authenticated_reply_is_an_internal_note(
        self, desk: Smtp, sink: Sink, agent: User, make_user: MakeUser
    ) -> None:
        ticket, notification_id = _assigned_ticket(desk, sink, agent, make_user(Role.ADMIN))
        answer = message(
            f"Re: [#{ticket.id}] Printer is broken",
            "Toner is empty; ordering more.\r\n\r\n> Assigned to you.",
            sender=AGENT,
            In_Reply_To=notification_id,
            References=notification_id,
        )
        desk.send(relayed(answer, AGENT_PASSES), sender=AGENT)
        assert desk.settle()[-1].status is IntakeStatus.FOLLOWUP
        note = desk.messages(ticket.id)[-1]
        assert (note.internal, note.author_id) == (True, agent.id)
        assert note.body.startswith("Toner is empty; ordering more.")
        customer = _customer(desk, ticket)
        seen = desk.http.get(f"/api/v1/tickets/{ticket.id}/messages", headers=customer).json()
        assert "Toner is empty" not in str(seen["items"])
        staff = desk.http.get(f"/api/v1/tickets/{ticket.id}/messages", headers=_bearer(desk, agent))
        assert staff.json()["items"][-1]["internal"] is True
        assert [m["To"] for m in sink.received].count(CUSTOMER) == 1  # the acknowledgment only

    def test_an_unauthenticated_reply_from_the_agents_address_is_no_note(
        self, desk: Smtp, sink: Sink, agent: User, make_user: MakeUser
    ) -> None:
        ticket, notification_id = _assigned_ticket(desk, sink, agent, make_user(Role.ADMIN))
        before = len(desk.messages(ticket.id))
        forged = message(
            f"Re: [#{ticket.id}] Printer is broken",
            "Close it, refund everything.",
            sender=AGENT,
            In_Reply_To=notification_id,
        )
        desk.send(forged, sender=AGENT)
        event = desk.settle()[-1]
        assert (event.status, event.reason) == (IntakeStatus.HELD, "spoofed")
        assert len(desk.messages(ticket.id)) == before


def _customer(desk: Smtp, ticket: Ticket) -> dict[str, str]:
    with desk.context.sessions() as db:
        requester = db.scalars(select(User).where(User.id == ticket.requester_id)).one()
    return _bearer(desk, requester)
