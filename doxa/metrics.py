"""Prometheus metrics: what the edges and the background runners record, and what /metrics serves.

Recorded where work enters or leaves (the HTTP middleware, SMTP replies, webhook answers, the
intake worker and the classifier runs, wrapped as the execution plan builds them), never inside the
domain's services. The figures are this process's: work done in a worker process is timed by
the server thread that waits for it, so nothing is lost there; `doxa ingest` runs record nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from doxa.core.enums import IntakeStatus
from doxa.core.intake.processing import Batch, DatabaseUnavailable

__all__ = ["CONTENT_TYPE_LATEST", "render"]

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

INTAKE_RECEIVED = Counter(
    "doxa_intake_received",
    "Inbound deliveries at the edges, by channel and outcome "
    "(received, duplicate, too_big, unavailable, or a rejection)",
    ["channel", "outcome"],
)
INTAKE_PROCESSED = Counter(
    "doxa_intake_processed",
    "Intake events processed, by outcome (ticket_created, followup, held, duplicate, failed, "
    "rejected; database_unavailable when it will be retried)",
    ["outcome"],
)
INTAKE_SECONDS = Histogram(
    "doxa_intake_processing_seconds",
    "Time to process one intake event: load, parse, thread, store",
    buckets=_SECONDS,
)
SMTP_REPLIES = Counter("doxa_smtp_replies", "SMTP replies sent, by reply code", ["code"])
SMTP_GROUPS = Histogram(
    "doxa_smtp_commit_group_messages",
    "Messages stored in one transaction by the SMTP listener (group commit)",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
WEBHOOK_GROUPS = Histogram(
    "doxa_webhook_commit_group_posts",
    "Webhook posts stored in one transaction (group commit)",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
WEBHOOK_ANSWERS = Counter(
    "doxa_webhook_answers",
    "Inbound webhook answers, by endpoint and HTTP status",
    ["endpoint", "status"],
)
CLASSIFICATION_SECONDS = Histogram(
    "doxa_classification_seconds",
    "Classification time per ticket (a background pass's time over the tickets it classified)",
    buckets=_SECONDS,
)
CLASSIFIED = Counter("doxa_classified_tickets", "Tickets classified by the background runner")
OUTBOX_DEPTH = Gauge(
    "doxa_outbox_depth", "Outbox items (mail, webhook deliveries) queued, not yet sent"
)
OUTBOX_OLDEST = Gauge(
    "doxa_outbox_oldest_pending_seconds", "Age of the oldest outbox item still queued (0: none)"
)
WEBHOOK_DELIVERIES = Counter(
    "doxa_webhook_deliveries",
    "Outbound webhook delivery attempts, by outcome (delivered, retry, failed, disabled: the "
    "attempt that turned its subscription off)",
    ["outcome"],
)
HTTP_SECONDS = Histogram(
    "doxa_http_request_duration_seconds",
    "HTTP request latency, by method, route template and status",
    ["method", "route", "status"],
    buckets=_SECONDS,
)


def intake_received(channel: str, outcome: str) -> None:
    """An edge took in (or refused) one delivery."""
    INTAKE_RECEIVED.labels(channel, outcome).inc()


def smtp_reply(reply: str | bytes) -> None:
    """One SMTP reply sent; counted by its three-digit code."""
    code = reply[:3] if isinstance(reply, str) else reply[:3].decode("ascii", "replace")
    if code.isdigit():
        SMTP_REPLIES.labels(code).inc()


def smtp_group_committed(messages: int) -> None:
    """The SMTP listener stored a group of `messages` in one transaction."""
    SMTP_GROUPS.observe(messages)


def webhook_group_committed(posts: int) -> None:
    """The webhook edge stored a group of `posts` in one transaction."""
    WEBHOOK_GROUPS.observe(posts)


def webhook_answered(endpoint: str, status: int) -> None:
    """A webhook endpoint (`form`, `mailgun`, `sendgrid`, `postmark`) answered with `status`."""
    WEBHOOK_ANSWERS.labels(endpoint, str(status)).inc()


def http_request(method: str, route: str, status: int, seconds: float) -> None:
    method = method if method in _METHODS else "other"  # a client's invented verbs stay one label
    HTTP_SECONDS.labels(method, route, str(status)).observe(seconds)


Process = Callable[[int], IntakeStatus | None]


def timed_intake(process: Process) -> Process:
    """`process` (one intake event), counted by outcome and timed."""

    def run(event_id: int) -> IntakeStatus | None:
        started = perf_counter()
        try:
            status = process(event_id)
        except DatabaseUnavailable:
            INTAKE_PROCESSED.labels("database_unavailable").inc()
            raise
        except Exception:
            INTAKE_PROCESSED.labels("error").inc()
            raise
        finally:
            INTAKE_SECONDS.observe(perf_counter() - started)
        if status is not None:  # None: another worker had processed it
            INTAKE_PROCESSED.labels(status.value).inc()
        return status

    return run


def timed_intake_batch(process: Callable[[list[int]], Batch]) -> Callable[[list[int]], Batch]:
    """`process` (a batch of intake events), each event it did counted, the batch's time
    shared among them."""

    def run(event_ids: list[int]) -> Batch:
        started = perf_counter()
        try:
            batch = process(event_ids)
        except DatabaseUnavailable:
            INTAKE_PROCESSED.labels("database_unavailable").inc(len(event_ids))
            raise
        if batch.done:
            share = (perf_counter() - started) / len(batch.done)
            for status in batch.done.values():
                INTAKE_PROCESSED.labels(status.value).inc()
                INTAKE_SECONDS.observe(share)
        return batch

    return run


def timed_classification(classify: Callable[[], int]) -> Callable[[], int]:
    """`classify` (a pass over pending tickets), timed per ticket it classified."""

    def run() -> int:
        started = perf_counter()
        count = classify()
        if count:
            per_ticket = (perf_counter() - started) / count
            for _ in range(count):
                CLASSIFICATION_SECONDS.observe(per_ticket)
            CLASSIFIED.inc(count)
        return count

    return run


def webhook_delivery(outcome: str) -> None:
    """One outbound webhook attempt ended with `outcome`."""
    WEBHOOK_DELIVERIES.labels(outcome).inc()


def render(*, outbox_depth: int, oldest_pending_seconds: float = 0.0) -> bytes:
    """The Prometheus text exposition of every metric, with the outbox's depth and its oldest
    item's age just read."""
    OUTBOX_DEPTH.set(outbox_depth)
    OUTBOX_OLDEST.set(oldest_pending_seconds)
    return generate_latest(REGISTRY)
