"""application/problem+json (RFC 9457): the one way an HTTP error is written, whichever layer
writes it (an exception handler, a route, the ASGI middleware, the connection gate)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.types import Send

MEDIA_TYPE = "application/problem+json"
# RFC 9110's name, which Python's HTTPStatus has only since 3.13 ("Request Entity Too Large").
TITLES = {413: "Content Too Large"}


class Problem(BaseModel):
    """An error, as RFC 9457 describes it."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    request_id: str | None = None
    errors: list[dict[str, Any]] | None = None


def title(status: int) -> str:
    return TITLES.get(status) or HTTPStatus(status).phrase


def body(status: int, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "about:blank",
        "title": title(status),
        "status": status,
        "detail": detail,
    } | extra


def encoded(status: int, detail: str, **extra: Any) -> bytes:
    return json.dumps(jsonable_encoder(body(status, detail, **extra)), ensure_ascii=False).encode()


def response(
    status: int, detail: str, *, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """The answer a route or an exception handler returns."""
    return JSONResponse(
        jsonable_encoder(body(status, detail, **extra)),
        status_code=status,
        headers=headers,
        media_type=MEDIA_TYPE,
    )


async def send(send: Send, status: int, detail: str) -> None:
    """The answer written by ASGI middleware, before the app sees the request."""
    content = encoded(status, detail)
    headers = [(b"content-type", MEDIA_TYPE.encode()), (b"content-length", b"%d" % len(content))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


def closing(status: int, detail: str, *headers: bytes) -> bytes:
    """A whole HTTP/1.1 answer that closes the connection, as raw bytes (written by the
    connection gate, below any ASGI app)."""
    content = encoded(status, detail)
    head = [
        f"HTTP/1.1 {status} {title(status)}".encode(),
        b"content-type: " + MEDIA_TYPE.encode(),
        b"content-length: %d" % len(content),
        b"connection: close",
        *headers,
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + content


def documented(description: str) -> dict[str, Any]:
    """An error answer in the OpenAPI document: problem+json, with what it means here."""
    # No `model`: FastAPI would document an application/json body too, which never comes.
    # doxa.api.docs puts the Problem schema in the components.
    schema = {"$ref": "#/components/schemas/Problem"}
    return {"description": description, "content": {MEDIA_TYPE: {"schema": schema}}}
