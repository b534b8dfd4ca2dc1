"""`/inbound/*`: the HTTP front door, beside the SMTP listener, into the one pipeline.

Each route reads the raw body (the body limit middleware has already refused an oversized one,
by Content-Length or while counting the stream), hands it to `WebhookIntake` on a worker
thread, and, once the body is committed, schedules processing and answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel

from doxa.core.errors import PermissionDenied
from doxa.gateway.webhooks.bodies import media_type
from doxa.gateway.webhooks.intake import Headers, Post, WebhookIntake
from doxa.http import paths, problems
from doxa.http.problems import documented
from doxa.runtime.threads import on_thread

router = APIRouter(prefix=paths.INBOUND, tags=["inbound"])
# A small JSON or form-encoded body is checked (signature, parse, fields) on the loop:
# measured, cheaper than the hop to a worker thread (0.05-0.1 ms of the server's 0.7 ms a
# post), and at most 1.5 ms for the worst 16 KiB. Others go to a thread, multipart above all:
# the email parser takes about 0.15 ms a part (60 ms for 16 KiB of empty parts).
INLINE_CHECK_BYTES = 16 * 1024
INLINE_TYPES = frozenset(("application/json", "application/x-www-form-urlencoded"))


class IntakeAccepted(BaseModel):
    """The raw body is stored as this intake event (poll `/intake/{id}` as an admin)."""

    intake_event_id: int


def _intake(request: Request) -> WebhookIntake:
    intake: WebhookIntake = request.app.state.webhooks
    return intake


_TOO_LARGE = documented("Body over MAX_MESSAGE_BYTES")
_UNAVAILABLE = documented(
    "The endpoint's secret is not configured (the detail names the variable), or the body "
    "could not be stored (database down): retry after Retry-After seconds"
)
_PROVIDER: dict[int | str, dict[str, Any]] = {
    401: documented("Wrong or missing credentials or signature; the provider retries"),
    413: _TOO_LARGE,
    503: _UNAVAILABLE,
}
_FORM_BODY = {
    "type": "object",
    "required": ["email", "subject", "message"],
    "properties": {
        "email": {"type": "string", "format": "email"},
        "name": {"type": "string"},
        "subject": {"type": "string"},
        "message": {"type": "string"},
    },
    "additionalProperties": True,
}


def _header(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": {"type": "string"},
    }


# Documented here rather than declared as parameters: the route reads the raw request, so
# FastAPI has nothing to validate or inject per request (measured: a third of its CPU).
_FORM_DOC: dict[str, Any] = {
    "parameters": [
        _header("X-Doxa-Timestamp", "Unix seconds, within 300 s of the server's clock"),
        _header(
            "X-Doxa-Signature",
            '"sha256=" + hex HMAC-SHA256 of "<timestamp>.<raw body>" with WEBHOOK_SECRET',
        ),
        _header("Idempotency-Key", "Repeat it with the same body for the first answer (24 h)"),
    ],
    "requestBody": {
        "required": True,
        "description": "Other fields are kept as the ticket's metadata; multipart file parts "
        "become attachments.",
        "content": {
            kind: {"schema": _FORM_BODY}
            for kind in (
                "application/json",
                "application/x-www-form-urlencoded",
                "multipart/form-data",
            )
        },
    },
}
_RAW_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            kind: {"schema": {"type": "object"}}
            for kind in ("multipart/form-data", "application/x-www-form-urlencoded")
        },
    }
}
_JSON_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


async def _run(
    request: Request,
    check: Callable[[Headers, bytes], Post],
    authenticate: Callable[[Headers, bytes], object] | None = None,
) -> Response:
    """`authenticate`, when given, runs on the loop first: a post that fails it costs no more
    than a scan of its body (measured, a thread hop had added 1.5 ms to the 7 of 5 MB)."""
    intake = _intake(request)
    raw = await request.body()
    # Counted from the whole body on: a client trickling its body would otherwise hold
    # processing back for as long as it liked.
    with intake.pacer.serving():
        if authenticate is not None:
            authenticate(request.headers, raw)
        if (
            len(raw) <= INLINE_CHECK_BYTES
            and media_type(request.headers.get("content-type")) in INLINE_TYPES
        ):
            post = check(request.headers, raw)
        else:
            post = await on_thread(check, request.headers, raw)
        stored = await intake.store(post)
    return Response(b'{"intake_event_id":%d}' % stored.event_id, media_type="application/json")


@router.post(
    "/form",
    status_code=202,
    response_model=IntakeAccepted,
    openapi_extra=_FORM_DOC,
    responses={
        401: documented("Missing, stale (over 300 s) or wrong signature"),
        409: documented("This Idempotency-Key was used with another body"),
        413: _TOO_LARGE,
        422: documented("Malformed JSON, form or multipart body, or a required field missing"),
        503: _UNAVAILABLE,
    },
)
async def inbound_form(request: Request) -> Response:
    """A web form's post: a new ticket from the address typed into it.

    The answer, and any repeat of it (same Idempotency-Key and body, or the same signature),
    names the intake event that stored the post.
    """
    response = await _run(request, _intake(request).form)
    response.status_code = 202
    return response


@router.post(
    "/mailgun",
    response_model=IntakeAccepted,
    openapi_extra=_RAW_BODY,
    responses={**_PROVIDER, 406: documented("The recipient is not ours; Mailgun stops retrying")},
)
async def inbound_mailgun(request: Request) -> Response:
    """A Mailgun route's forward(), with or without `body-mime`; signed with
    MAILGUN_SIGNING_KEY, each token accepted once."""
    try:
        intake = _intake(request)
        return await _run(request, intake.mailgun, intake.mailgun_signed)
    except PermissionDenied as exc:
        return problems.response(406, exc.detail)


@router.post(
    "/postmark",
    response_model=IntakeAccepted,
    openapi_extra=_JSON_BODY,
    responses={**_PROVIDER, 403: documented("The recipient is not ours; Postmark stops retrying")},
)
async def inbound_postmark(request: Request) -> Response:
    """Postmark's inbound JSON (with or without RawEmail), with basic credentials."""
    return await _run(request, _intake(request).postmark)


@router.post(
    "/sendgrid", response_model=IntakeAccepted, openapi_extra=_RAW_BODY, responses=_PROVIDER
)
async def inbound_sendgrid(request: Request) -> Response:
    """SendGrid Inbound Parse, parsed or raw, with basic credentials."""
    return await _run(request, _intake(request).sendgrid)
