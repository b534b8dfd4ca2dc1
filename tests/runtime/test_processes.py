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
from doxa.runtime.processes import process_in_worker, read_in_worker, worker_processes
from tests.runtime.worker_calls import die, fail, pid_after, ready

# What a process has imported of the classifier's libraries (0.8 s of scikit-learn and SciPy).
HEAVY_PROBE = (
    "sorted({m.split('.')[0] for m in __import__('sys').modules"
    " if m.split('.')[0] in ('sklearn', 'scipy', 'joblib')})"
)


@pytest.fixture(scope="class")
def pool() -> Iterator[WorkerPool]:
    """One process for the class: a spawned one imports for seconds, and every test leaves the
    pool serving (a process it lost is replaced), so each may run alone or after any other."""
    workers = WorkerPool(1, ready)
    yield workers
    workers.shutdown()


@pytest.fixture
def fresh_pool() -> Iterator[WorkerPool]:
    """A pool of its own, for a test that shuts it down."""
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


def _stops_at_once(workers: WorkerPool) -> None:
    processes = [worker.process for worker in workers._workers]
    started = time.monotonic()
    workers.shutdown()
    assert time.monotonic() - started < 0.5
    assert not any(process.is_alive() for process in processes)


class TestShutdown:
    @pytest.mark.timing  # a bound on the time to stop
    def test_a_pool_whose_processes_are_still_starting_stops_at_once(self) -> None:
        _stops_at_once(WorkerPool(2, time.sleep, 60))  # each process's start-up takes a minute

    @pytest.mark.timing  # a bound on the time to stop
    def test_a_pool_of_idle_processes_stops_at_once(self) -> None:
        workers = WorkerPool(1, ready)
        workers.run(pid_after, 0, timeout=60)  # started, and idle
        _stops_at_once(workers)

    @pytest.mark.timing  # a bound on the time to stop
    def test_a_busy_process_is_killed_and_its_call_fails(self, fresh_pool: WorkerPool) -> None:
        fresh_pool.run(pid_after, 0, timeout=60)
        failed: list[BaseException] = []

        def call() -> None:
            try:
                fresh_pool.run(pid_after, 600, timeout=600)
            except WorkerLost as exc:
                failed.append(exc)

        busy = threading.Thread(target=call)
        busy.start()
        time.sleep(0.3)  # the call is running
        started = time.monotonic()
        fresh_pool.shutdown()
        assert time.monotonic() - started < 0.5
        busy.join(10)
        assert len(failed) == 1

    def test_a_call_after_shutdown_fails(self, fresh_pool: WorkerPool) -> None:
        fresh_pool.shutdown()
        with pytest.raises(WorkerLost, match="shut down"):
            fresh_pool.run(pid_after, 0, timeout=60)


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

    def test_one_that_only_parses_imports_no_scikit_learn(self, clean: Context) -> None:
        """SQLite's placement: the worker processes load and parse, the server classifies."""
        workers = worker_processes(1, clean.settings, build_pipeline)
        try:
            assert workers.run(read_in_worker, 1, timeout=60) is None  # no such event
            loaded = workers.run(eval, HEAVY_PROBE)
        finally:
            workers.shutdown()
        assert loaded == []
