"""CORS for the origins in CORS_ALLOWED_ORIGINS (Starlette's middleware, listed origins only)."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp


class ListedOrigins(CORSMiddleware):
    """Starlette's CORS for a list of origins, without credentials mode (the API takes bearer
    tokens and stream tickets, never cookies). A preflight from an origin not listed gets no
    Access-Control-* header at all (Starlette's would still list the methods and headers)."""

    def __init__(self, app: ASGIApp, *, origins: tuple[str, ...]) -> None:
        super().__init__(
            app,
            allow_origins=list(origins),
            allow_credentials=False,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "X-Request-ID"],
            expose_headers=["Retry-After", "X-Request-ID", "Location"],
            max_age=600,
        )

    def preflight_response(self, request_headers: Headers) -> Response:
        if not self.is_allowed_origin(origin=request_headers["origin"]):
            return PlainTextResponse("Disallowed CORS origin", status_code=400)
        return super().preflight_response(request_headers)
