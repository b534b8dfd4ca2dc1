"""A periodic job runs every few seconds, and again at once while its batch comes back full."""

from __future__ import annotations

import asyncio
import time

import pytest

from doxa.runtime.periodic import Periodic

pytestmark = pytest.mark.timing  # gaps of a second against runs at once


def _runs(results: list[int], *, every: float, watch: float, batch: bool = True) -> list[float]:
    """When the job ran within `watch` seconds; it returns `results` in turn, then 0."""
    ran: list[float] = []

    def job() -> int:
        ran.append(time.monotonic())
        return results[len(ran) - 1] if len(ran) <= len(results) else 0

    async def main() -> None:
        more = (lambda done: done == 50) if batch else None
        periodic = Periodic("job", job, every=every, more=more)
        await periodic.start()
        await asyncio.sleep(watch)
        await periodic.stop()

    asyncio.run(main())
    return ran


class TestPeriodic:
    def test_a_full_batch_runs_the_job_again_at_once_and_a_short_one_waits(self) -> None:
        ran = _runs([50, 50, 3], every=1.0, watch=2.6)
        assert len(ran) == 4, ran  # at ~1 s three runs (full, full, short), at ~2 s one
        assert ran[2] - ran[0] < 0.5  # had each waited, 2 s
        assert ran[3] - ran[2] > 0.9

    def test_a_job_without_batches_waits_its_period_after_every_run(self) -> None:
        ran = _runs([50, 50], every=0.5, watch=1.3, batch=False)
        assert len(ran) == 2 and ran[1] - ran[0] > 0.4
