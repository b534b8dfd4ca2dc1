"""The composition root: the app from settings. The runtime (`doxa.runtime.plan`) is built from
the execution plan, the edges on it; its lifespan starts them and stops them in order."""

from __future__ import annotations

import functools
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from starlette.routing import BaseRoute

from doxa.api import docs, problems
from doxa.api.routes import (
    account,
    attachments,
    auth,
    calendars,
    classifier,
    events,
    health,
    intake,
    rules,
    sla_policies,
    teams,
    tickets,
    users,
)
from doxa.api.routes import metrics as metrics_route
from doxa.api.routes import webhooks as subscriptions
from doxa.core.config import Settings
from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.users import service as user_service
from doxa.core.users.mail import AccountMailer
from doxa.core.users.throttle import Throttle
from doxa.gateway.pipeline import build_pipeline
from doxa.gateway.smtp import IntakeHandler, SmtpListener
from doxa.gateway.webhooks.intake import WebhookIntake
from doxa.gateway.webhooks.routes import router as webhooks_router
from doxa.http import paths
from doxa.http.cors import ListedOrigins
from doxa.http.middleware import BodyLimit, RequestId, RequestMetrics, UntrustedProxyWarning
from doxa.runtime.hashing import HashPool, default_hash_workers
from doxa.runtime.loops import ToLoop
from doxa.runtime.plan import Plan, Runtime

log = logging.getLogger(__name__)

DESCRIPTION = """Support tickets from email and web forms, classified by a local model.

DOXA has no web UI: this page is the way in. Press **Authorize** and log in with your email as
`username` (the login is an OAuth2 password form, form-encoded), then **Try it out** on any
operation. Clients see only their own tickets; the triage queue is
`GET /api/v1/tickets?needs_triage=true`. Errors are `application/problem+json` (RFC 9457)."""


def create_app(
    settings: Settings,
    *,
    context: Context | None = None,
    smtp_socket: socket.socket | None = None,
) -> FastAPI:
    """The app; `smtp_socket`, bound by `doxa serve`, is where the SMTP listener listens."""
    owns_context = context is None
    context = context or Context.build(settings, hashing=HashPool(default_hash_workers()))
    runtime = Runtime(Plan.of(settings), context, build_pipeline)
    # The edges, on the runtime's pipeline, intake worker and pacer.
    webhooks = WebhookIntake(
        settings, context.sessions, runtime.pipeline, runtime.worker.submit, runtime.pacer
    )
    listener: SmtpListener | None = None
    if settings.smtp_enabled:
        handler = IntakeHandler(
            settings,
            context.sessions,
            runtime.pipeline,
            submit=ToLoop(runtime.worker.submit),  # from the listener's loop to the app's
            pacer=runtime.pacer,
        )
        listener = SmtpListener(settings, handler, sock=smtp_socket)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        bootstrap(context, settings)
        await runtime.start()
        if listener is not None:
            await listener.start()
        try:
            yield
        finally:
            if listener is not None:  # first stop taking mail, then finish what was taken
                await listener.stop()
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
    app.state.smtp_server = listener
    # Accounts: per-process throttle state, the account links, the proxies we believe.
    app.state.throttle = Throttle()
    app.state.account_mail = AccountMailer(settings)
    app.state.trusted_proxies = settings.forwarded_allow_ips
    app.state.metrics_token = settings.metrics_token  # opens /metrics to a scraper
    app.state.webhooks = webhooks
    app.state.event_fanout = runtime.fanout
    app.router.routes.extend(_routes())
    account.keep_tokens_out_of_access_logs()
    docs.install(app)
    problems.install(app)
    app.add_middleware(
        BodyLimit, default=settings.max_api_body_bytes, inbound=settings.max_message_bytes
    )
    app.add_middleware(UntrustedProxyWarning, trusted=settings.forwarded_allow_ips)
    app.add_middleware(RequestId)
    if settings.cors_allowed_origins:
        # Listed origins only (`*` is refused at settings load), no credentials mode.
        app.add_middleware(ListedOrigins, origins=settings.cors_allowed_origins)
    app.add_middleware(RequestMetrics)  # outermost: the time includes every other layer
    return app


@functools.cache
def _routes() -> tuple[BaseRoute, ...]:
    """Every route of the app, built once per process. Including a router makes FastAPI read
    each endpoint's signature and models (~60 ms for ours, paid again by every app a test
    builds); the routes depend on no setting: each reads its app's state per request."""
    api = APIRouter(prefix=paths.API)
    for module in (
        auth,
        users,
        tickets,
        teams,
        rules,
        calendars,
        sla_policies,
        attachments,
        intake,
        classifier,
        events,
        subscriptions,
    ):
        docs.document_errors(module.router)
        api.include_router(module.router)
    built = APIRouter(generate_unique_id_function=docs.operation_id)
    # First, so a webhook post (the busiest route under a flood) matches without walking the
    # API's routes; it documents only its own answers.
    built.include_router(webhooks_router)  # served under paths.INBOUND
    built.include_router(api)
    built.include_router(health.router)
    built.include_router(account.router)
    built.include_router(metrics_route.router)
    return tuple(built.routes)


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
