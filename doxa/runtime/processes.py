"""Worker processes beside the server: intake, classification and retraining off its GIL, in a
`WorkerPool` (`doxa.runtime.pool`: each call with a deadline); and what those processes run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from doxa import logs
from doxa.core.config import Settings
from doxa.core.context import Context
from doxa.core.enums import IntakeStatus
from doxa.core.intake.inbound import InboundMessage
from doxa.core.intake.pipeline import Pipeline
from doxa.core.intake.processing import (
    Batch,
    process_batch,
    process_event,
    read_event,
)
from doxa.runtime.pool import WorkerPool

if TYPE_CHECKING:
    from doxa.core.triage.classifying import Triage

log = logging.getLogger(__name__)


def worker_processes(
    size: int, settings: Settings, build_pipeline: Callable[[Settings], Pipeline]
) -> WorkerPool:
    """`size` processes for intake, classification and retraining, each with its own database
    pool and pipeline.

    `build_pipeline` is pickled by reference: each process imports its module, which must not
    import the web app (`doxa.gateway.pipeline`)."""
    return WorkerPool(size, _start_worker_process, settings, build_pipeline)


@dataclass
class _WorkerProcess:
    context: Context
    pipeline: Pipeline
    triage: Triage | None  # None: classification is off (AI_PROVIDER=none)


_WORKER: _WorkerProcess | None = None


def _start_worker_process(
    settings: Settings, build_pipeline: Callable[[Settings], Pipeline]
) -> None:
    """In each worker process: yield the CPU to the server, and open its own database pool."""
    global _WORKER
    # The lowest priority: people wait on the server and the database, not on background intake.
    os.nice(19)
    logs.configure(settings.log_format)  # a spawned process starts without the server's setup
    context = Context.build(settings)
    triage = None
    if settings.ai_provider != "none":
        # Only here: the classifier's imports (scikit-learn, SciPy) took 1.5-3 s of each
        # process's start-up, also where it only ever does intake.
        from doxa.core.triage.classifying import Triage

        triage = Triage(settings, context.sessions)
    _WORKER = _WorkerProcess(context, build_pipeline(settings), triage)


def _worker() -> _WorkerProcess:
    if _WORKER is None:
        raise RuntimeError("worker process not initialised")
    return _WORKER


# What the worker processes run, each with that process's own context.


def process_in_worker(event_id: int) -> IntakeStatus | None:
    worker = _worker()
    return process_event(worker.context.sessions, worker.pipeline, event_id)


def process_batch_in_worker(event_ids: list[int]) -> Batch:
    worker = _worker()
    return process_batch(worker.context.sessions, worker.pipeline, event_ids)


def read_in_worker(event_id: int) -> InboundMessage | None:
    worker = _worker()
    return read_event(worker.context.sessions, worker.pipeline, event_id)


def classify_in_worker() -> int:
    triage = _worker().triage
    if triage is None:
        raise RuntimeError("classification is off (AI_PROVIDER=none)")
    return triage.run_batch()
