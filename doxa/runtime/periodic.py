"""Periodic jobs: a synchronous domain step (`core`) run on a thread of its own every few
seconds. Used for the work a clock starts: routing a ticket whose
classification is late, assigning the oldest waiting ticket when a member has room, and the
service-level sweep. Each job is idempotent and shared safely by several processes (its
own claims), so a second `doxa serve` only makes it run more often."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from doxa.runtime.pacing import Pacer

log = logging.getLogger(__name__)


class Periodic:
    """Runs `job` every `every` seconds, never two runs at once; at once again while `more`
    says of its result that work is left (a full batch: a backlog drains at full speed)."""

    def __init__(
        self,
        name: str,
        job: Callable[[], object],
        *,
        every: float,
        pacer: Pacer | None = None,
        more: Callable[[object], bool] | None = None,
    ) -> None:
        self.name, self.job, self.every, self.more = name, job, every, more
        # Each run waits for a moment with no post or message being answered (bounded): run
        # on a thread of the server, a job's Python holds the GIL the edges answer with.
        self.pacer = pacer
        self._task: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=name)

    async def start(self) -> None:
        # Made afresh at each start: an app's lifespan may run again, on another loop.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=self.name)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._thread.shutdown(wait=True, cancel_futures=True)

    async def _run(self) -> None:
        left = False
        while True:
            if not left:
                await asyncio.sleep(self.every)
            if self.pacer is not None:
                await self.pacer.quiet()
            left = False
            try:
                result = await asyncio.wrap_future(self._thread.submit(self.job))
                left = self.more is not None and self.more(result)
            except Exception:
                log.exception("%s failed; trying again in %s s", self.name, self.every)
