"""Blocking work handed from the event loop to threads, and tasks kept running beside it."""

from __future__ import annotations

import asyncio
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
