"""Intake writes its events with its changes: a new ticket, each stored message (the
acknowledgment too), a reopening, a held and a rejected input."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.enums import ActorType, Channel, Status
from doxa.core.events.models import Event
from doxa.core.intake.pipeline import Pipeline, Submission, message_id_of
from doxa.core.intake.processing import process_event
from doxa.core.tickets.models import Message, Ticket
from doxa.gateway.pipeline import build_pipeline
from tests.gateway.conftest import message


@pytest.fixture
def pipeline(clean: Context) -> Pipeline:
    return build_pipeline(clean.settings)


def _mail(clean: Context, pipeline: Pipeline, raw: bytes) -> None:
    item = Submission(Channel.EMAIL, raw, ["support@example.com"], None, message_id_of(raw))
    with transaction(clean.sessions) as db:
        event_id = pipeline.accept(db, item).id
    process_event(clean.sessions, pipeline, event_id)


def _events(clean: Context) -> list[Event]:
    with clean.sessions() as db:
        return list(db.scalars(select(Event).order_by(Event.id)))


class TestNewTicket:
    def test_a_new_mail_gives_ticket_created_its_message_and_the_acknowledgment(
        self, clean: Context, pipeline: Pipeline
    ) -> None:
        _mail(clean, pipeline, message("Printer on fire", message_id="one@example.org").encode())
        with clean.sessions() as db:
            ticket = db.scalars(select(Ticket)).one()
            first, ack = db.scalars(select(Message).order_by(Message.id)).all()
            requester_id = ticket.requester_id
        created, posted, acknowledged = _events(clean)
        assert (created.type, created.sequence, created.actor_type) == (
            "ticket.created",
            1,
            ActorType.SYSTEM,
        )
        assert created.data["subject"] == "Printer on fire" and created.data["status"] == "new"
        assert (posted.type, posted.sequence, posted.actor_id) == (
            "message.created",
            2,
            requester_id,
        )
        assert posted.data["id"] == first.id and posted.data["body"].startswith("It prints")
        assert (acknowledged.type, acknowledged.sequence) == ("message.created", 3)
        assert acknowledged.actor_type is ActorType.SYSTEM and acknowledged.data["id"] == ack.id
        assert ticket.event_sequence == 3


class TestFollowUp:
    def test_a_reply_to_a_resolved_ticket_is_its_message_then_the_reopening(
        self, clean: Context, pipeline: Pipeline
    ) -> None:
        _mail(clean, pipeline, message("Printer", message_id="first@example.org").encode())
        with transaction(clean.sessions) as db:
            db.scalars(select(Ticket)).one().status = Status.RESOLVED
        reply = message("Re: Printer", "Again.", References="<first@example.org>")
        _mail(clean, pipeline, reply.encode())
        posted, reopened = _events(clean)[-2:]
        assert posted.type == "message.created" and posted.data["body"].startswith("Again.")
        assert reopened.type == "ticket.updated" and reopened.actor_type is ActorType.SYSTEM
        assert reopened.changes == {"status": ["resolved", "open"]}
        assert reopened.data["status"] == "open"
        assert [e.sequence for e in (posted, reopened)] == [4, 5]


class TestHeldAndRejected:
    def test_a_held_mail_is_an_intake_held_event_for_admins_without_a_ticket(
        self, clean: Context, pipeline: Pipeline
    ) -> None:
        _mail(clean, pipeline, message("Out of office", Auto_Submitted="auto-replied").encode())
        (held,) = _events(clean)
        assert held.type == "intake.held" and held.ticket_id is None and held.sequence is None
        assert held.public is False
        assert held.data == {"id": 1, "channel": "email", "status": "held", "reason": "auto_reply"}

    def test_input_that_can_never_be_a_ticket_is_an_intake_rejected_event(
        self, clean: Context, pipeline: Pipeline
    ) -> None:
        _mail(clean, pipeline, b"")
        (rejected,) = _events(clean)
        assert rejected.type == "intake.rejected" and rejected.ticket_id is None
        assert rejected.data["status"] == "rejected" and rejected.data["reason"] == "empty"
