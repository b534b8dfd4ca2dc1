"""Service levels for mail: a mailed ticket's clock starts at intake; a requester's mail on a
pending ticket opens it and the clock runs again; it waits for the next response."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.enums import Channel, IntakeStatus, SlaState, Status
from doxa.core.intake.models import IntakeEvent
from doxa.core.intake.pipeline import Pipeline, Submission, message_id_of
from doxa.core.intake.processing import process_event
from doxa.core.sla import clock
from doxa.core.sla.models import SlaPolicy
from doxa.core.tickets.models import Ticket
from doxa.gateway.pipeline import build_pipeline

START = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


def _mail(sender: str, subject: str, message_id: str) -> bytes:
    lines = [
        f"From: {sender}",
        "To: support@example.com",
        f"Subject: {subject}",
        f"Message-ID: <{message_id}>",
        "Content-Type: text/plain; charset=utf-8",
        "",
        "The printer prints blank pages.",
        "",
    ]
    return "\r\n".join(lines).encode()


@pytest.fixture
def pipeline(clean: Context) -> Pipeline:
    with transaction(clean.sessions) as db:
        targets = {"normal": {"first_response": 60, "next_response": 30, "resolution": 600}}
        db.add(SlaPolicy(name="Mail", targets=targets))
    return build_pipeline(clean.settings)


def _deliver(clean: Context, pipeline: Pipeline, raw: bytes, sender: str) -> IntakeEvent:
    item = Submission(Channel.EMAIL, raw, ["support@example.com"], sender, message_id_of(raw))
    with transaction(clean.sessions) as db:
        event_id = pipeline.accept(db, item).id
    process_event(clean.sessions, pipeline, event_id)
    with clean.sessions() as db:
        return db.get_one(IntakeEvent, event_id)


class TestMailedTickets:
    def test_a_mailed_ticket_is_due_by_its_policy(
        self, clean: Context, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(clock, "time_source", lambda: START)
        event = _deliver(
            clean, pipeline, _mail("Ann <ann@example.org>", "Printer", "a1@x"), "ann@example.org"
        )
        with clean.sessions() as db:
            ticket = db.get_one(Ticket, event.ticket_id)
            assert ticket.sla_state is SlaState.OK
            assert ticket.first_response_due_at == START + timedelta(minutes=60)
            assert ticket.resolution_due_at == START + timedelta(minutes=600)

    def test_the_requesters_mail_on_a_pending_ticket_opens_it_and_the_clock_runs_again(
        self, clean: Context, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        now = [START]
        monkeypatch.setattr(clock, "time_source", lambda: now[0])
        first = _deliver(
            clean, pipeline, _mail("Ann <ann@example.org>", "Printer", "b1@x"), "ann@example.org"
        )
        with transaction(clean.sessions) as db:
            ticket = db.get_one(Ticket, first.ticket_id)
            clock.responded(db, ticket)  # answered at once, then waiting for the customer
            ticket.status = Status.PENDING
            clock.follow(db, ticket, {"status"})
        now[0] = START + timedelta(hours=2)
        subject = f"Re: Printer [#{first.ticket_id}]"
        event = _deliver(
            clean, pipeline, _mail("Ann <ann@example.org>", subject, "b2@x"), "ann@example.org"
        )
        assert event.status is IntakeStatus.FOLLOWUP
        with clean.sessions() as db:
            ticket = db.get_one(Ticket, first.ticket_id)
            assert ticket.status is Status.OPEN and ticket.sla_state is SlaState.OK
            assert ticket.resolution_due_at == START + timedelta(minutes=600 + 120)
            assert ticket.next_response_due_at == now[0] + timedelta(minutes=30)
