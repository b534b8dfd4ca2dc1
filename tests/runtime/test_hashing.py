from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from doxa.core.errors import TooManyRequests
from doxa.runtime.hashing import HashPool


class Gate:
    """Work for the pool that holds its thread until opened: the pool's state is then known."""

    def __init__(self) -> None:
        self.started, self.opened = threading.Event(), threading.Event()

    def __call__(self) -> str:
        self.started.set()
        self.opened.wait(5)
        return "done"


@pytest.fixture
def pool() -> Iterator[HashPool]:
    pool = HashPool(1, per_network=2, max_waiting=2)
    yield pool
    pool.close()


def _in_thread(call: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    results: list[object] = []

    def run() -> None:
        try:
            results.append(call())
        except TooManyRequests as exc:
            results.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, results


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)


@pytest.mark.timing
class TestHashPool:
    def test_a_network_past_its_share_is_refused_at_once(self, pool: HashPool) -> None:
        gate = Gate()
        running, _ = _in_thread(lambda: pool.run(gate, network="a"))
        assert gate.started.wait(5)
        waiting, results = _in_thread(lambda: pool.run(lambda: "late", network="a"))
        _until(lambda: pool._waiting_count == 1)
        started = time.monotonic()
        with pytest.raises(TooManyRequests) as refused:
            pool.check("a")
        assert refused.value.retry_after == 1 and time.monotonic() - started < 0.1
        pool.check("b")  # another network still has a place
        gate.opened.set()
        running.join()
        waiting.join()
        assert results == ["late"]

    def test_a_freed_thread_goes_to_the_network_that_hashed_least(self, pool: HashPool) -> None:
        for _ in range(3):
            pool.run(lambda: None, network="heavy")
        gate, order = Gate(), []
        running, _ = _in_thread(lambda: pool.run(gate, network="heavy"))
        assert gate.started.wait(5)
        heavy, _ = _in_thread(lambda: pool.run(lambda: order.append("heavy"), network="heavy"))
        _until(lambda: pool._waiting_count == 1)
        light, _ = _in_thread(lambda: pool.run(lambda: order.append("light"), network="light"))
        _until(lambda: pool._waiting_count == 2)
        gate.opened.set()
        for thread in (running, heavy, light):
            thread.join()
        assert order == ["light", "heavy"]

    def test_when_every_waiting_place_is_taken_a_lighter_network_takes_the_heaviests(
        self, pool: HashPool
    ) -> None:
        for _ in range(3):
            pool.run(lambda: None, network="heavy")
        gate = Gate()
        running, _ = _in_thread(lambda: pool.run(gate, network="x"))
        assert gate.started.wait(5)
        heavy, evicted = _in_thread(lambda: pool.run(lambda: "heavy", network="heavy"))
        other, _ = _in_thread(lambda: pool.run(lambda: "other", network="other"))
        _until(lambda: pool._waiting_count == 2)
        light, results = _in_thread(lambda: pool.run(lambda: "light", network="light"))
        heavy.join(5)
        assert isinstance(evicted[0], TooManyRequests)
        gate.opened.set()
        for thread in (running, other, light):
            thread.join()
        assert results == ["light"]

    def test_runs_the_call_and_gives_its_result(self) -> None:
        pool = HashPool(1)
        assert pool.run(lambda: 42) == 42
        pool.close()
