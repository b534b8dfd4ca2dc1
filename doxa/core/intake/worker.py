"""Background processing of accepted intake events: a bounded queue plus a recovery sweep.

Edges commit the raw input, answer the sender, then hand the event id here. Work takes ids,
opens its own sessions and is idempotent, so the start-up sweep can safely pick up events a
crash left behind.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import anyio
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from doxa.core.db import recycle_if_large, transaction
from doxa.core.enums import IntakeStatus
from doxa.core.errors import DomainError, Rejected
from doxa.core.intake.inbound import InboundMessage
from doxa.core.intake.outcomes import Outcome
from doxa.core.intake.pipeline import Pipeline
from doxa.core.pacing import Pacer

log = logging.getLogger(__name__)
RETRY_CAP_SECONDS = 30.0
BATCH_EVENTS = 32  # events taken from the queue at once, when that many wait
BATCH_EVENT_BYTES = 256 * 1024  # a larger event is processed alone, with its own deadline
# A batch of small events takes well under a second; one that takes this long holds something
# slow, and its events run alone, each with PROCESSING_TIMEOUT_SECONDS.
BATCH_DEADLINE_SECONDS = 10.0


class DatabaseUnavailable(Exception):
    """The event could not be processed because the database went away; retry it later."""


class WorkerLost(Exception):
    """The process working on the event ended before it answered (killed, out of memory)."""


class ProcessingTimeout(WorkerLost):
    """The event ran past PROCESSING_TIMEOUT_SECONDS; the process working on it was replaced."""

    reason = "timeout"


Reader = Callable[[int], InboundMessage | None]


def read_event(sessions: sessionmaker[Session], pipeline: Pipeline,
               event_id: int) -> InboundMessage | None:  # fmt: skip
    """The event's raw input, loaded and normalized; None when it is processed already."""
    with transaction(sessions) as db:
        raw = pipeline.load(db, event_id)
        recycle_if_large(db, len(raw.raw) if raw else 0)
    return None if raw is None else pipeline.normalize(raw)


def process_event(sessions: sessionmaker[Session], pipeline: Pipeline, event_id: int, *,
                  read: Reader | None = None) -> IntakeStatus | None:  # fmt: skip
    """Run one event through the pipeline; a failure is recorded on the event, never raised.

    Input that can never become a message (`Rejected`) is `rejected`, final; anything else
    that goes wrong is `failed`, for a retry.

    `read` loads and normalizes the event (here by default; the composition root may do it in
    a worker process, so the raw message never enters this one). Only a lost database raises
    (DatabaseUnavailable): the event stays `received` for a retry.
    """
    try:
        msg = read(event_id) if read else read_event(sessions, pipeline, event_id)
        if msg is None:
            return None  # processed already, or not ours
        with transaction(sessions) as db:
            event = pipeline.apply(db, event_id, msg)
            recycle_if_large(db, sum(a.size for a in msg.attachments))
            if event is None:
                return None
            outcome = Outcome.of(event)
        outcome.log()  # after the commit
        return outcome.status
    except (OperationalError, InterfaceError) as lost:
        raise DatabaseUnavailable(str(lost)) from lost
    except Rejected as never:  # input that no retry can mend: kept, marked, not retried
        try:
            with transaction(sessions) as db:
                rejected = pipeline.reject(db, event_id, never)
                final = None if rejected is None else Outcome.of(rejected)
        except (OperationalError, InterfaceError) as lost:
            raise DatabaseUnavailable(str(lost)) from never
        if final is not None:
            final.log(logging.WARNING)
        return IntakeStatus.REJECTED
    except Exception as exc:
        return _record_failure(sessions, pipeline, event_id, exc)


@dataclass(frozen=True, slots=True)
class Batch:
    """What `process_batch` did: outcomes by event id, and the ids it left to be run alone."""

    done: dict[int, IntakeStatus]
    left: list[int]


def process_batch(sessions: sessionmaker[Session], pipeline: Pipeline,
                  event_ids: list[int]) -> Batch:  # fmt: skip
    """Small events together: one query loads them, one UPDATE claims them and one transaction
    (one commit, so one disk flush) stores them all, where each event alone took two
    transactions and its own round trips.

    Nothing is recorded as failed here: an event that cannot be read, or any error while
    storing (which rolls back the whole batch), leaves its events to `process_event`, each
    alone, so a failure stays with the event that caused it. Only a lost database raises.
    """
    try:
        with transaction(sessions) as db:
            raws = pipeline.load_small(db, event_ids, max_bytes=BATCH_EVENT_BYTES)
        loaded = {raw.id for raw in raws}
        left = [event_id for event_id in event_ids if event_id not in loaded]
        messages = []
        for raw in raws:
            try:
                messages.append((raw.id, pipeline.normalize(raw)))
            except Exception:  # run alone, it is rejected or failed with its reason
                left.append(raw.id)
        outcomes = []
        try:
            with transaction(sessions) as db:
                claimed = pipeline.claim(db, [event_id for event_id, _ in messages])
                for event_id, msg in messages:
                    if (event := claimed.get(event_id)) is not None:
                        outcomes.append(Outcome.of(pipeline.apply_claimed(db, event, msg)))
        except (OperationalError, InterfaceError):
            raise
        except Exception:
            log.warning("an intake batch failed; its %d events run one by one", len(messages))
            return Batch({}, left + [event_id for event_id, _ in messages])
    except (OperationalError, InterfaceError) as lost:
        raise DatabaseUnavailable(str(lost)) from lost
    for outcome in outcomes:
        outcome.log()
    return Batch({outcome.event_id: outcome.status for outcome in outcomes}, left)


def process_elsewhere(
    sessions: sessionmaker[Session],
    pipeline: Pipeline,
    run: Callable[[int], IntakeStatus | None],
    event_id: int,
) -> IntakeStatus | None:
    """`process_event` run by `run` in a worker process; when that process gives up on the event
    (PROCESSING_TIMEOUT_SECONDS, or it died), the failure is recorded from here."""
    try:
        return run(event_id)
    except WorkerLost as exc:
        return _record_failure(sessions, pipeline, event_id, exc)


def batch_elsewhere(run: Callable[[list[int]], Batch], event_ids: list[int]) -> Batch:
    """`process_batch` run by `run` in a worker process; a batch whose process gave up (its
    deadline, or it died) committed nothing, so its events run one by one, each with its own
    deadline."""
    try:
        return run(event_ids)
    except WorkerLost as exc:
        log.warning("an intake batch of %d events was lost (%s)", len(event_ids), exc)
        return Batch({}, list(event_ids))


def _record_failure(
    sessions: sessionmaker[Session], pipeline: Pipeline, event_id: int, exc: BaseException
) -> IntakeStatus:
    """Mark the event `failed` and log that outcome; an error that does not say itself what
    went wrong (not a domain error, not a lost worker) is logged with its traceback."""
    try:
        with transaction(sessions) as db:
            failed = pipeline.fail(db, event_id, exc, reason=getattr(exc, "reason", None))
            outcome = None if failed is None else Outcome.of(failed)
    except (OperationalError, InterfaceError) as lost:
        raise DatabaseUnavailable(str(lost)) from exc
    if outcome is None:  # another run recorded the event's outcome first
        log.warning("intake event %s failed after it was processed: %s", event_id, exc)
    elif isinstance(exc, DomainError | WorkerLost):  # said in the error: no traceback needed
        outcome.log(logging.WARNING)
    else:
        outcome.log(logging.ERROR, error=exc)
    return IntakeStatus.FAILED


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

    def __init__(self, sessions: sessionmaker[Session], pipeline: Pipeline, *,
                 concurrency: int = 2, sweep_every: float = 30.0,
                 after: Callable[[], None] | None = None,
                 process: Callable[[int], IntakeStatus | None] | None = None,
                 process_many: Callable[[list[int]], Batch] | None = None,
                 pacer: Pacer | None = None) -> None:  # fmt: skip
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
