"""The execution plan: what runs where, decided once from `Settings`, and the runtime built
from it.

Three places an intake event can be processed, chosen by the database and WORKER_PROCESSES:

- PostgreSQL with worker processes: whole events (load, parse, store) and the classification
  of new tickets run in the worker processes, so that CPU stays off the API's GIL (measured:
  the model's predictions were the GIL's biggest holder under mail load).
- SQLite with worker processes: they load and parse, and the server stores: writers in several
  processes would wait on SQLite's sleeping busy handler instead of our writer gate. Either
  way no raw message is loaded into the server process.
- No worker processes: everything on the intake worker's threads, in the server process.

Each callable is built whole here, metrics included, and handed to the object that runs it:
nothing is patched after it is built.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from doxa import metrics
from doxa.core.config import Settings
from doxa.core.context import Context
from doxa.core.enums import IntakeStatus
from doxa.core.intake.pipeline import Pipeline
from doxa.core.intake.processing import (
    BATCH_DEADLINE_SECONDS,
    Batch,
    batch_elsewhere,
    process_batch,
    process_elsewhere,
    process_event,
)
from doxa.core.notifications import service as notifications
from doxa.core.outbox.kinds import build_outbox
from doxa.core.routing.engine import FALLBACK_BATCH, route_overdue
from doxa.core.sla import sweep as sla_sweep
from doxa.core.teams.assignment import assign_waiting
from doxa.core.triage.classifying import Triage
from doxa.core.triage.training import Train, train_here
from doxa.core.webhooks import dispatch as webhook_dispatch
from doxa.runtime.fanout import EventFanout
from doxa.runtime.intake import IntakeWorker
from doxa.runtime.outbox import OutboxRunner
from doxa.runtime.pacing import Pacer
from doxa.runtime.periodic import Periodic
from doxa.runtime.pool import WorkerPool
from doxa.runtime.processes import (
    classify_in_worker,
    process_batch_in_worker,
    process_in_worker,
    read_in_worker,
    worker_processes,
)
from doxa.runtime.triage import TriageRunner

Process = Callable[[int], IntakeStatus | None]
ProcessMany = Callable[[list[int]], Batch]
PipelineBuilder = Callable[[Settings], Pipeline]


class Placement(enum.Enum):
    """Where an intake event is processed."""

    IN_PROCESS = "in the server process"
    PARSE_IN_WORKERS = "loaded and parsed in a worker process, stored by the server"
    WHOLE_IN_WORKERS = "in a worker process"


@dataclass(frozen=True, slots=True)
class Plan:
    settings: Settings
    worker_processes: int  # 0: none
    intake: Placement
    classify_in_workers: bool
    event_deadline: float  # PROCESSING_TIMEOUT_SECONDS, in its process, which is then replaced
    batch_deadline: float

    @classmethod
    def of(cls, settings: Settings) -> Plan:
        workers = settings.worker_processes
        if not workers:
            intake = Placement.IN_PROCESS
        elif settings.on_postgresql:
            intake = Placement.WHOLE_IN_WORKERS
        else:
            intake = Placement.PARSE_IN_WORKERS
        deadline = settings.processing_timeout_seconds
        return cls(
            settings,
            workers,
            intake,
            classify_in_workers=intake is Placement.WHOLE_IN_WORKERS,
            event_deadline=deadline,
            batch_deadline=min(deadline, BATCH_DEADLINE_SECONDS),
        )


def intake_calls(
    plan: Plan, sessions: sessionmaker[Session], pipeline: Pipeline, pool: WorkerPool | None
) -> tuple[Process, ProcessMany | None]:
    """How the intake worker processes one event, and small events together (one transaction
    for the batch; None: one by one), each timed and counted."""
    process: Process
    many: ProcessMany | None = None
    if plan.intake is Placement.IN_PROCESS or pool is None:
        process = functools.partial(process_event, sessions, pipeline)
        many = functools.partial(process_batch, sessions, pipeline)
    elif plan.intake is Placement.PARSE_IN_WORKERS:
        read = functools.partial(pool.run, read_in_worker, timeout=plan.event_deadline)
        process = functools.partial(process_event, sessions, pipeline, read=read)
    else:
        run = functools.partial(pool.run, process_in_worker, timeout=plan.event_deadline)
        process = functools.partial(process_elsewhere, sessions, pipeline, run)
        run_many = functools.partial(pool.run, process_batch_in_worker, timeout=plan.batch_deadline)
        many = functools.partial(batch_elsewhere, run_many)
    timed_many = metrics.timed_intake_batch(many) if many is not None else None
    return metrics.timed_intake(process), timed_many


def classify_call(plan: Plan, local: Triage, pool: WorkerPool | None) -> Callable[[], int]:
    """One classification batch, timed: in a worker process (which intake goes before), or
    this process's classifier."""
    if plan.classify_in_workers and pool is not None:
        return metrics.timed_classification(
            functools.partial(pool.run, classify_in_worker, background=True)
        )
    return metrics.timed_classification(local.run_batch)


def train_call(pool: WorkerPool | None) -> Train:
    """Retraining: in a worker process when there are some (no deadline, after intake)."""
    if pool is None:
        return train_here
    return functools.partial(pool.run, train_here, background=True)


def _dispatch_webhooks(sessions: sessionmaker[Session], kick: Callable[[], None]) -> int:
    queued = webhook_dispatch.run(sessions)
    if queued:
        kick()
    return queued


class Runtime:
    """Every process, loop, pool and runner behind the edges, started and stopped in
    dependency order. The edges (SMTP, webhooks, the API) are built on its `pipeline`,
    `worker` and `pacer`."""

    def __init__(self, plan: Plan, context: Context, build_pipeline: PipelineBuilder) -> None:
        settings = plan.settings
        self.plan, self.context = plan, context
        # `build_pipeline` is passed in: the runtime does not know the edges' normalizers, and
        # each worker process builds its own from the same function.
        self.processes = (
            worker_processes(plan.worker_processes, settings, build_pipeline)
            if plan.worker_processes
            else None
        )
        self.pipeline = build_pipeline(settings)
        process, many = intake_calls(plan, context.sessions, self.pipeline, self.processes)
        self.outbox = OutboxRunner(
            build_outbox(settings, context.sessions, webhook_outcome=metrics.webhook_delivery)
        )
        # Processing and classification wait for a moment when no post or message is being
        # answered (at most a second a step): measured, they cost the edges' p99 15-20 ms.
        self.pacer = Pacer()
        self.worker = IntakeWorker(
            context.sessions,
            self.pipeline,
            after=self._processed,
            process=process,
            process_many=many,
            pacer=self.pacer,
        )
        # Classification also waits for intake to catch up (at most a second a batch): they
        # share the worker processes, and new mail becoming tickets goes first.
        local = Triage(settings, context.sessions)
        # Work a clock starts (routing a late classification, the team queues, the SLA sweep);
        # each job: Periodic(name, a core step bound to context.sessions, every=seconds).
        self.periodic: list[Periodic] = [
            Periodic(
                "routing",
                functools.partial(
                    route_overdue,
                    context.sessions,
                    after=timedelta(seconds=settings.routing_fallback_seconds),
                ),
                every=2,
                pacer=self.pacer,
                more=lambda routed: routed == FALLBACK_BATCH,
            ),
            Periodic(
                "team-queues",
                functools.partial(assign_waiting, context.sessions),
                every=1,
                pacer=self.pacer,
            ),
            Periodic(
                "sla-sweep",
                functools.partial(sla_sweep.run, context.sessions),
                every=10,
                pacer=self.pacer,
            ),
            Periodic("notifications", self._notify, every=1, pacer=self.pacer),
            # Events to webhook deliveries; the outbox is kicked when some were queued.
            Periodic(
                "webhook-dispatch",
                functools.partial(_dispatch_webhooks, context.sessions, self.outbox.kick),
                every=1,
                pacer=self.pacer,
            ),
        ]
        self.triage = TriageRunner(
            settings,
            context.sessions,
            train=train_call(self.processes),
            local=local,
            classify=classify_call(plan, local, self.processes),
            pacer=self.pacer,
            intake_caught_up=self.worker.caught_up,
        )

        # The event streams' one poller for this process (SPEC: streams at most half of
        # HTTP_MAX_CONNECTIONS).
        self.fanout = EventFanout(
            context.sessions,
            total=max(1, settings.http_max_connections // 2),
            per_user=settings.event_streams_per_user,
            per_network=settings.event_streams_per_network,
            keepalive=settings.event_stream_keepalive_seconds,
        )

    def _notify(self) -> None:
        """Agents' mail notifications from the new events; the outbox is told of those queued."""
        settings = self.plan.settings
        queued = notifications.run(
            self.context.sessions,
            relay=settings.outbound_smtp_url is not None,
            window=timedelta(seconds=settings.notification_window_seconds),
        )
        if queued:
            self.outbox.kick()

    def _processed(self) -> None:
        """After an intake event: acknowledgments to send, maybe a new ticket to classify."""
        self.outbox.kick()
        self.triage.classify_soon()

    async def start(self) -> None:
        await self.triage.start()
        await self.outbox.start()
        for job in self.periodic:
            await job.start()
        await self.worker.start()
        await self.fanout.start()

    async def stop(self) -> None:
        """Finish what intake has taken (stop the edges first), then the rest."""
        await self.fanout.stop()
        await self.worker.stop()
        for job in self.periodic:
            await job.stop()
        await self.outbox.stop()
        await self.triage.stop()
        if self.processes is not None:
            self.processes.shutdown()
