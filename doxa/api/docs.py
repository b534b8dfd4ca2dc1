"""Swagger UI and ReDoc served with bundled assets, so /docs works without internet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from doxa.api import problems
from doxa.api.deps import current_user, get_db

ASSETS = Path(fastapi_offline.__file__).parent / "static"
PREFIX = "/docs-assets"

# One per operation tag, in the order Swagger UI and ReDoc list them.
TAGS: list[dict[str, str]] = [
    {
        "name": "auth",
        "description": "Log in (an OAuth2 password form: form-encoded, the email as `username`), "
        "sign up and reset a password through mailed links, and the caller's own account.",
    },
    {
        "name": "tickets",
        "description": "Tickets and their conversations: the triage queue is "
        "`GET /tickets?needs_triage=true`. Clients see their own tickets only (another's answers "
        "404) and never internal notes; staff see all.",
    },
    {
        "name": "users",
        "description": "Who a requester or author is (staff), and user management (admins).",
    },
    {
        "name": "teams",
        "description": "Teams: their members, how new tickets are handed out, and the support "
        "address whose mail lands in each. Staff read them, admins manage them.",
    },
    {
        "name": "rules",
        "description": "Routing rules: conditions on a new ticket (channel, requester, text, the "
        "AI's category, ...) and actions (team, priority, category, assignee, status, tags), run "
        "in `position` order after classification; try them on a ticket with `/rules/test`.",
    },
    {
        "name": "webhooks",
        "description": "Outbound webhooks (admins): subscriptions to events, signed as Standard "
        "Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`), the delivery log "
        "with every attempt, redelivery and ping. The secret is answered once.",
    },
    {
        "name": "classifier",
        "description": "The local model that files new tickets by category and priority: its "
        "taxonomy and evaluation, retraining, classifying a ticket again, similar tickets.",
    },
    {
        "name": "intake",
        "description": "Every inbound message (mail, form, provider post) with its outcome; "
        "reprocess a failed one, release a held one (admins).",
    },
    {
        "name": "inbound",
        "description": "Webhooks for web forms and mail providers (Mailgun, SendGrid, Postmark), "
        "signed or with credentials; the same pipeline as SMTP.",
    },
    {
        "name": "sla",
        "description": "Service levels: business-hours calendars and SLA policies (staff read, "
        "admins write). A ticket's `sla` shows its due times; `GET /tickets?sort=sla_due` lists "
        "what breaches next.",
    },
    {
        "name": "events",
        "description": "The event feed: every change as an event, paged (`GET /events`) or live "
        "as Server-Sent Events (`GET /events/stream`), each in the caller's view. The event "
        "types, with an example each, are listed under `GET /events`.",
    },
    {
        "name": "health",
        "description": "Liveness, readiness and Prometheus metrics, outside `/api/v1`.",
    },
]


def operation_id(route: APIRoute) -> str:
    """`tickets-list`, `users-get`, `auth-login`: what a generated client names its methods.

    The tag, then the function's name without the words that repeat the tag."""
    tag = str(route.tags[-1]) if route.tags else "api"
    repeated = {tag, tag.removesuffix("s")}
    words = [word for word in route.name.split("_") if word not in repeated]
    return "-".join([tag, *words]) if words else tag


def document_errors(router: APIRouter) -> None:
    """Give each operation the error answers it can give, and only those.

    Read from what the route depends on: a body can be unreadable (400), too big (413) or
    invalid (422), as can any parameter (422); a signed-in caller can be refused (401), a role
    check can say no (403), an id in the path can name nothing visible (404), and a database
    session can find the database away (503). What a service decides (409, 429, a service's
    own 403 or 404) each route declares with `problems.errors()`."""
    for route in router.routes:
        if not isinstance(route, APIRoute):
            continue
        found = problems.errors(*_inferred(route))
        answers = {**found, **route.responses}
        route.responses = dict(sorted(answers.items(), key=lambda item: str(item[0])))


def _inferred(route: APIRoute) -> list[int]:
    nodes = list(_walk(route.dependant))
    calls = {node.call for node in nodes}
    has = {
        400: route.body_field is not None,
        401: current_user in calls,
        403: any(getattr(call, "roles", None) for call in calls),
        404: any(node.path_params for node in nodes),
        413: route.body_field is not None,
        422: route.body_field is not None or any(_params(node) for node in nodes),
        503: get_db in calls,
    }
    return [status for status, present in has.items() if present]


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for dependency in dependant.dependencies:
        yield from _walk(dependency)


def _params(node: Dependant) -> bool:
    return bool(node.path_params or node.query_params or node.header_params or node.cookie_params)


def install(app: FastAPI) -> None:
    app.mount(PREFIX, StaticFiles(directory=ASSETS), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's document, with the Problem schema every error answer refers to."""
        document = generate()  # built once, then kept by FastAPI
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas.setdefault("Problem", problems.Problem.model_json_schema())
        return document

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        """DOXA is an API without a web UI: Swagger is the way in."""
        return RedirectResponse("/docs")

    @app.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} — Swagger UI",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url=f"{PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{PREFIX}/favicon.png",
            swagger_ui_parameters={"persistAuthorization": True},
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} — ReDoc",
            redoc_js_url=f"{PREFIX}/redoc.standalone.js",
            redoc_favicon_url=f"{PREFIX}/favicon.png",
            with_google_fonts=False,
        )
