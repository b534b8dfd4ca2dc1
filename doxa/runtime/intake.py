"""The intake worker: accepted event ids queued by size, processed on a few threads, and a
recovery sweep.

Edges commit the raw input, answer the sender, then submit the event id here (on the app's
loop). Each event goes to a thread of this process, which runs the plan's `process` there or
waits on a worker process for it (`doxa.runtime.plan`); the work is idempotent, so the sweep
can safely pick up events a crash left behind.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from datetime import timedelta

import anyio
from sqlalchemy.orm import Session, sessionmaker

from doxa.core.db import transaction
from doxa.core.enums import IntakeStatus
from doxa.core.intake.pipeline import Pipeline
from doxa.core.intake.processing import (
    BATCH_EVENT_BYTES,
    Batch,
    DatabaseUnavailable,
    process_event,
)
from doxa.runtime.pacing import Pacer

log = logging.getLogger(__name__)
RETRY_CAP_SECONDS = 30.0
BATCH_EVENTS = 32  # events taken from the queue at once, when that many wait


class IntakeWorker:
    """Processes queued event ids on a few threads; sweeps for forgotten ones periodically.

    Events are queued by size. Small ones (up to BATCH_EVENT_BYTES) are served by all
    `concurrency` tasks; with `process_many`, those that wait together go as one batch (see
    `process_batch`), and what a batch leaves goes through `process`. Large ones go through
    `process`, one at a time on at most `concurrency - 1` tasks, so a small event always finds
    a thread (and a worker process) free: measured, eight hostile 5 MB messages held an
    ordinary one 3.7-5.5 s behind them in one FIFO queue (issue 19, item 11), since each takes
    0.3-1.5 s and they took both threads in turn.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        pipeline: Pipeline,
        *,
        concurrency: int = 2,
        sweep_every: float = 30.0,
        after: Callable[[], None] | None = None,
        process: Callable[[int], IntakeStatus | None] | None = None,
        process_many: Callable[[list[int]], Batch] | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        self.sessions, self.pipeline = sessions, pipeline
        # How one event is processed: here by default, or handed to a worker process.
        self.process = process or functools.partial(process_event, sessions, pipeline)
        self.process_many = process_many
        self.after = after  # told after each event, e.g. so the outbox sends acknowledgments
        self.pacer = pacer  # processing waits for a quiet moment at the edges (bounded)
        self.concurrency, self.sweep_every = concurrency, sweep_every
        self.large_slots = max(1, concurrency - 1)  # with one thread, nothing can be kept free
        self._small: asyncio.Queue[int] = asyncio.Queue()
        self._large: asyncio.Queue[int] = asyncio.Queue()
        self._queued: dict[int, int] = {}  # id -> size, until processed
        self.caught_up = asyncio.Event()  # set while no submitted event waits or is processed
        self.caught_up.set()
        self._tasks: list[asyncio.Task[None]] = []
        # Threads for processing, shared: large events, one per large task, hold at most
        # `large_slots` of them.
        self._limiter = anyio.CapacityLimiter(concurrency)
        self._retries: dict[int, int] = {}

    def submit(self, event_id: int, size: int) -> None:
        """Queue the event; `size` is its raw input's length in bytes (what the edge received,
        or `raw_size`), which decides its queue."""
        if event_id not in self._queued:
            self._queued[event_id] = size
            self.caught_up.clear()
            (self._large if size > BATCH_EVENT_BYTES else self._small).put_nowait(event_id)

    async def start(self) -> None:
        # A queue is bound to the first event loop that waits on it: new ones for this loop, with
        # what was submitted before (an app started again, as tests do, had its tasks die on
        # their first get() and its stop wait out the grace).
        waiting, self._queued = self._queued, {}
        self._small, self._large = asyncio.Queue(), asyncio.Queue()
        for event_id, size in waiting.items():
            self.submit(event_id, size)
        self._tasks = [asyncio.create_task(self._work_small()) for _ in range(self.concurrency)]
        self._tasks += [asyncio.create_task(self._work_large()) for _ in range(self.large_slots)]
        self._tasks.append(asyncio.create_task(self._sweep()))

    async def stop(self, grace: float = 10.0) -> None:
        """Finish what is queued (up to `grace` seconds), then stop; the sweep takes the rest."""
        try:
            await asyncio.wait_for(asyncio.gather(self._small.join(), self._large.join()), grace)
        except TimeoutError:
            log.warning("stopping with %d intake events queued", len(self._queued))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _work_small(self) -> None:
        while True:
            batch = [await self._small.get()]
            if self.pacer is not None:  # meanwhile more ids gather for the batch
                await self.pacer.quiet()
            while len(batch) < BATCH_EVENTS and self.process_many and not self._small.empty():
                batch.append(self._small.get_nowait())
            try:
                await self._run(batch)
            finally:
                self._done(self._small, batch)

    async def _work_large(self) -> None:
        while True:
            event_id = await self._large.get()
            if self.pacer is not None:
                await self.pacer.quiet()
            try:
                await self._run_one(event_id)
            finally:
                self._done(self._large, [event_id])

    def _done(self, queue: asyncio.Queue[int], event_ids: list[int]) -> None:
        for event_id in event_ids:
            self._queued.pop(event_id, None)
            queue.task_done()
        if not self._queued:
            self.caught_up.set()

    async def _run(self, batch: list[int]) -> None:
        alone = batch
        if len(batch) > 1 and self.process_many is not None:
            try:
                done = await anyio.to_thread.run_sync(
                    self.process_many, batch, limiter=self._limiter
                )
            except DatabaseUnavailable:
                for event_id in batch:
                    self._retry_later(event_id)
                return
            except Exception:
                log.exception("intake batch: unexpected worker error; its events run alone")
                done = Batch({}, batch)
            for event_id in done.done:
                self._retries.pop(event_id, None)
            if done.done and self.after is not None:
                self.after()
            alone = done.left
        # Side by side (as many as the limiter lets): one slow event left by a batch must not
        # hold back the others behind it.
        await asyncio.gather(*(self._run_one(event_id) for event_id in alone))

    async def _run_one(self, event_id: int) -> None:
        try:
            await anyio.to_thread.run_sync(self.process, event_id, limiter=self._limiter)
            self._retries.pop(event_id, None)
            if self.after is not None:
                self.after()
        except DatabaseUnavailable:
            self._retry_later(event_id)
        except Exception:
            log.exception("intake event %s: unexpected worker error", event_id)

    def _retry_later(self, event_id: int) -> None:
        attempt = self._retries.get(event_id, 0) + 1
        self._retries[event_id] = attempt
        delay = min(RETRY_CAP_SECONDS, 0.25 * 2**attempt)
        log.warning("database unavailable for intake event %s; retrying in %.1fs", event_id, delay)
        size = self._queued.get(event_id, BATCH_EVENT_BYTES + 1)  # unknown: as a large one
        asyncio.get_running_loop().call_later(delay, self.submit, event_id, size)

    async def _sweep(self) -> None:
        grace = timedelta(seconds=0)  # the first sweep takes everything a crash left
        while True:
            try:
                for event_id, size in await anyio.to_thread.run_sync(self._waiting, grace):
                    self.submit(event_id, size)
            except Exception:
                log.exception("intake sweep failed; retrying later")
            grace = timedelta(seconds=self.sweep_every)
            await asyncio.sleep(self.sweep_every)

    def _waiting(self, grace: timedelta) -> list[tuple[int, int]]:
        with transaction(self.sessions) as db:
            return self.pipeline.waiting(db, older_than=grace)
