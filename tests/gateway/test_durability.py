"""A message answered 250 survives the process being killed right after the answer."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from doxa.core.context import Context
from doxa.core.enums import IntakeStatus
from doxa.core.intake.models import IntakeEvent
from doxa.core.tickets.models import Ticket
from tests.gateway.conftest import message
from tests.relays import free_port

DOXA = str(Path(sys.executable).with_name("doxa"))


def _serve(database_url: str, http_port: int, smtp_port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DOXA_ENV": "dev",
        "HTTP_PORT": str(http_port),
        "SMTP_PORT": str(smtp_port),
        "PARSER_PROCESSES": "0",
        "SUPPORT_ADDRESSES": "support@example.com",
        "DOXA_ADMIN_EMAIL": "",
        # Neither is this test's point, and both cost each start CPU time: training the local
        # classifier, and 12 bcrypt rounds of a dummy password.
        "AI_PROVIDER": "none",
        "BCRYPT_ROUNDS": "4",
    }
    server = subprocess.Popen(
        [DOXA, "serve", "--no-migrate"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    # One client: `httpx.get` makes a client (and its TLS context, ~50 ms) every try.
    with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=1) as http:
        while time.monotonic() < deadline:
            try:
                if http.get("/readyz").status_code == 200:
                    return server
            except httpx.TransportError:
                time.sleep(0.05)
    server.kill()
    raise AssertionError("doxa serve did not become ready")


@pytest.fixture
def ports() -> Iterator[tuple[int, int]]:
    yield free_port(), free_port()


@pytest.mark.slow
class TestKilledAfterAccepting:
    def test_every_message_answered_250_is_there_after_a_restart_and_makes_one_ticket(
        self, clean: Context, ports: tuple[int, int]
    ) -> None:
        url = clean.settings.database_url
        server = _serve(url, *ports)
        accepted = []
        try:
            with (
                _processing_blocked(clean),
                smtplib.SMTP("127.0.0.1", ports[1], timeout=30) as client,
            ):
                for n in range(20):
                    raw = message(f"kill test {n}", message_id=f"kill{n}@example.org")
                    client.sendmail("alice@example.org", ["support@example.com"], raw)
                    accepted.append(f"kill test {n}")
                os.kill(server.pid, signal.SIGKILL)  # right after the last 250, mid-processing
                server.wait(timeout=30)
        finally:
            server.kill()  # a no-op after the SIGKILL; stops it if sending failed
            server.wait(timeout=30)
        with clean.sessions() as db:
            assert len(list(db.scalars(select(IntakeEvent.id)))) == 20
        restarted = _serve(url, *ports)  # the start-up sweep picks up what was left
        try:
            subjects = _wait_for_tickets(clean, len(accepted))
        finally:
            restarted.kill()  # its stop is not this test's point (tests/test_server.py)
            restarted.wait(timeout=30)
        assert sorted(subjects) == sorted(accepted)


@contextmanager
def _processing_blocked(context: Context) -> Iterator[None]:
    """On PostgreSQL, block inserts into ticket so every accepted message is still unprocessed
    when the process dies (accepting only writes intake_event). SQLite has one lock for all."""
    if context.engine.dialect.name != "postgresql":
        yield
        return
    with context.engine.connect() as connection, connection.begin():
        connection.exec_driver_sql("LOCK TABLE ticket IN SHARE ROW EXCLUSIVE MODE")
        yield


def _wait_for_tickets(context: Context, count: int, timeout: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        with context.sessions() as db:
            pending = db.scalar(
                select(IntakeEvent.id).where(IntakeEvent.status == IntakeStatus.RECEIVED).limit(1)
            )
            subjects = list(db.scalars(select(Ticket.subject)))
        if (pending is None and len(subjects) >= count) or time.monotonic() > deadline:
            return subjects
        time.sleep(0.05)
