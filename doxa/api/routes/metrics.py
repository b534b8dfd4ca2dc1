from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from doxa import metrics
from doxa.api import problems
from doxa.api.deps import SessionDep, metrics_reader
from doxa.core.outbox.queue import oldest_queued_age, queued_count

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(metrics_reader)],
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
        **problems.errors(
            401,
            403,
            503,
            e401="Not from this host, and no valid bearer token",
            e403="The token is not an admin's",
            e503="The database cannot be reached (checking an admin's token)",
        ),
    },
)
def scrape(db: SessionDep) -> Response:
    """Prometheus metrics: intake by channel and outcome, SMTP replies by code, webhook answers,
    processing and classification latency, outbox depth and its oldest item's age, outbound
    webhook deliveries by outcome, HTTP latency by route. Open to loopback clients and to an
    admin's bearer token."""
    oldest = oldest_queued_age(db).total_seconds()
    body = metrics.render(outbox_depth=queued_count(db), oldest_pending_seconds=oldest)
    return Response(body, media_type=metrics.CONTENT_TYPE_LATEST)
