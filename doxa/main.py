"""The composition root: builds the app from settings and starts the listeners in its lifespan."""

from __future__ import annotations

import functools
import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from doxa import metrics
from doxa.api import docs, problems
from doxa.api.routes import (
    account,
    attachments,
    auth,
    classifier,
    health,
    intake,
    tickets,
    users,
)
from doxa.api.routes import metrics as metrics_route
from doxa.core.config import Settings
from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.enums import Channel, IntakeStatus
from doxa.core.intake.pipeline import Pipeline
from doxa.core.intake.worker import (
    BATCH_DEADLINE_SECONDS,
    Batch,
    IntakeWorker,
    batch_elsewhere,
    process_batch,
    process_elsewhere,
    process_event,
)
from doxa.core.outbox.kinds import build_outbox
from doxa.core.pacing import Pacer
from doxa.core.triage.runner import TriageRunner
from doxa.core.users import service as user_service
from doxa.core.users.mail import AccountMailer
from doxa.core.users.throttle import Throttle
from doxa.gateway import webhooks
from doxa.gateway.parsing import configured_email_normalizer
from doxa.gateway.smtp import IntakeHandler, SmtpListener
from doxa.http import paths
from doxa.http.middleware import BodyLimit, RequestId, RequestMetrics, UntrustedProxyWarning
from doxa.runtime.hashing import HashPool, default_hash_workers
from doxa.runtime.loops import ToLoop
from doxa.runtime.outbox import OutboxRunner
from doxa.workers import (
    classify_in_worker,
    process_batch_in_worker,
    process_in_worker,
    read_in_worker,
    worker_processes,
)

log = logging.getLogger(__name__)

DESCRIPTION = """Support tickets from email and web forms, classified by a local model.

DOXA has no web UI: this page is the way in. Press **Authorize** and log in with your email as
`username` (the login is an OAuth2 password form, form-encoded), then **Try it out** on any
operation. Clients see only their own tickets; the triage queue is
`GET /api/v1/tickets?needs_triage=true`. Errors are `application/problem+json` (RFC 9457)."""


class Runtime:
    """The long-running parts the lifespan starts and stops, in dependency order."""

    def __init__(
        self, settings: Settings, context: Context, smtp_socket: socket.socket | None = None
    ) -> None:
        self.settings, self.context = settings, context
        self.parsers = worker_processes(settings, build_pipeline)
        # On PostgreSQL the worker processes take whole events (load, parse, store) and classify
        # new tickets, so that CPU stays off the API's GIL (measured: the model's predictions
        # were the GIL's biggest holder under mail load). On SQLite they load and parse, and
        # the server stores: writers from several processes would wait on SQLite's sleeping
        # busy handler instead of our writer gate. Either way no raw message is loaded here.
        pool = self.parsers
        self.pipeline = build_pipeline(settings)
        process: Callable[[int], IntakeStatus | None] | None = None
        # Small events waiting together are stored in one transaction (see process_batch).
        many: Callable[[list[int]], Batch] | None = None
        classify: Callable[[], int] | None = None
        # Each event gets PROCESSING_TIMEOUT_SECONDS in its process, which is then replaced.
        deadline = settings.processing_timeout_seconds
        if pool is not None and settings.on_postgresql:
            run = functools.partial(pool.run, process_in_worker, timeout=deadline)
            process = functools.partial(process_elsewhere, context.sessions, self.pipeline, run)
            batch_deadline = min(deadline, BATCH_DEADLINE_SECONDS)
            run_many = functools.partial(pool.run, process_batch_in_worker, timeout=batch_deadline)
            many = functools.partial(batch_elsewhere, run_many)
            classify = functools.partial(pool.run, classify_in_worker, background=True)
        elif pool is not None:
            read = functools.partial(pool.run, read_in_worker, timeout=deadline)
            process = functools.partial(process_event, context.sessions, self.pipeline, read=read)
        else:
            many = functools.partial(process_batch, context.sessions, self.pipeline)
        self.outbox = OutboxRunner(build_outbox(settings, context.sessions))
        # Processing and classification wait for a moment when no post or message is being
        # answered (at most a second a step): measured, they cost the edges' p99 15-20 ms.
        self.pacer = Pacer()
        self.worker = IntakeWorker(
            context.sessions, self.pipeline, after=self._processed, process=process,
            process_many=many, pacer=self.pacer,
        )  # fmt: skip
        # Classification also waits for intake to catch up (at most a second a batch): they
        # share the worker processes, and new mail becoming tickets goes first.
        self.triage = TriageRunner(
            settings, context.sessions, executor=pool, classify=classify, pacer=self.pacer,
            intake_caught_up=self.worker.caught_up,
        )  # fmt: skip
        self.webhooks = webhooks.WebhookIntake(
            settings, context.sessions, self.pipeline, self.worker.submit, self.pacer
        )
        # Timed and counted here, around the work, so the domain's services stay free of metrics.
        self.worker.process = metrics.timed_intake(self.worker.process)
        if self.worker.process_many is not None:
            self.worker.process_many = metrics.timed_intake_batch(self.worker.process_many)
        self.triage.classify = metrics.timed_classification(self.triage.classify)
        self.listener: SmtpListener | None = None
        if settings.smtp_enabled:
            handler = IntakeHandler(
                settings,
                context.sessions,
                self.pipeline,
                submit=ToLoop(self.worker.submit),  # from the listener's loop to the app's
                pacer=self.pacer,
            )
            self.listener = SmtpListener(settings, handler, sock=smtp_socket)

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


def create_app(
    settings: Settings,
    *,
    context: Context | None = None,
    smtp_socket: socket.socket | None = None,
) -> FastAPI:
    """The app; `smtp_socket`, bound by `doxa serve`, is where the SMTP listener listens."""
    owns_context = context is None
    context = context or Context.build(settings, hashing=HashPool(default_hash_workers()))
    runtime = Runtime(settings, context, smtp_socket)

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
        generate_unique_id_function=docs.operation_id,
        title="DOXA",
        version="0.1.0",
        description=DESCRIPTION,
        openapi_tags=docs.TAGS,
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
    # Accounts: per-process throttle state, the account links, the proxies we believe.
    app.state.throttle = Throttle()
    app.state.account_mail = AccountMailer(settings)
    app.state.trusted_proxies = settings.forwarded_allow_ips
    app.state.metrics_token = settings.metrics_token  # opens /metrics to a scraper
    app.state.webhooks = runtime.webhooks
    api = APIRouter(prefix=paths.API)
    for module in (auth, users, tickets, attachments, intake, classifier):
        docs.document_errors(module.router)
        api.include_router(module.router)
    # First, so a webhook post (the busiest route under a flood) matches without walking the
    # API's routes; it documents only its own answers.
    app.include_router(webhooks.router)  # served under paths.INBOUND
    app.include_router(api)
    app.include_router(health.router)
    app.include_router(account.router)
    account.keep_tokens_out_of_access_logs()
    app.include_router(metrics_route.router)
    docs.install(app)
    problems.install(app)
    app.add_middleware(
        BodyLimit, default=settings.max_api_body_bytes, inbound=settings.max_message_bytes
    )
    app.add_middleware(UntrustedProxyWarning, trusted=settings.forwarded_allow_ips)
    app.add_middleware(RequestId)
    app.add_middleware(RequestMetrics)  # outermost: the time includes every other layer
    return app


def bootstrap(context: Context, settings: Settings) -> None:
    """Start-up work that must precede traffic: the first admin from the environment."""
    if settings.doxa_admin_email and settings.doxa_admin_password:
        with transaction(context.sessions) as db:
            outcome = user_service.ensure_admin(
                db,
                context.passwords,
                email=settings.doxa_admin_email,
                password=settings.doxa_admin_password,
            )
        if outcome is user_service.AdminBootstrap.CREATED:
            log.info("created the first admin %s", settings.doxa_admin_email)
        elif outcome is user_service.AdminBootstrap.TAKEN:
            log.warning(
                "DOXA_ADMIN_EMAIL %s belongs to an account that has a password or has signed in: "
                "no admin created (use `doxa create-user --role ADMIN` with another address)",
                settings.doxa_admin_email,
            )


def build_pipeline(settings: Settings) -> Pipeline:
    """The one ingestion path, with each channel's way of reading its raw input."""
    limit = settings.max_attachment_bytes
    normalizers = {
        Channel.EMAIL: configured_email_normalizer(settings),
        Channel.FORM: webhooks.form_normalizer(limit),
        Channel.MAILGUN: webhooks.normalizer(webhooks.mailgun_message, settings),
        Channel.SENDGRID: webhooks.normalizer(webhooks.sendgrid_message, settings),
        Channel.POSTMARK: webhooks.normalizer(webhooks.postmark_message, settings),
    }
    return Pipeline(settings, normalizers)
