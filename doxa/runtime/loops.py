"""Event loops of their own, and the one way a call crosses from another thread onto a loop.

The SMTP listener runs on a loop in a thread of its own (measured: on the app's loop its
callbacks queued ahead of every HTTP request, and the API's latency grew tenfold); what it
accepts goes back to the intake worker on the app's loop through a `ToLoop` bridge.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Generic, ParamSpec

import anyio

P = ParamSpec("P")
ExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]


async def wait_at_most(event: asyncio.Event, seconds: float) -> bool:
    """Wait until `event` is set, at most `seconds`; whether it was set.

    Not `asyncio.wait_for`: on Python 3.11 it can swallow a cancellation that arrives as the
    event is set (CPython gh-86296), and a runner whose loop waits that way goes on after its
    `stop()` cancelled it, holding the app's shutdown forever (seen: the outbox runner, kicked
    by every finished send, while 10,000 mails were sent back to retry)."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


class ToLoop(Generic[P]):
    """`call`, made callable from any thread: each call is scheduled on the loop it is bound to
    (the caller does not wait for it). Bound by `LoopThread.start` to the loop that starts it."""

    def __init__(self, call: Callable[P, object]) -> None:
        self.call = call
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> None:
        loop = self._loop
        if loop is None:
            raise RuntimeError(f"{self.call!r} is called across loops before its loop is bound")
        if kwargs:
            loop.call_soon_threadsafe(lambda: self.call(*args, **kwargs))
        else:
            loop.call_soon_threadsafe(self.call, *args)


class LoopThread:
    """An event loop of its own, run in a named daemon thread between `start` and `stop`.

    `start(serve)` runs `serve()` on the new loop until it returns (binding a server, say) and
    re-raises its failure in the caller; the loop then runs until `stop(closing)`, which first
    runs `closing()` on it (letting work under way finish).
    """

    def __init__(self, name: str, *, on_error: ExceptionHandler | None = None) -> None:
        self.name, self.on_error = name, on_error
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    async def start(
        self, serve: Callable[[], Awaitable[object]], *, back: Iterable[ToLoop[Any]] = ()
    ) -> None:
        """Start the loop with `serve`; each bridge in `back` then calls onto the caller's loop."""
        for bridge in back:
            bridge.bind(asyncio.get_running_loop())
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(serve, ready), name=self.name, daemon=True
        )
        self._thread.start()
        await anyio.to_thread.run_sync(ready.wait)
        if self._failure is not None:
            raise self._failure

    def _run(self, serve: Callable[[], Awaitable[object]], ready: threading.Event) -> None:
        loop = self.loop = asyncio.new_event_loop()
        if self.on_error is not None:
            loop.set_exception_handler(self.on_error)
        try:
            loop.run_until_complete(serve())
        except BaseException as exc:  # reported to start(), e.g. the port is taken
            self._failure = exc
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def stop(self, closing: Callable[[], Awaitable[object]] | None = None) -> None:
        """Run `closing()` on the loop and wait for it, then stop the loop and end the thread."""
        loop, thread = self.loop, self._thread
        if loop is None or thread is None or loop.is_closed():
            return
        if closing is not None:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_awaited(closing), loop))
        loop.call_soon_threadsafe(loop.stop)
        await anyio.to_thread.run_sync(thread.join, 10)


async def _awaited(call: Callable[[], Awaitable[object]]) -> object:
    return await call()
