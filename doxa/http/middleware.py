"""ASGI middleware around both HTTP edges: a request id on every response (and in every problem
body), request latency for /metrics, a cap on request bodies (a webhook's larger than the
API's), and a warning about an untrusted proxy."""

from __future__ import annotations

import ipaddress
import json
import logging
import time
import uuid
from collections.abc import Sequence

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from doxa import metrics
from doxa.core.config import IPNetwork
from doxa.http import paths, problems

log = logging.getLogger(__name__)
_PROBLEM = problems.MEDIA_TYPE.encode()
_INBOUND = paths.INBOUND + "/"


class RequestId:
    """An id for each request, in the `X-Request-ID` header of its response and, for an error,
    in the problem+json body as `request_id`, whichever layer wrote it (a user quotes the body)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        held: Message | None = None  # a problem's start, sent once its body has the id
        body = b""

        async def send_with_id(message: Message) -> None:
            nonlocal held, body
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                headers.append((b"x-request-id", request_id.encode()))
                if _is_problem(headers):
                    held = message
                    return
            elif held is not None and message["type"] == "http.response.body":
                body += message.get("body", b"")
                if message.get("more_body", False):
                    return
                body = _with_request_id(body, request_id)
                held["headers"] = [
                    (name, str(len(body)).encode() if name.lower() == b"content-length" else value)
                    for name, value in held["headers"]
                ]
                await send(held)
                message = {"type": "http.response.body", "body": body}
            await send(message)

        await self.app(scope, receive, send_with_id)


def _is_problem(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(
        name.lower() == b"content-type" and value.startswith(_PROBLEM) for name, value in headers
    )


def _with_request_id(body: bytes, request_id: str) -> bytes:
    try:
        problem = json.loads(body)
    except ValueError:
        return body
    if not isinstance(problem, dict) or "request_id" in problem:
        return body
    with_id = {**problem, "request_id": request_id}
    return json.dumps(with_id, ensure_ascii=False, separators=(",", ":")).encode()


class RequestMetrics:
    """Times every request by its route template (`/api/v1/tickets/{ticket_id}`, never the
    path itself, so ids do not multiply the series) and final status; counts each webhook's
    answers by endpoint, whichever layer gave them (a 413 of `BodyLimit` too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500  # 500: an exception escaped the app
        path = scope["path"]  # before routing, which may rewrite it for a mounted app

        async def send_seen(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_seen)
        finally:
            route = _template(path, scope.get("path_params")) if "route" in scope else "unmatched"
            metrics.http_request(scope["method"], route, status, time.perf_counter() - started)
            if path.startswith(_INBOUND) and (endpoint := path[len(_INBOUND) :]) in paths.WEBHOOKS:
                metrics.webhook_answered(endpoint, status)


def _template(path: str, params: dict[str, object] | None) -> str:
    """The path with each parameter's value put back as `{name}`: `/api/v1/tickets/{ticket_id}`.

    Built from the matched parameters, since a route included through a prefixed router knows
    only its own part of the path."""
    segments, tails = path.split("/"), []
    for name, value in (params or {}).items():
        text = str(value)
        if "/" in text:  # a {name:path} parameter takes the rest of the path
            tails.append((text, name))
        else:
            segments = [f"{{{name}}}" if seg == text else seg for seg in segments]
    template = "/".join(segments)
    for text, name in tails:
        template = template.removesuffix(text) + f"{{{name}}}"
    return template


class BodyLimit:
    """Refuse bodies over the limit with 413 before they are read into memory: `inbound` for
    the webhooks (a whole message), `default` for the rest."""

    def __init__(self, app: ASGIApp, *, default: int, inbound: int) -> None:
        self.app, self.default, self.inbound = app, default, inbound

    def _limit(self, path: str) -> int:
        return self.inbound if path.startswith(_INBOUND) else self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await problems.send(send, 413, _too_large(limit))
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                # FastAPI re-raises HTTPException from body reading; the problem handler renders it.
                raise HTTPException(413, _too_large(limit))
            return message

        await self.app(scope, counted, send)


def _too_large(limit: int) -> str:
    return f"request body is over the limit of {limit} bytes"


class UntrustedProxyWarning:
    """Warns once, on the first `X-Forwarded-For` from a peer not in FORWARDED_ALLOW_IPS: the
    header is ignored then, so throttling and logs see that peer, which is wrong when it is the
    operator's own proxy. Once said, requests pass untouched."""

    def __init__(self, app: ASGIApp, *, trusted: Sequence[IPNetwork]) -> None:
        self.app, self.trusted = app, tuple(trusted)
        self.warned = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.warned and scope["type"] == "http":
            self._check(scope)
        await self.app(scope, receive, send)

    def _check(self, scope: Scope) -> None:
        if not any(name == b"x-forwarded-for" for name, _ in scope["headers"]):
            return
        peer = scope["client"][0] if scope.get("client") else ""
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return
        if any(address in network for network in self.trusted):
            return
        self.warned = True
        log.warning(
            "X-Forwarded-For from %s, which is not in FORWARDED_ALLOW_IPS, is ignored: throttling "
            "and logs count every client behind it as %s. If it is your proxy, add it to "
            "FORWARDED_ALLOW_IPS (said once)",
            peer,
            peer,
        )
