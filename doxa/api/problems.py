"""Every error leaves the REST edge as application/problem+json (RFC 9457), built by
`doxa.http.problems`: domain errors mapped to statuses, and what each status means here."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from doxa.core.errors import (
    Conflict,
    DomainError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Rejected,
    TooLarge,
    TooManyRequests,
    Unauthenticated,
    Unavailable,
)
from doxa.http import problems
from doxa.http.problems import Problem, documented

__all__ = ["Problem", "documented", "errors", "install"]

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5

STATUS_OF: dict[type[DomainError], int] = {
    NotFound: 404,
    PermissionDenied: 403,
    Unauthenticated: 401,
    Conflict: 409,
    InvalidInput: 422,
    Rejected: 422,
    TooLarge: 413,
    Unavailable: 503,
    TooManyRequests: 429,
}


# What each error status means wherever it is documented; docs.document_errors gives each
# operation those it can answer, and a route adds its own (409, 429...) with `errors()`.
MEANING: dict[int, str] = {
    400: "The body cannot be read: not UTF-8, or a form that does not parse",
    401: "Missing, expired or invalid bearer token",
    403: "The caller's role may not do this",
    404: "Not found, or not visible to the caller",
    409: "Conflicts with the current state",
    413: "Request body over the limit",
    422: "Invalid input: a parameter, a field, or JSON that does not parse",
    429: "Too many attempts from this network or for this address, or the password hashing "
    "pool is full; see Retry-After",
    503: "The database cannot be reached (retry after Retry-After)",
}


def errors(*statuses: int, **meanings: str) -> dict[int | str, dict[str, Any]]:
    """Error answers for a route's `responses=`; `meanings` (`e409="..."`) say what they mean
    for that operation, instead of the general text."""
    return {status: documented(meanings.get(f"e{status}", MEANING[status])) for status in statuses}


def _domain(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, DomainError):
        return _unexpected(request, exc)
    status = STATUS_OF.get(type(exc), 400)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(exc, TooManyRequests):
        headers = {"Retry-After": str(exc.retry_after)}
    elif isinstance(exc, Unavailable):  # the caller should come back, and be told when
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return problems.response(status, exc.detail, headers=headers)


def _http(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):
        return _unexpected(request, exc)
    return problems.response(exc.status_code, str(exc.detail), headers=exc.headers)


def _validation(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):
        return _unexpected(request, exc)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid input"}
    where = ".".join(str(part) for part in first["loc"])
    return problems.response(
        422, f"{where}: {first['msg']}" if where else str(first["msg"]), errors=errors
    )


def _database(request: Request, exc: Exception) -> JSONResponse:
    log.error(
        "database error on %s %s: %s", request.method, request.url.path, exc.__class__.__name__
    )
    if isinstance(exc, OperationalError | InterfaceError):
        return problems.response(
            503,
            "the database cannot be reached; try again shortly",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, IntegrityError):
        # A concurrent request won a race the service's own check could not see (two teams
        # made with one name at once): the loser's write conflicts, it is no server fault.
        return problems.response(409, "this conflicts with a concurrent change; try again")
    return _unexpected(request, exc)


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    request_id = getattr(request.state, "request_id", "-")
    log.exception("unhandled error, request %s", request_id, exc_info=exc)
    # Rendered outside the middleware stack, so the request id header is set here too.
    return problems.response(
        500,
        f"unexpected error; quote request id {request_id}",
        headers={"X-Request-ID": request_id},
        request_id=request_id,
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(DBAPIError, _database)
    app.add_exception_handler(Exception, _unexpected)
