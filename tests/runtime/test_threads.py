"""Work handed to threads: start-up work on a thread the process does not wait for."""

from __future__ import annotations

import asyncio
import threading

import pytest

from doxa.runtime.threads import on_daemon_thread


def _fail() -> None:
    raise ValueError("bad model")


class TestOnDaemonThread:
    def test_the_calls_result_comes_back(self) -> None:
        assert asyncio.run(on_daemon_thread("t", lambda: threading.current_thread().name)) == "t"

    def test_the_calls_exception_is_raised_to_the_caller(self) -> None:
        with pytest.raises(ValueError, match="bad model"):
            asyncio.run(on_daemon_thread("t", _fail))

    def test_a_cancelled_caller_stops_waiting_and_the_process_would_not_wait_either(
        self,
    ) -> None:
        release, running = threading.Event(), threading.Event()
        seen: list[threading.Thread] = []

        def slow() -> None:
            seen.append(threading.current_thread())
            running.set()
            release.wait(30)

        async def cancel_while_it_runs() -> None:
            task = asyncio.create_task(on_daemon_thread("slow", slow))
            await asyncio.to_thread(running.wait, 30)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(cancel_while_it_runs())  # returns, and closes its loop, while `slow` runs
        assert seen[0].is_alive() and seen[0].daemon
        release.set()
        seen[0].join(30)
        assert not seen[0].is_alive()  # it ended quietly with nobody waiting for it
