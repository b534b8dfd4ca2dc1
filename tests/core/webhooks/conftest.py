"""Webhook tests' pieces: a real HTTP receiver on loopback that answers as scripted, a clock
that tests move, and a subscription made through the service."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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

LOOPBACK = Allowed.parse("127.0.0.1")


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


class Receiver:
    """An HTTP server on 127.0.0.1 that records each POST and answers the next scripted answer
    (then 200 for ever); `stop()` and `start()` again on the same port: it went away and came
    back."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.script: list[Answer] = []
        self.port = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def answer(self, *answers: int | Answer) -> None:
        self.script = [a if isinstance(a, Answer) else Answer(a) for a in answers]

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.requests.append(Request(self.path, dict(self.headers.items()), body))
                answer = receiver.script.pop(0) if receiver.script else Answer()
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    yield server
    server.stop()


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
