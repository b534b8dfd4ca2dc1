"""The history after kill -9: `doxa serve` killed with SIGKILL ten times during a burst of mail
and agent changes; afterwards every change has its event and every event its change.

Each life of the server is `doxa serve` (the CLI's `serve`, on real SMTP and HTTP ports),
forked from one process that has imported DOXA once: a fresh interpreter spends ~2.5 s of CPU
importing before it listens, and ten of them would be most of this test's time.
"""

from __future__ import annotations

import os
import random
import signal
import smtplib
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from doxa.core.context import Context
from doxa.core.enums import IntakeStatus, Role
from doxa.core.events.models import Event
from doxa.core.intake.models import IntakeEvent
from doxa.core.tickets.models import Message, Ticket
from tests.conftest import MakeUser
from tests.gateway.conftest import message
from tests.relays import free_port

KILLS = 10
# Forks `doxa serve` on demand ("start" -> the child's pid; "wait <pid>" -> reaped, "ok").
ZYGOTE = """
import os, sys
from doxa import cli, main, migrations, server  # imported once, shared by every life

for line in sys.stdin:
    command, _, arg = line.strip().partition(" ")
    if command == "wait":
        os.waitpid(int(arg), 0)
        print("ok", flush=True)
        continue
    pid = os.fork()
    if pid == 0:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        os._exit(cli.main(["serve", "--no-migrate"]))
    print(pid, flush=True)
"""


class Lives:
    """`doxa serve` started, killed with SIGKILL, and started again on the same ports."""

    def __init__(self, context: Context) -> None:
        self.http_port, self.smtp_port = free_port(), free_port()
        env = {
            **os.environ,
            "DATABASE_URL": context.settings.database_url,
            "DOXA_ENV": "dev",
            "JWT_SECRET": context.settings.secret,
            "HTTP_PORT": str(self.http_port),
            "SMTP_PORT": str(self.smtp_port),
            "WORKER_PROCESSES": "0",
            "AI_PROVIDER": "none",
            "SUPPORT_ADDRESSES": "support@example.com",
            "SENDER_HOURLY_LIMIT": "100000",
            "DOXA_ADMIN_EMAIL": "",
            # Each life hashes a dummy password as it starts: 12 rounds cost ~0.3 s of it.
            "BCRYPT_ROUNDS": "4",
        }
        self.zygote = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.pid: int | None = None

    def _ask(self, line: str) -> str:
        stdin, stdout = self.zygote.stdin, self.zygote.stdout
        assert stdin is not None and stdout is not None
        stdin.write(line + "\n")
        stdin.flush()
        return stdout.readline().strip()

    def start(self) -> None:
        self.pid = int(self._ask("start"))
        deadline = time.monotonic() + 60
        # One client: `httpx.get` makes a client (and its TLS context, ~50 ms) every try.
        with httpx.Client(base_url=f"http://127.0.0.1:{self.http_port}", timeout=1) as http:
            while time.monotonic() < deadline:
                try:
                    if http.get("/readyz").status_code == 200:
                        return
                except httpx.TransportError:
                    time.sleep(0.02)
        raise AssertionError("doxa serve did not become ready")

    def kill(self) -> None:
        assert self.pid is not None
        os.kill(self.pid, signal.SIGKILL)
        assert self._ask(f"wait {self.pid}") == "ok"  # its ports are free again
        self.pid = None

    def close(self) -> None:
        if self.pid is not None:
            self.kill()
        for pipe in (self.zygote.stdin, self.zygote.stdout):
            if pipe is not None:
                pipe.close()
        self.zygote.wait(timeout=30)


@pytest.fixture
def lives(clean: Context) -> Iterator[Lives]:
    running = Lives(clean)
    try:
        yield running
    finally:
        running.close()


class Burst:
    """Mail (new tickets, follow-ups, auto-replies to hold) and an agent's changes, sent until
    stopped, whatever the server's state: a refused connection is tried again."""

    def __init__(self, lives: Lives, context: Context, token: str, agent_id: int) -> None:
        self.lives, self.context, self.agent_id = lives, context, agent_id
        self.headers = {"Authorization": f"Bearer {token}"}
        self.stopped = threading.Event()
        self.sent = self.changed = 0
        self.threads = [
            threading.Thread(target=self._mail, daemon=True),
            threading.Thread(target=self._agent, daemon=True),
        ]

    def __enter__(self) -> Burst:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _mail(self) -> None:
        rng = random.Random(1)
        openings: list[tuple[str, str]] = []
        while not self.stopped.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", self.lives.smtp_port, timeout=10) as client:
                    while not self.stopped.is_set():
                        sender, raw, opening = self._next_mail(rng, openings)
                        client.sendmail(sender, ["support@example.com"], raw)
                        self.sent += 1
                        if opening is not None:
                            openings.append(opening)
                        time.sleep(0.08)  # a burst the server can store as it goes
            except (OSError, smtplib.SMTPException):
                time.sleep(0.05)

    def _next_mail(
        self, rng: random.Random, openings: list[tuple[str, str]]
    ) -> tuple[str, str, tuple[str, str] | None]:
        n, roll = self.sent, rng.random()
        if roll < 0.1:
            sender = f"away{n % 3}@example.org"
            raw = message("Out of office", sender=sender, Auto_Submitted="auto-replied")
            return sender, raw, None
        if roll < 0.5 and openings:
            sender, first = rng.choice(openings)
            raw = message(f"Re: burst {n}", "Still broken.", sender=sender, References=f"<{first}>")
            return sender, raw, None
        sender, first = f"customer{n % 7}@example.org", f"burst{n}@example.org"
        return sender, message(f"burst {n}", sender=sender, message_id=first), (sender, first)

    def answered(self, mails: int, changes: int) -> None:
        """Returns once the server has answered `mails` more mails and `changes` more changes."""
        sent, changed = self.sent + mails, self.changed + changes
        deadline = time.monotonic() + 60
        while self.sent < sent or self.changed < changed:
            assert time.monotonic() < deadline, "the burst stalled"
            time.sleep(0.01)

    def _agent(self) -> None:
        rng = random.Random(2)
        base = f"http://127.0.0.1:{self.lives.http_port}/api/v1/tickets"
        # One client for the whole burst (`httpx.patch` would make one, TLS context and all,
        # per change); a killed server only costs it the connection.
        with httpx.Client(base_url=base, headers=self.headers, timeout=10) as http:
            while not self.stopped.is_set():
                with self.context.sessions() as db:
                    ids = list(db.scalars(select(Ticket.id).order_by(Ticket.id.desc()).limit(20)))
                if not ids:
                    time.sleep(0.05)
                    continue
                url = f"/{rng.choice(ids)}"
                try:
                    if rng.random() < 0.7:
                        change = rng.choice(
                            [
                                {"status": rng.choice(["open", "pending", "resolved"])},
                                {"priority": rng.choice(["low", "normal", "high", "urgent"])},
                                {"assignee_id": rng.choice([self.agent_id, None])},
                            ]
                        )
                        http.patch(url, json=change)
                    else:
                        note = {"body": "Looking into it.", "internal": rng.random() < 0.5}
                        http.post(f"{url}/messages", json=note)
                    self.changed += 1
                    time.sleep(0.02)
                except httpx.TransportError:
                    time.sleep(0.05)


def _history(context: Context) -> tuple[list[Ticket], dict[int, list[Event]], list[Any]]:
    with context.sessions() as db:
        tickets = list(db.scalars(select(Ticket).order_by(Ticket.id)))
        events: dict[int, list[Event]] = defaultdict(list)
        for event in db.scalars(select(Event).order_by(Event.ticket_id, Event.sequence)):
            events[event.ticket_id or 0].append(event)
        messages = list(db.execute(select(Message.ticket_id, Message.id)))
        held = list(
            db.scalars(select(IntakeEvent.id).where(IntakeEvent.status == IntakeStatus.HELD))
        )
        db.expunge_all()
    return tickets, events, [messages, held]


TRACKED = ("status", "priority", "assignee_id")


@pytest.mark.slow
class TestHistoryAfterKill9:
    def test_every_change_has_its_event_and_every_event_its_change(
        self, clean: Context, lives: Lives, make_user: MakeUser
    ) -> None:
        agent = make_user(Role.AGENT)
        token = clean.tokens.issue(agent.id, agent.token_version)
        rng = random.Random(3)
        lives.start()
        with Burst(lives, clean, token, agent.id) as burst:
            for _ in range(KILLS):
                # Killed once this life has taken some of the burst (not after a fixed 1-2 s:
                # most of that was waiting), with mail and changes still coming in.
                burst.answered(mails=rng.randint(3, 12), changes=2)
                lives.kill()
                lives.start()
        lives.kill()
        tickets, events, (messages, held) = _history(clean)
        assert len(tickets) >= 5 and burst.changed >= 10, "the burst made too little to check"

        messages_of: dict[int, set[int]] = defaultdict(set)
        for ticket_id, message_id in messages:
            messages_of[ticket_id].add(message_id)
        for ticket in tickets:
            history = events[ticket.id]
            assert [e.sequence for e in history] == list(range(1, len(history) + 1))
            assert ticket.event_sequence == len(history)
            assert history[0].type == "ticket.created"
            assert [e.type for e in history].count("ticket.created") == 1
            posted = [e.data["id"] for e in history if e.type == "message.created"]
            assert sorted(posted) == sorted(messages_of[ticket.id])  # one each, both ways
            state = {field: history[0].data[field] for field in TRACKED}
            for event in history:
                for field, (before, after) in (event.changes or {}).items():
                    if field in TRACKED:
                        assert before == state[field], (ticket.id, event.sequence, field)
                        state[field] = after
            assert state == {
                "status": ticket.status.value,
                "priority": ticket.priority.value,
                "assignee_id": ticket.assignee_id,
            }
        intake = [e for e in events[0] if e.type == "intake.held"]
        assert sorted(e.data["id"] for e in intake) == sorted(held)
