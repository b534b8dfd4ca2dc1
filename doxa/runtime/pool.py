"""A pool of worker processes, each call with a deadline.

`concurrent.futures.ProcessPoolExecutor` cannot stop one call: a message that parses for minutes
keeps its process, and with one process every later message waits behind it. Here each process
serves one call at a time over its own pipe; a call past its deadline has its process killed and
replaced, and only that call fails (`ProcessingTimeout`), so the rest flow on.

What DOXA runs in these processes is in `doxa.runtime.processes`; this module imports nothing
of DOXA but two exceptions, since each process imports it (and sklearn took seconds to import).
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TypeVar

from doxa.core.errors import ProcessingTimeout, WorkerLost

T = TypeVar("T")
_STARTED = "started"
SHUTDOWN_GRACE_SECONDS = 0.1  # for an idle process to end by itself before it is killed


@dataclass(slots=True, eq=False)  # compared (and hashed) by identity
class _Worker:
    process: BaseProcess
    pipe: Connection
    started: bool = False  # its start-up is done: a deadline counts only the call itself


class WorkerPool:
    """`size` spawned processes (not forked: the server has threads), one call at a time each."""

    def __init__(self, size: int, initializer: Callable[..., None], *initargs: object) -> None:
        self._context = mp.get_context("spawn")
        self._start_args = (initializer, initargs)
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()
        self._lock = threading.Lock()
        self._available = threading.Condition(self._lock)
        self._waiting = 0  # foreground calls waiting: background calls let them go first
        self._closed = False
        for _ in range(size):
            self._release(self._spawn())

    def _spawn(self) -> _Worker:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_serve, args=(child, *self._start_args), name="doxa-worker", daemon=True
        )
        _start_deaf_to_ctrl_c(process)
        child.close()
        worker = _Worker(process, parent)
        with self._lock:
            self._workers.add(worker)
        return worker

    def run(
        self,
        call: Callable[..., T],
        *args: object,
        timeout: float | None = None,
        background: bool = False,
    ) -> T:
        """`call(*args)` in a free worker process; past `timeout` seconds the process is replaced
        and `ProcessingTimeout` raised. The waiting thread holds no GIL.

        A `background` call (classification, retraining) takes a process only when no other
        call is waiting for one: under a flood, intake goes first.
        """
        worker = self._checkout(background)
        try:
            if not worker.started:
                worker.started = worker.pipe.recv() == _STARTED
            worker.pipe.send((call, args))
            if not worker.pipe.poll(timeout):
                raise ProcessingTimeout(
                    f"still running after {timeout:g} s; its process was replaced"
                )
            ok, value = worker.pipe.recv()
        except ProcessingTimeout:
            self._replace(worker)
            raise
        except (EOFError, OSError) as lost:
            worker.process.join(1)  # its exit code, once it is reaped
            code = worker.process.exitcode
            self._replace(worker)
            raise WorkerLost(
                f"the worker process ended during the call (exit code {code})"
            ) from lost
        self._release(worker)
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def _checkout(self, background: bool) -> _Worker:
        with self._available:
            waiting = 0 if background else 1
            self._waiting += waiting
            try:
                while True:
                    if self._closed:
                        raise WorkerLost("the worker processes are shut down")
                    if self._idle and not (background and self._waiting):
                        return self._idle.pop()
                    self._available.wait(1.0)
            finally:
                self._waiting -= waiting

    def _release(self, worker: _Worker) -> None:
        with self._available:
            self._idle.append(worker)
            self._available.notify_all()

    def _replace(self, worker: _Worker) -> None:
        _end(worker)
        with self._lock:
            self._workers.discard(worker)
            if self._closed:
                return
        self._release(self._spawn())

    def shutdown(self, grace: float = SHUTDOWN_GRACE_SECONDS) -> None:
        """Idle processes are told to end (their pipe closes) and killed if still there after
        `grace` seconds; busy ones are killed at once.

        An idle process holds no call, so ending it loses nothing; one spawned at start and
        still importing would otherwise keep the server waiting until its imports finish
        (measured: all of `doxa serve`'s 2.6 s stop, 10 s on a loaded machine)."""
        with self._lock:
            self._closed = True
            workers = list(self._workers)
        with self._available:
            idle, self._idle = self._idle, []
            self._available.notify_all()
        for worker in idle:
            worker.pipe.close()
        deadline = time.monotonic() + grace
        for worker in idle:
            worker.process.join(max(0.0, deadline - time.monotonic()))
        for worker in workers:
            if worker.process.is_alive():
                worker.process.kill()
        for worker in workers:
            _end(worker)


def _start_deaf_to_ctrl_c(process: BaseProcess) -> None:
    """Start a process that ignores SIGINT from its first instruction.

    Ctrl-C in a terminal reaches the whole process group; the server stops its workers itself,
    and a worker interrupted while it imports would print a traceback. An ignored signal stays
    ignored across exec (a blocked one does not: spawn clears the mask), but only the main
    thread may set it: a replacement started from another thread ignores SIGINT once `_serve`
    runs."""
    if threading.current_thread() is not threading.main_thread():
        process.start()
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        process.start()
    finally:
        signal.signal(signal.SIGINT, previous)


def _end(worker: _Worker) -> None:
    if worker.process.is_alive():
        worker.process.kill()
        worker.process.join(5)
    worker.pipe.close()


def _serve(
    pipe: Connection, initializer: Callable[..., None], initargs: tuple[object, ...]
) -> None:
    """A worker process's loop: one call in, its result (or its exception) out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when its workers end
    initializer(*initargs)
    try:
        pipe.send(_STARTED)
    except OSError:
        return  # shut down while starting
    while True:
        try:
            call, args = pipe.recv()
        except (EOFError, OSError):
            return  # the server is gone
        try:
            pipe.send((True, call(*args)))
        except BaseException as exc:
            try:
                pipe.send((False, exc))
            except Exception:  # an exception that does not pickle still reports its text
                pipe.send((False, RuntimeError(f"{type(exc).__name__}: {exc}")))
