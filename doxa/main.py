"""The composition root: builds the app from settings and starts the listeners in its lifespan."""

from __future__ import annotations

import functools
import logging
import multiprocessing as mp
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

from fastapi import APIRouter, FastAPI

from doxa import metrics
from doxa.api import docs, problems
from doxa.api.middleware import BodyLimit, RequestId, RequestMetrics
from doxa.api.routes import attachments, auth, classifier, health, intake, tickets, users
from doxa.api.routes import metrics as metrics_route
from doxa.core.config import Settings
from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.enums import Channel, IntakeStatus
from doxa.core.errors import InvalidInput
from doxa.core.intake.inbound import InboundMessage
from doxa.core.intake.pipeline import Pipeline
from doxa.core.intake.worker import IntakeWorker, process_event, read_event
from doxa.core.outbound import Outbox, OutboxRunner
from doxa.core.triage.runner import Triage, TriageRunner
from doxa.core.users import service as user_service
from doxa.gateway.parsing import email_normalizer
from doxa.gateway.smtp import IntakeHandler, SmtpListener

log = logging.getLogger(__name__)
PARSE_TIMEOUT_SECONDS = 120  # a worker process busier than this with one message gives up on it
T = TypeVar("T")

DESCRIPTION = """Support tickets from email and web forms, classified by a local model.

Log in with **Authorize** (email as `username`); clients see only their own tickets."""


class Runtime:
    """The long-running parts the lifespan starts and stops, in dependency order."""

    def __init__(self, settings: Settings, context: Context) -> None:
        self.settings, self.context = settings, context
        self.parsers = _worker_processes(settings)
        # On PostgreSQL the worker processes take whole events (load, parse, store) and classify
        # new tickets, so that CPU stays off the API's GIL (measured: the model's predictions
        # were the GIL's biggest holder under mail load). On SQLite they load and parse, and
        # the server stores: writers from several processes would wait on SQLite's sleeping
        # busy handler instead of our writer gate. Either way no raw message is loaded here.
        pool = self.parsers
        self.pipeline = build_pipeline(settings)
        process: Callable[[int], IntakeStatus | None] | None = None
        classify: Callable[[], int] | None = None
        if pool is not None and settings.on_postgresql:
            process = functools.partial(_in_worker, pool, _process_event)
            classify = functools.partial(_in_worker, pool, _classify_pending)
        elif pool is not None:
            read = functools.partial(_in_worker, pool, _read_event, timeout=PARSE_TIMEOUT_SECONDS)
            process = functools.partial(process_event, context.sessions, self.pipeline, read=read)
        self.outbox = OutboxRunner(Outbox(settings, context.sessions))
        self.triage = TriageRunner(settings, context.sessions, executor=pool, classify=classify)
        self.worker = IntakeWorker(
            context.sessions, self.pipeline, after=self._processed, process=process
        )
        # Timed and counted here, around the work, so the domain's services stay free of metrics.
        self.worker.process = metrics.timed_intake(self.worker.process)
        self.triage.classify = metrics.timed_classification(self.triage.classify)
        self.listener: SmtpListener | None = None
        if settings.smtp_enabled:
            handler = IntakeHandler(settings, context.sessions, self.pipeline, self.worker)
            self.listener = SmtpListener(settings, handler)

    def _processed(self) -> None:
        """After an intake event: acknowledgments to send, maybe a new ticket to classify."""
        self.outbox.kick()
        self.triage.classify_soon()

    async def start(self) -> None:
        bootstrap(self.context, self.settings)
        await self.triage.start()
        await self.outbox.start()
        await self.worker.start()
        if self.listener is not None:
            await self.listener.start()

    async def stop(self) -> None:
        if self.listener is not None:  # first stop taking mail, then finish what was taken
            await self.listener.stop()
        await self.worker.stop()
        await self.outbox.stop()
        await self.triage.stop()
        if self.parsers is not None:
            self.parsers.shutdown(cancel_futures=True)


def create_app(settings: Settings, *, context: Context | None = None) -> FastAPI:
    owns_context = context is None
    context = context or Context.build(settings)
    runtime = Runtime(settings, context)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()
            if owns_context:  # an injected context (tests, several apps) is its owner's to close
                context.close()

    app = FastAPI(
        title="DOXA",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.context = context
    app.state.pipeline = runtime.pipeline
    app.state.intake_worker = runtime.worker
    app.state.outbox = runtime.outbox
    app.state.triage = runtime.triage
    app.state.smtp_server = runtime.listener
    api = APIRouter(prefix="/api/v1", responses=problems.RESPONSES)
    for module in (auth, users, tickets, attachments, intake, classifier):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(health.router)
    app.include_router(metrics_route.router)
    docs.install(app)
    problems.install(app)
    app.add_middleware(
        BodyLimit, default=settings.max_api_body_bytes, inbound=settings.max_message_bytes
    )
    app.add_middleware(RequestId)
    app.add_middleware(RequestMetrics)  # outermost: the time includes every other layer
    return app


def bootstrap(context: Context, settings: Settings) -> None:
    """Start-up work that must precede traffic: the first admin from the environment."""
    if settings.doxa_admin_email and settings.doxa_admin_password:
        with transaction(context.sessions) as db:
            admin = user_service.ensure_admin(
                db,
                context.passwords,
                email=settings.doxa_admin_email,
                password=settings.doxa_admin_password,
            )
        if admin is not None:
            log.info("created the first admin %s", settings.doxa_admin_email)


def _worker_processes(settings: Settings) -> ProcessPoolExecutor | None:
    """Processes for intake and retraining; spawned, not forked (the server has threads)."""
    if not settings.parser_processes:
        return None
    return ProcessPoolExecutor(
        settings.parser_processes, mp_context=mp.get_context("spawn"),
        initializer=_start_worker_process, initargs=(settings,),
    )  # fmt: skip


@dataclass
class _WorkerProcess:
    context: Context
    pipeline: Pipeline
    triage: Triage


_WORKER: _WorkerProcess | None = None


def _start_worker_process(settings: Settings) -> None:
    """In each worker process: yield the CPU to the server, and open its own database pool."""
    global _WORKER
    os.nice(10)  # people wait on the server and the database, not on background intake
    context = Context.build(settings)
    _WORKER = _WorkerProcess(context, build_pipeline(settings), Triage(settings, context.sessions))


def _worker() -> _WorkerProcess:
    if _WORKER is None:
        raise RuntimeError("worker process not initialised")
    return _WORKER


def _in_worker(pool: Executor, call: Callable[..., T], *args: object,
               timeout: float | None = None) -> T:  # fmt: skip
    """Run `call` in a worker process and wait for it (the waiting thread holds no GIL)."""
    try:
        return pool.submit(call, *args).result(timeout)
    except FuturesTimeout:
        raise InvalidInput(f"gave up after {timeout} s in a worker process") from None


# What the worker processes run, each with that process's own context.


def _process_event(event_id: int) -> IntakeStatus | None:
    worker = _worker()
    return process_event(worker.context.sessions, worker.pipeline, event_id)


def _read_event(event_id: int) -> InboundMessage | None:
    worker = _worker()
    return read_event(worker.context.sessions, worker.pipeline, event_id)


def _classify_pending() -> int:
    return _worker().triage.run_once()


def build_pipeline(settings: Settings) -> Pipeline:
    """The one ingestion path, with each channel's way of reading its raw input."""
    normalizers = {Channel.EMAIL: email_normalizer(settings.max_attachment_bytes)}
    return Pipeline(settings, normalizers)
