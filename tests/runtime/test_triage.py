"""The background classifier gives way to intake: new mail becomes tickets first."""

from __future__ import annotations

import asyncio
import time

import pytest

from doxa.core.context import Context
from doxa.runtime import triage as runner
from doxa.runtime.triage import TriageRunner


def _batch_after(clean: Context, caught_up: asyncio.Event, *, catch_up_in: float | None) -> float:
    """Seconds until one classification batch ran, intake catching up after `catch_up_in`."""
    started: list[float] = []

    def classify() -> int:
        started.append(time.monotonic())
        return 0

    async def run() -> float:
        triage = TriageRunner(
            clean.settings, clean.sessions, intake_caught_up=caught_up, classify=classify
        )
        if catch_up_in is not None:
            asyncio.get_running_loop().call_later(catch_up_in, caught_up.set)
        began = time.monotonic()
        await triage._classify_batch()
        triage.local.close()
        return started[0] - began

    return asyncio.run(run())


@pytest.mark.timing
class TestIntakeFirst:
    @pytest.fixture(autouse=True)
    def short_patience(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(runner, "INTAKE_PATIENCE_SECONDS", 0.6)

    def test_a_batch_runs_at_once_when_intake_has_caught_up(self, clean: Context) -> None:
        caught_up = asyncio.Event()
        caught_up.set()
        assert _batch_after(clean, caught_up, catch_up_in=None) < 0.2

    def test_a_batch_waits_until_intake_catches_up(self, clean: Context) -> None:
        assert 0.15 < _batch_after(clean, asyncio.Event(), catch_up_in=0.2) < 0.5

    def test_a_batch_waits_no_longer_than_its_patience(self, clean: Context) -> None:
        assert 0.55 < _batch_after(clean, asyncio.Event(), catch_up_in=None) < 1.5
