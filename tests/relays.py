"""Test relays that misbehave, built on the gateway tests' Sink (a real aiosmtpd server)."""

from __future__ import annotations

import asyncio

from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.gateway.conftest import Sink


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
