"""The outbox runner: where the outbox's threads are, and when it looks for work.

Claims run on a thread of their own, so a claim never waits behind a hung send; sends run on
`senders` threads, and the runner claims only as many items as it has idle senders. With at
most `queue.PER_DESTINATION` items in flight to one destination (the claim sees to that), a
dead destination takes two senders and the others keep sending (tests/runtime/test_outbox.py:
a password reset goes within 2 s with 10,000 mails waiting for a domain that never answers).
It runs after a kick (a reply, an acknowledgment, a sign-up committed) and every `every`
seconds for retries that fall due.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import Future, ThreadPoolExecutor

from doxa.core.outbox.sender import Outbox
from doxa.runtime.loops import wait_at_most

log = logging.getLogger(__name__)
SENDERS = 8


class OutboxRunner:
    """Sends outbox items soon after a kick, and every `every` seconds for retries."""

    def __init__(self, outbox: Outbox | None, *, senders: int = SENDERS, every: float = 5.0):
        self.outbox, self.senders, self.every = outbox, senders, every
        self._kick = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[Future[bool]] = set()
        self._claimer = ThreadPoolExecutor(1, thread_name_prefix="outbox-claim")
        self._sending = ThreadPoolExecutor(senders, thread_name_prefix="outbox-send")

    def kick(self) -> None:
        """Ask for a run soon; safe from any thread."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: we are stopping
                loop.call_soon_threadsafe(self._kick.set)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        # Made afresh at each start: an app's lifespan may run again (stop shut the last ones).
        self._claimer = ThreadPoolExecutor(1, thread_name_prefix="outbox-claim")
        self._sending = ThreadPoolExecutor(self.senders, thread_name_prefix="outbox-send")
        if self.outbox is not None:
            self._kick.set()  # what an earlier run left queued
            self._task = asyncio.create_task(self._run(self.outbox))

    async def stop(self, *, grace: float = 5.0) -> None:
        """Stop claiming; give the sends in flight `grace` seconds. One still going then is
        left to its lease: another run sends it again (at least once, never lost)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._in_flight:
            waiting = [asyncio.wrap_future(f) for f in self._in_flight]
            await asyncio.wait(waiting, timeout=grace)
        self._loop = None
        self._claimer.shutdown(wait=False, cancel_futures=True)
        self._sending.shutdown(wait=False, cancel_futures=True)

    async def _run(self, outbox: Outbox) -> None:
        while True:
            await wait_at_most(self._kick, self.every)
            self._kick.clear()
            idle = self.senders - len(self._in_flight)
            if idle <= 0:
                continue  # a send's end kicks again
            try:
                claimed = await asyncio.wrap_future(self._claimer.submit(outbox.claim, idle))
            except Exception:
                log.exception("outbox claim failed; trying again later")
                continue
            for item_id in claimed:
                future = self._sending.submit(outbox.send, item_id)
                self._in_flight.add(future)
                future.add_done_callback(self._sent)
            if len(claimed) == idle:
                self._kick.set()  # there may be more due

    def _sent(self, future: Future[bool]) -> None:
        """On the sender's thread: free the slot, and look for more work."""
        loop = self._loop
        if loop is None:
            self._in_flight.discard(future)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._finished, future)

    def _finished(self, future: Future[bool]) -> None:
        self._in_flight.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.error("outbox send failed unexpectedly", exc_info=future.exception())
        self._kick.set()
