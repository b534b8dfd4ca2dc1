"""Test relays: Sink (a real aiosmtpd server that keeps what it is given, the `sink` fixture of
tests/conftest.py) and relays that misbehave, built on it."""

from __future__ import annotations

import asyncio
import email.policy
import socket
import time
from email.message import EmailMessage
from email.parser import BytesParser

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Sink:
    """A real SMTP relay on a free port that keeps what it is given (the outbound side)."""

    def __init__(self, *, smtputf8: bool = True) -> None:
        self.received: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.port = free_port()
        self.controller = Controller(
            self, hostname="127.0.0.1", port=self.port, enable_SMTPUTF8=smtputf8
        )

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        self.received.append(BytesParser(policy=email.policy.default).parsebytes(raw))
        self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        return "250 2.0.0 OK"

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def wait_for(self, count: int, timeout: float = 15.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"relay got {len(self.received)} of {count} messages")
            time.sleep(0.01)
        return self.received


class RefusingRelay(Sink):
    """Answers `554` at DATA to mail for the listed recipients, and takes everything else."""

    def __init__(self, *refused: str) -> None:
        super().__init__()
        self.refused = set(refused)

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
        if self.refused & set(envelope.rcpt_tos):
            return "554 5.7.1 Message refused by policy"
        return await super().handle_DATA(server, session, envelope)


class HangingRelay(Sink):
    """Never answers RCPT for a dead domain until released (then `451`); counts how many
    sessions wait at once."""

    def __init__(self, dead_domain: str) -> None:
        super().__init__()
        self.dead = f"@{dead_domain}"
        self.hanging = self.most_hanging = 0
        self._released = asyncio.Event()

    def release(self) -> None:
        self.controller.loop.call_soon_threadsafe(self._released.set)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.endswith(self.dead):
            self.hanging += 1
            self.most_hanging = max(self.most_hanging, self.hanging)
            try:
                await self._released.wait()
            finally:
                self.hanging -= 1
            return "451 4.4.2 No answer from the destination"
        envelope.rcpt_tos.append(address)
        return "250 OK"
