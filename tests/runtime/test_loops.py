"""`wait_at_most`: the runners' wait for a kick, which a stop's cancellation always ends."""

from __future__ import annotations

import asyncio

from doxa.runtime.loops import wait_at_most


async def _cancelled_as_it_is_kicked() -> bool:
    """A runner waits; a send's end kicks it and the app's stop cancels it in the same turn of
    the loop (the outbox is kicked by every finished send)."""
    kick = asyncio.Event()
    runner = asyncio.create_task(wait_at_most(kick, 10))
    await asyncio.sleep(0)  # waiting
    kick.set()
    runner.cancel()
    try:
        await runner
    except asyncio.CancelledError:
        return True
    return False


class TestWaitAtMost:
    def test_a_cancel_that_comes_with_the_kick_is_not_lost(self) -> None:
        # asyncio.wait_for on Python 3.11 returned normally here: the runner went on after
        # stop() and the app's shutdown never ended.
        assert asyncio.run(_cancelled_as_it_is_kicked())

    def test_it_says_whether_the_event_came(self) -> None:
        async def both() -> tuple[bool, bool]:
            kicked = asyncio.Event()
            kicked.set()
            return await wait_at_most(kicked, 1), await wait_at_most(asyncio.Event(), 0.01)

        assert asyncio.run(both()) == (True, False)
