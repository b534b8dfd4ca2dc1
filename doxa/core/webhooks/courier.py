"""The outbox's courier for webhook deliveries: each attempt is built and signed in the outbox's
short transaction, POSTed with none open, and recorded in the delivery's log.

The body is the event as an admin reads it (`EventRead`), built from the event row at each
attempt (dispatch.py says why); each attempt is signed with its own timestamp. A 410 turns the
subscription off; so does a day in which every attempt failed.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from doxa.core.db import utcnow
from doxa.core.enums import DeliveryState, Role, WebhookDeliveryState
from doxa.core.events.models import Event
from doxa.core.outbox.failures import Failure, Undelivered, http_failure
from doxa.core.outbox.models import OutboxItem
from doxa.core.tickets.schemas import EventRead
from doxa.core.webhooks import destinations, signing
from doxa.core.webhooks.destinations import Allowed, Resolver
from doxa.core.webhooks.models import Webhook, WebhookDelivery

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024
# A field of a cut `data` is kept when its JSON is at most this long.
_KEPT_FIELD = 1024
TIMEOUT = 10.0
FAILING_FOR = timedelta(hours=24)
MAX_LOGGED_ATTEMPTS = 100  # a delivery's log keeps its latest attempts (bounded row)
_ERROR_CHARS = 500

STATE = {
    DeliveryState.QUEUED: WebhookDeliveryState.PENDING,
    DeliveryState.SENT: WebhookDeliveryState.DELIVERED,
    DeliveryState.FAILED: WebhookDeliveryState.FAILED,
}


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt as the delivery log shows it (the courier's receipt)."""

    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int

    def logged(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at.isoformat()}


def payload(event: Event) -> bytes:
    """The body: `{id, type, created_at, ticket_id, sequence, actor, data}`, at most 256 KiB;
    a larger `data` keeps its small fields and says `"truncated": true`."""
    body = EventRead.seen_by(event, Role.ADMIN).model_dump(mode="json")
    raw = _json(body)
    if len(raw) <= MAX_BODY:
        return raw
    data: dict[str, Any] = body["data"]
    kept = {key: value for key, value in data.items() if len(_json(value)) <= _KEPT_FIELD}
    body["data"] = {**kept, "truncated": True}
    raw = _json(body)
    if len(raw) > MAX_BODY:  # many small fields: only the object's id is left
        body["data"] = {"id": data.get("id"), "truncated": True}
        raw = _json(body)
    return raw


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _ignore(outcome: str) -> None:
    return None


class WebhookCourier:
    """Sends webhook deliveries; `observe` hears each outcome (delivered, retry, failed,
    disabled), `clock` is the time attempts are signed and judged by."""

    def __init__(
        self,
        *,
        allowed: Allowed,
        resolve: Resolver = destinations.system_resolver,
        clock: Callable[[], datetime] = utcnow,
        timeout: float = TIMEOUT,
        observe: Callable[[str], None] | None = None,
    ) -> None:
        self.allowed, self.resolve, self.clock = allowed, resolve, clock
        self.timeout, self.observe = timeout, observe or _ignore

    def prepare(self, db: Session, item: OutboxItem) -> Callable[[], Attempt]:
        now = self.clock()
        delivery = db.get(WebhookDelivery, item.ref_id)
        hook = db.get(Webhook, delivery.webhook_id) if delivery is not None else None
        if delivery is None or hook is None:
            return functools.partial(_not_sent, now, "the subscription was deleted")
        if not hook.active:
            return functools.partial(_not_sent, now, "the subscription is not active")
        event = db.get_one(Event, delivery.event_id)
        body = payload(event)
        keys = [hook.secret]
        if hook.previous_secret and hook.previous_secret_until and now < hook.previous_secret_until:
            keys.append(hook.previous_secret)
        headers = signing.headers(keys, str(event.id), int(now.timestamp()), body)
        return functools.partial(self._post, hook.url, body, headers, now)

    def _post(self, url: str, body: bytes, headers: dict[str, str], at: datetime) -> Attempt:
        started = time.monotonic()

        def failed(failure: Failure, status: int | None = None) -> Undelivered:
            spent = int((time.monotonic() - started) * 1000)
            return Undelivered(failure, Attempt(at, status, failure.reason[:_ERROR_CHARS], spent))

        try:
            response = destinations.post(
                url, body, headers, timeout=self.timeout, allowed=self.allowed, resolve=self.resolve
            )
        except destinations.Refused as exc:
            raise failed(Failure(True, f"refused: {exc}")) from None
        except (TimeoutError, OSError) as exc:  # ConnectionError is an OSError
            raise failed(Failure(False, f"{type(exc).__name__}: {exc}")) from None
        if 200 <= response.status < 300:
            return Attempt(at, response.status, None, response.elapsed_ms)
        failure = http_failure(response.status, dict(response.headers), now=at)
        raise failed(failure, response.status)

    def settle(self, db: Session, item: OutboxItem, receipt: object) -> None:
        delivery = db.get(WebhookDelivery, item.ref_id)
        hook = db.get(Webhook, delivery.webhook_id) if delivery is not None else None
        if delivery is None or hook is None:
            return
        delivery.state = STATE.get(item.state, WebhookDeliveryState.FAILED)
        if isinstance(receipt, Attempt):
            delivery.attempts = [*delivery.attempts, receipt.logged()][-MAX_LOGGED_ATTEMPTS:]
        outcome = {
            WebhookDeliveryState.PENDING: "retry",
            WebhookDeliveryState.DELIVERED: "delivered",
            WebhookDeliveryState.FAILED: "failed",
        }[delivery.state]
        if delivery.state is WebhookDeliveryState.DELIVERED:
            hook.failing_since = None
        elif isinstance(receipt, Attempt) and hook.active and self._give_up(hook, receipt):
            outcome = "disabled"
        self.observe(outcome)

    def _give_up(self, hook: Webhook, attempt: Attempt) -> bool:
        """After a failed attempt: whether the subscription is turned off now (a 410, or a
        day of nothing but failures)."""
        if attempt.status_code == 410:
            reason = f"the receiver answered 410 Gone at {attempt.at:%Y-%m-%dT%H:%M:%SZ}"
        elif hook.failing_since is None:
            hook.failing_since = attempt.at
            return False
        elif attempt.at - hook.failing_since >= FAILING_FOR:
            reason = f"every delivery failed for 24 hours (last: {attempt.error})"
        else:
            return False
        hook.active, hook.disabled_reason = False, reason
        log.warning("webhook %s (%s) disabled: %s", hook.id, hook.url, reason)
        return True


def _not_sent(at: datetime, reason: str) -> Attempt:
    raise Undelivered(Failure(True, reason), Attempt(at, None, f"not sent: {reason}", 0))
