"""Background work waits for a quiet moment at the edges, and never longer than its patience."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from doxa.runtime.pacing import Pacer

pytestmark = pytest.mark.timing


def _waited(pacer: Pacer) -> float:
    async def wait() -> float:
        started = time.monotonic()
        await pacer.quiet()
        return time.monotonic() - started

    return asyncio.run(wait())


def test_nothing_in_flight_means_no_wait() -> None:
    assert _waited(Pacer(patience=5)) < 0.1


def test_a_request_in_flight_on_another_thread_holds_the_work_until_it_is_answered() -> None:
    pacer = Pacer(patience=5)
    answered = threading.Event()

    def request() -> None:  # as the SMTP listener's loop does, on its own thread
        with pacer.serving():
            time.sleep(0.4)
        answered.set()

    threading.Thread(target=request).start()
    time.sleep(0.05)
    waited = _waited(pacer)
    assert answered.is_set() and 0.25 < waited < 2


def test_a_flood_that_never_pauses_waits_only_the_patience() -> None:
    pacer = Pacer(patience=0.3)
    with pacer.serving():
        assert 0.25 < _waited(pacer) < 2
    assert pacer.in_flight == 0
