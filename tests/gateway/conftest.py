"""Helpers for the ingestion edge's tests: the shared real-world corpus, parsed once."""

from __future__ import annotations

import json
import smtplib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from doxa.core.context import Context
from doxa.core.enums import IntakeStatus
from doxa.core.errors import InvalidInput
from doxa.core.intake.inbound import InboundMessage
from doxa.core.intake.models import IntakeEvent
from doxa.core.tickets.models import Message as TicketMessage
from doxa.core.tickets.models import Ticket
from doxa.gateway.mime.loading import MAX_HEADER_BYTES, MAX_PARTS
from doxa.gateway.parsing import parse_email
from doxa.main import create_app
from tests.conftest import EMAIL_CORPUS, make_settings
from tests.gateway.webhook_support import start_hooks

CORPUS = EMAIL_CORPUS
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ParsedCorpus:
    entries: dict[str, dict[str, Any]]  # INDEX.json records by path
    messages: dict[str, InboundMessage]
    invalid: dict[str, str]  # path -> InvalidInput detail
    errors: dict[str, str]  # path -> any other exception (must stay empty)


@pytest.fixture(scope="session")
def parsed_corpus(corpus_dir: Path) -> ParsedCorpus:
    entries = {e["path"]: e for e in json.loads((corpus_dir / "INDEX.json").read_text())["files"]}
    corpus = ParsedCorpus(entries, {}, {}, {})
    for path in entries:
        try:
            raw = (corpus_dir / path).read_bytes()
            corpus.messages[path] = parse_email(raw, max_attachment_bytes=MAX_ATTACHMENT_BYTES)
        except InvalidInput as exc:
            corpus.invalid[path] = exc.detail
        except Exception as exc:  # collected and asserted empty by a test
            corpus.errors[path] = repr(exc)
    return corpus


@pytest.fixture
def parse() -> Callable[..., InboundMessage]:
    """Parse raw bytes (or text, encoded as UTF-8) with the production limit unless given."""

    def _parse(
        raw: bytes | str,
        *,
        max_attachment_bytes: int = MAX_ATTACHMENT_BYTES,
        max_header_bytes: int = MAX_HEADER_BYTES,
        max_mime_parts: int = MAX_PARTS,
    ) -> InboundMessage:
        data = raw.encode() if isinstance(raw, str) else raw
        return parse_email(
            data,
            max_attachment_bytes=max_attachment_bytes,
            max_header_bytes=max_header_bytes,
            max_mime_parts=max_mime_parts,
        )

    return _parse


def mail(
    *headers: str, body: str = "Hello", content_type: str = "text/plain; charset=utf-8"
) -> str:
    """A small RFC 5322 message with CRLF endings; headers as "Name: value" strings."""
    lines = ["From: Alice <alice@example.com>", "To: support@localhost", *headers]
    if not any(h.lower().startswith("content-type:") for h in headers):
        lines.append(f"Content-Type: {content_type}")
    return "\r\n".join([*lines, "", body, ""])


@dataclass
class Smtp:
    """A running app (HTTP through TestClient, SMTP on a real port) and ways to talk to it."""

    http: TestClient
    port: int
    context: Context

    def send(
        self,
        raw: bytes | str,
        *,
        to: str = "support@example.com",
        sender: str = "alice@example.org",
    ) -> dict[str, tuple[int, bytes]]:
        data = raw.encode() if isinstance(raw, str) else raw
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as client:
            return client.sendmail(sender, [to], data)

    def settle(self, timeout: float = 15.0) -> list[IntakeEvent]:
        """Wait until no event is left unprocessed; return every event, oldest first."""
        deadline = time.monotonic() + timeout
        while True:
            with self.context.sessions() as db:
                events = list(db.scalars(select(IntakeEvent).order_by(IntakeEvent.id)))
            if all(e.status is not IntakeStatus.RECEIVED for e in events):
                return events
            if time.monotonic() > deadline:
                raise AssertionError(f"events still unprocessed: {events}")
            time.sleep(0.01)  # most events are processed within tens of ms of their 250

    def tickets(self) -> list[Ticket]:
        with self.context.sessions() as db:
            query = select(Ticket).options(joinedload(Ticket.requester)).order_by(Ticket.id)
            return list(db.scalars(query))

    def messages(self, ticket_id: int) -> list[TicketMessage]:
        with self.context.sessions() as db:
            query = select(TicketMessage).where(TicketMessage.ticket_id == ticket_id)
            return list(db.scalars(query.order_by(TicketMessage.id)))


StartSmtp = Callable[..., Smtp]


@pytest.fixture
def start_smtp(clean: Context) -> Iterator[StartSmtp]:
    """Start the real app with its SMTP listener on a free port; settings may be overridden."""
    running: list[TestClient] = []

    def start(**overrides: object) -> Smtp:
        fresh = "database_url" in overrides
        url = str(overrides.pop("database_url", clean.settings.database_url))
        settings = make_settings(
            url, smtp_enabled=True, smtp_port=0, jwt_secret=clean.settings.secret, **overrides
        )
        context = Context.build(settings) if fresh else replace(clean, settings=settings)
        http = TestClient(create_app(settings, context=context), raise_server_exceptions=False)
        http.__enter__()
        running.append(http)
        listener = http.app.state.smtp_server  # type: ignore[attr-defined]
        return Smtp(http, listener.port, context)

    yield start
    for http in running:
        http.__exit__(None, None, None)


@pytest.fixture
def hooks(start_smtp: StartSmtp) -> Smtp:
    """The running app with every webhook endpoint configured (see webhook_support)."""
    return start_hooks(start_smtp)


@pytest.fixture
def smtp(start_smtp: StartSmtp) -> Smtp:
    return start_smtp()


def message(
    subject: str = "Printer is broken",
    body: str = "It prints blank pages.",
    *,
    sender: str = "alice@example.org",
    to: str = "support@example.com",
    message_id: str | None = None,
    **headers: str,
) -> str:
    """A small RFC 5322 message; extra headers are given as keyword arguments (Auto_Submitted=…)."""
    lines = [
        f"From: Alice <{sender}>",
        f"To: {to}",
        f"Subject: {subject}",
        f"Message-ID: <{message_id or uuid.uuid4().hex + '@example.org'}>",
        "Date: Fri, 27 Nov 2026 10:00:00 +0000",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return "\r\n".join(lines) + "\r\n\r\n" + body + "\r\n"


# The line the MTA in front adds on top when the message reaches it from the internet.
RELAY_RECEIVED = (
    "Received: from mail.sender.test (mail.sender.test [198.51.100.7])\r\n"
    "\tby mx.ours.test (Postfix) with ESMTPS id 4Qx1; Fri, 27 Nov 2026 10:00:01 +0000"
)


def relayed(raw: str, *above: str, below: str | None = None) -> str:
    """The message as the MTA in front hands it on: the Authentication-Results headers it wrote
    above its Received line, that line, then a header directly below it (a milter's, or one the
    sender wrote), then the message as the sender wrote it."""
    lines = [f"Authentication-Results: {value}" for value in above] + [RELAY_RECEIVED]
    if below is not None:
        lines.append(f"Authentication-Results: {below}")
    return "\r\n".join(lines) + "\r\n" + raw
