"""Work nobody waits on gives way to work somebody does.

The edges count the requests they are answering (a webhook post once its whole body is in,
until it is committed; an SMTP message until its 250); background work (processing stored
events, classifying new tickets) waits for a moment with none in flight before each step, at
most `patience` seconds.
A burst is then answered at the pace of accepting alone and processed right after it, and a
flood that never pauses still gets a step every `patience` seconds. The worker processes run
at nice 19 and so give the edges the CPU already, but the database work they ask for does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from doxa.runtime.loops import wait_at_most

PATIENCE_SECONDS = 1.0


class Pacer:
    """Counts requests in flight on any thread (the SMTP listener has a loop of its own) and
    wakes the waiters, on their own loops, when none is left."""

    def __init__(self, patience: float = PATIENCE_SECONDS) -> None:
        self.patience = patience
        self.in_flight = 0
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        with self._lock:
            self.in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1
                woken = list(self._waiters) if not self.in_flight else []
            for loop, quiet in woken:
                loop.call_soon_threadsafe(quiet.set)

    async def quiet(self) -> None:
        """Return once no request is in flight, or after `patience` seconds."""
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            if not self.in_flight:
                return
            self._waiters.add(waiter)
        try:
            await wait_at_most(waiter[1], self.patience)
        finally:
            with self._lock:
                self._waiters.discard(waiter)
