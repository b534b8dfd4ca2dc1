"""The worker processes: a call past its deadline loses its process, and only that call fails."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest

from doxa.core.context import Context
from doxa.core.errors import ProcessingTimeout, WorkerLost
from doxa.gateway.pipeline import build_pipeline
from doxa.runtime.pool import WorkerPool
from doxa.runtime.processes import process_in_worker, worker_processes
from tests.runtime.worker_calls import die, fail, pid_after, ready


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    workers = WorkerPool(1, ready)
    yield workers
    workers.shutdown()


class TestWorkerPool:
    def test_a_call_returns_its_result_from_another_process(self, pool: WorkerPool) -> None:
        assert pool.run(pid_after, 0, timeout=30) != os.getpid()

    def test_an_exception_in_the_call_is_raised_here_and_the_process_is_kept(
        self, pool: WorkerPool
    ) -> None:
        first = pool.run(pid_after, 0, timeout=30)
        with pytest.raises(ValueError, match="bad input"):
            pool.run(fail, timeout=30)
        assert pool.run(pid_after, 0, timeout=30) == first

    @pytest.mark.timing  # a 0.5 s deadline, and a bound on the time to stop the call
    def test_a_call_past_its_deadline_is_stopped_and_the_next_runs_in_a_new_process(
        self, pool: WorkerPool
    ) -> None:
        first = pool.run(pid_after, 0, timeout=30)
        started = time.monotonic()
        with pytest.raises(ProcessingTimeout) as timed_out:
            pool.run(pid_after, 600, timeout=0.5)
        assert timed_out.value.reason == "timeout"
        assert time.monotonic() - started < 10
        assert pool.run(pid_after, 0, timeout=60) != first

    def test_a_process_that_dies_fails_only_its_call(self, pool: WorkerPool) -> None:
        with pytest.raises(WorkerLost, match="exit code 3"):
            pool.run(die, timeout=30)
        assert pool.run(pid_after, 0, timeout=60) > 0

    def test_a_background_call_runs_without_a_deadline(self, pool: WorkerPool) -> None:
        assert pool.run(pid_after, 0.2, background=True) != os.getpid()

    @pytest.mark.timing  # the order is staged with sleeps of 0.1-1 s
    def test_a_background_call_lets_a_waiting_intake_call_go_first(self, pool: WorkerPool) -> None:
        """One process, busy: the classification call that asked first still runs second."""
        finished: list[str] = []

        def call(name: str, seconds: float, background: bool) -> None:
            pool.run(pid_after, seconds, timeout=60, background=background)
            finished.append(name)

        busy = threading.Thread(target=call, args=("busy", 1.0, False))
        busy.start()
        time.sleep(0.3)  # the process is taken
        background = threading.Thread(target=call, args=("classify", 0, True))
        background.start()
        time.sleep(0.1)
        intake = threading.Thread(target=call, args=("intake", 0, False))
        intake.start()
        for thread in (busy, background, intake):
            thread.join(60)
        assert finished == ["busy", "intake", "classify"]


class TestWhatAWorkerProcessImports:
    def test_it_runs_intake_without_the_web_app(self, clean: Context) -> None:
        workers = worker_processes(1, clean.settings, build_pipeline)
        try:
            assert workers.run(process_in_worker, 1, timeout=60) is None  # no such event
            # `eval` is pickled by name: the test module is not imported there.
            loaded = workers.run(
                eval, "[m for m in ('fastapi', 'doxa.main') if m in __import__('sys').modules]"
            )
        finally:
            workers.shutdown()
        assert loaded == []
