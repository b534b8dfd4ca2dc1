"""Webhook tests' pieces: a real HTTP receiver on loopback that answers as scripted, a clock
that tests move, and a subscription made through the service."""

from __future__ import annotations

import secrets
import time
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook as Verifier

from doxa.core.context import Context
from doxa.core.db import transaction, utcnow
from doxa.core.enums import Role
from doxa.core.events import feed
from doxa.core.events.models import Event, EventCursor
from doxa.core.models import User
from doxa.core.outbox.models import OutboxKind
from doxa.core.outbox.sender import Outbox
from doxa.core.webhooks import dispatch, service
from doxa.core.webhooks.courier import WebhookCourier
from doxa.core.webhooks.destinations import Allowed
from doxa.core.webhooks.schemas import WebhookCreate, WebhookCreated
from tests.receivers import Request

LOOPBACK = Allowed.parse("127.0.0.1")


class Clock:
    """The time the outbox and the courier read: the real time, plus what the test moved it on
    (what is queued meanwhile, at the real time, is due at once)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def outbox(clean: Context, clock: Clock) -> Outbox:
    courier = WebhookCourier(allowed=LOOPBACK, clock=clock)
    return Outbox(clean.sessions, {OutboxKind.WEBHOOK: courier}, clock=clock)


def send_due(context: Context, outbox: Outbox) -> int:
    """Queue deliveries for the events committed so far, then send every one due now."""
    deadline = time.monotonic() + 10
    dispatch.run(context.sessions)
    while not _caught_up(context):
        # On PostgreSQL the feed holds back while any transaction on the server (another
        # test's) is older than the last event.
        assert time.monotonic() < deadline, "the feed did not catch up"
        time.sleep(0.02)
        dispatch.run(context.sessions)
    sent = 0
    while claimed := outbox.claim(50):  # two at a time to one host (the outbox's fairness)
        for item_id in claimed:
            outbox.send(item_id)
        sent += len(claimed)
    return sent


def _caught_up(context: Context) -> bool:
    with context.sessions() as db:
        cursor = db.get(EventCursor, service.CONSUMER)
        last = db.scalar(sa.select(Event).order_by(Event.xact.desc(), Event.id.desc()).limit(1))
    if cursor is None or last is None:
        return True
    return feed.position(last) == feed.Position(cursor.xact or 0, cursor.event_id)


def admin(context: Context) -> User:
    with transaction(context.sessions) as db:
        user = User(
            email=f"admin-{secrets.token_hex(4)}@example.com",
            role=Role.ADMIN,
            full_name="Ada",
            is_active=True,
        )
        db.add(user)
    return user


def subscribe(context: Context, url: str, **fields: object) -> WebhookCreated:
    with transaction(context.sessions) as db:
        actor = db.merge(admin(context))
        data = WebhookCreate.model_validate({"url": url, **fields})
        return service.create_webhook(db, data, actor=actor, allowed=LOOPBACK)


def signed_by(secret: str, request: Request) -> bool:
    """Whether `secret` signed the request (the standardwebhooks package's own signature of the
    request's id, timestamp and body is among those sent). Use `Verifier.verify` where the
    attempt is signed at the real time: it also refuses a timestamp five minutes off."""
    headers = request.headers
    stamp = datetime.fromtimestamp(int(headers["webhook-timestamp"])).astimezone()
    expected = Verifier(secret).sign(headers["webhook-id"], stamp, request.body)
    return expected in headers["webhook-signature"].split(" ")
