"""What the WorkerPool tests run in a worker process: a module of its own, importing nothing
heavy, since each spawned process imports it (the test module's imports took seconds there)."""

from __future__ import annotations

import os
import time


def ready() -> None:
    """The worker processes' start-up in these tests: nothing to open."""


def pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def fail() -> None:
    raise ValueError("bad input")


def die() -> None:
    os._exit(3)
