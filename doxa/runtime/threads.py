"""Blocking work handed from the event loop to threads, and tasks kept running beside it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, TypeVarTuple

import anyio

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class Threads:
    """At most `limit` threads for one kind of blocking work; callers beyond it wait their turn
    on the loop (one thread keeps a committer's groups in order, for instance)."""

    def __init__(self, limit: int) -> None:
        self._limiter = anyio.CapacityLimiter(limit)

    async def run(self, call: Callable[[*Ts], T], *args: *Ts) -> T:
        return await anyio.to_thread.run_sync(call, *args, limiter=self._limiter)


async def on_thread(call: Callable[[*Ts], T], *args: *Ts) -> T:
    """`call(*args)` on a thread of the loop's default pool (shared with sync routes)."""
    return await anyio.to_thread.run_sync(call, *args)


async def on_daemon_thread(name: str, call: Callable[[], T]) -> T:
    """`call()` on a thread of its own, which a cancelled caller stops waiting for and the
    process does not wait for at exit.

    For start-up work that is safe to lose at any point (it commits at its end or not at all):
    the classifier's first load or seed training holds a pool thread for seconds, and a server
    stopped meanwhile (Ctrl-C) waited for it before it could exit."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not done.done():  # else the caller was cancelled
            outcome()

    def run() -> None:
        outcome: Callable[[], None]
        try:
            outcome = functools.partial(done.set_result, call())
        except Exception as exc:
            outcome = functools.partial(done.set_exception, exc)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, outcome)

    threading.Thread(target=run, name=name, daemon=True).start()
    return await done


class Background:
    """One coroutine at a time run beside the caller: `start` does nothing while the last one
    still runs, and the task is held here so that it is not collected while it runs."""

    def __init__(self) -> None:
        self.task: asyncio.Task[Any] | None = None

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def start(self, work: Callable[[], Coroutine[Any, Any, object]]) -> bool:
        """Start `work()` on the running loop unless the last one still runs; whether it started."""
        if self.running:
            return False
        self.task = asyncio.get_running_loop().create_task(work())
        return True
