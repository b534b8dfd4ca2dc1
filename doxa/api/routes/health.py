from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from doxa.api.deps import ContextDep

router = APIRouter(tags=["health"])
READY = {"status": "ok", "checks": {"database": "ok", "smtp": "ok"}}
NOT_READY = {"status": "unavailable", "checks": {"database": "unreachable: OperationalError"}}


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=None,
    responses={
        200: {"description": "Ready", "content": {"application/json": {"example": READY}}},
        503: {
            "description": "Not ready: the database or the SMTP listener is down",
            "content": {"application/json": {"example": NOT_READY}},
        },
    },
)
def readyz(request: Request, context: ContextDep) -> JSONResponse:
    """Ready for traffic: the database answers and the SMTP listener is serving."""
    checks: dict[str, str] = {}
    try:
        with context.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready", never a 500
        checks["database"] = f"unreachable: {exc.__class__.__name__}"
    if context.settings.smtp_enabled:
        server = getattr(request.app.state, "smtp_server", None)
        checks["smtp"] = "ok" if server is not None and server.is_serving() else "not listening"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )
