"""Deliveries to a real receiver on loopback, each verified with the standardwebhooks package:
what arrives, and what each kind of answer does."""

from __future__ import annotations

import json

import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook as Verifier

from doxa.core.context import Context
from doxa.core.db import transaction, utcnow
from doxa.core.enums import DeliveryState, EventType, Role, WebhookDeliveryState
from doxa.core.events.models import Event
from doxa.core.events.record import SYSTEM, record
from doxa.core.models import OutboxItem, Ticket, User
from doxa.core.outbox.sender import Outbox
from doxa.core.tickets.messages import post_message
from doxa.core.tickets.schemas import MessageCreate
from doxa.core.webhooks import service
from doxa.core.webhooks.courier import MAX_BODY, payload
from doxa.core.webhooks.models import Webhook, WebhookDelivery
from tests.conftest import MakeTicket
from tests.core.webhooks.conftest import Clock, send_due, subscribe
from tests.receivers import Answer, Receiver


def _deliveries(context: Context) -> list[WebhookDelivery]:
    with context.sessions() as db:
        return list(db.scalars(sa.select(WebhookDelivery).order_by(WebhookDelivery.id)))


def _hook(context: Context, hook_id: int) -> Webhook:
    with context.sessions() as db:
        return db.get_one(Webhook, hook_id)


def _kind(body: bytes) -> str:
    event = json.loads(body)
    if event["type"] != "message.created":
        return str(event["type"])
    return "note" if event["data"]["internal"] else "message"


CREATED = ["ticket.created"]


class TestDelivered:
    def test_a_new_ticket_arrives_signed_with_the_standard_headers(
        self, clean: Context, receiver: Receiver, outbox: Outbox, make_ticket: MakeTicket
    ) -> None:
        hook = subscribe(clean, receiver.url, events=["ticket.created"])
        ticket = make_ticket(subject="Printer on fire")
        assert send_due(clean, outbox) == 1
        [request] = receiver.requests
        body = Verifier(hook.secret).verify(request.body, request.headers)
        assert body["type"] == "ticket.created" and body["ticket_id"] == ticket.id
        assert body["data"]["subject"] == "Printer on fire"
        assert set(body) == {"id", "type", "created_at", "ticket_id", "sequence", "actor", "data"}
        assert request.headers["webhook-id"] == str(body["id"])
        assert request.headers["content-type"] == "application/json"
        [delivery] = _deliveries(clean)
        assert delivery.state is WebhookDeliveryState.DELIVERED
        assert delivery.attempts[0]["status_code"] == 200

    def test_only_the_listed_types_and_internal_notes_only_when_asked(
        self, clean: Context, receiver: Receiver, outbox: Outbox, make_ticket: MakeTicket
    ) -> None:
        subscribe(clean, receiver.url, events=["message.created"])
        subscribe(clean, receiver.url + "?all", include_internal=True)
        ticket = make_ticket()
        with transaction(clean.sessions) as db:
            agent = User(email="agent@example.com", role=Role.AGENT, full_name="Al")
            db.add(agent)
            db.flush()
            note = MessageCreate(body="refund approved", internal=True)
            post_message(db, ticket.id, note, actor=agent, relay_configured=False)
        send_due(clean, outbox)
        got = [(r.path, _kind(r.body)) for r in receiver.requests]
        assert sorted(got) == [
            ("/hook", "message"),  # the ticket's first message; not the note, nor the ticket
            ("/hook?all", "message"),
            ("/hook?all", "note"),
            ("/hook?all", "ticket.created"),
        ]

    def test_staff_events_clients_do_not_see_are_sent_without_include_internal(
        self, clean: Context, receiver: Receiver, outbox: Outbox, make_ticket: MakeTicket
    ) -> None:
        """Only internal notes wait for `include_internal`: an on-call tool subscribed to
        breaches gets them, though a client's view of the ticket does not show them."""
        subscribe(clean, receiver.url, events=["sla.breached", "ticket.classified"])
        ticket = make_ticket()
        with transaction(clean.sessions) as db:
            held = db.get_one(Ticket, ticket.id)
            breach = {"target": "first_response"}
            record(db, held, EventType.SLA_BREACHED, actor=SYSTEM, data=breach, public=False)
            unsure: dict[str, list[object]] = {"needs_triage": [False, True]}
            classified = EventType.TICKET_CLASSIFIED
            record(db, held, classified, actor=SYSTEM, changes=unsure, public=False)
        send_due(clean, outbox)
        types = sorted(json.loads(request.body)["type"] for request in receiver.requests)
        assert types == ["sla.breached", "ticket.classified"]


class TestAnswers:
    def test_a_500_is_retried_and_then_delivered(
        self,
        clean: Context,
        receiver: Receiver,
        outbox: Outbox,
        clock: Clock,
        make_ticket: MakeTicket,
    ) -> None:
        subscribe(clean, receiver.url, events=CREATED)
        receiver.answer(500)
        make_ticket()
        send_due(clean, outbox)
        assert _deliveries(clean)[0].state is WebhookDeliveryState.PENDING
        clock.advance(minutes=1)
        send_due(clean, outbox)
        [delivery] = _deliveries(clean)
        assert delivery.state is WebhookDeliveryState.DELIVERED
        assert [a["status_code"] for a in delivery.attempts] == [500, 200]
        assert delivery.attempts[0]["error"] == "HTTP 500"
        assert len(receiver.requests) == 2
        assert (
            receiver.requests[0].headers["webhook-id"] == receiver.requests[1].headers["webhook-id"]
        )

    def test_a_410_disables_the_subscription(
        self, clean: Context, receiver: Receiver, outbox: Outbox, make_ticket: MakeTicket
    ) -> None:
        hook = subscribe(clean, receiver.url, events=CREATED)
        receiver.answer(410)
        make_ticket()
        send_due(clean, outbox)
        stored = _hook(clean, hook.id)
        assert not stored.active and "410" in (stored.disabled_reason or "")
        make_ticket()
        send_due(clean, outbox)
        assert len(receiver.requests) == 1  # nothing more for a disabled subscription

    def test_a_404_fails_that_delivery_and_the_next_one_still_goes(
        self, clean: Context, receiver: Receiver, outbox: Outbox, make_ticket: MakeTicket
    ) -> None:
        hook = subscribe(clean, receiver.url, events=CREATED)
        receiver.answer(404)
        make_ticket()
        send_due(clean, outbox)
        make_ticket()
        send_due(clean, outbox)
        states = [d.state for d in _deliveries(clean)]
        assert states == [WebhookDeliveryState.FAILED, WebhookDeliveryState.DELIVERED]
        assert _hook(clean, hook.id).active

    def test_a_redirect_fails_and_is_not_followed(
        self, clean: Context, receiver: Receiver, outbox: Outbox, make_ticket: MakeTicket
    ) -> None:
        subscribe(clean, receiver.url, events=CREATED)
        receiver.answer(Answer(302, {"location": receiver.url + "/elsewhere"}))
        make_ticket()
        send_due(clean, outbox)
        [delivery] = _deliveries(clean)
        assert delivery.state is WebhookDeliveryState.FAILED
        assert "redirect" in delivery.attempts[0]["error"]
        assert [r.path for r in receiver.requests] == ["/hook"]

    def test_a_receiver_that_goes_away_and_comes_back_gets_it(
        self,
        clean: Context,
        receiver: Receiver,
        outbox: Outbox,
        clock: Clock,
        make_ticket: MakeTicket,
    ) -> None:
        subscribe(clean, receiver.url, events=CREATED)
        receiver.stop()
        make_ticket()
        send_due(clean, outbox)
        [delivery] = _deliveries(clean)
        assert delivery.state is WebhookDeliveryState.PENDING
        assert delivery.attempts[0]["status_code"] is None
        assert "Connection" in delivery.attempts[0]["error"]
        receiver.start()  # the same port
        clock.advance(minutes=1)
        send_due(clean, outbox)
        assert _deliveries(clean)[0].state is WebhookDeliveryState.DELIVERED
        assert len(receiver.requests) == 1


class TestPayload:
    def test_a_body_over_256_kib_is_cut_and_says_so(self) -> None:
        event = Event(
            id=7,
            type="ticket.updated",
            ticket_id=1,
            sequence=2,
            actor_type="system",
            data={"id": 1, "subject": "big", "body": "x" * (300 * 1024)},
            public=True,
        )
        event.created_at = utcnow()
        body = payload(event)
        assert len(body) <= MAX_BODY
        data = json.loads(body)["data"]
        assert data == {"id": 1, "subject": "big", "truncated": True}


class TestDeleted:
    def test_a_deleted_subscription_gets_nothing_more(
        self,
        clean: Context,
        receiver: Receiver,
        outbox: Outbox,
        clock: Clock,
        make_ticket: MakeTicket,
    ) -> None:
        hook = subscribe(clean, receiver.url, events=CREATED)
        receiver.answer(500)
        make_ticket()
        send_due(clean, outbox)
        with transaction(clean.sessions) as db:
            admin = db.scalars(sa.select(User).where(User.role == Role.ADMIN)).one()
            service.delete_webhook(db, hook.id, actor=admin)
        clock.advance(hours=1)
        make_ticket()
        send_due(clean, outbox)
        assert len(receiver.requests) == 1 and _deliveries(clean) == []
        with clean.sessions() as db:
            item = db.scalars(sa.select(OutboxItem)).one()
        assert item.state is DeliveryState.FAILED
