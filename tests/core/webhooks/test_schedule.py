"""A day of retries on a fake clock (nothing sleeps): backoff with full jitter, Retry-After
honoured and capped, and a subscription turned off after 24 hours of failure; secrets after a
rotation."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from email.utils import format_datetime

import sqlalchemy as sa

from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.enums import WebhookDeliveryState
from doxa.core.models import OutboxItem, User
from doxa.core.outbox.sender import Outbox
from doxa.core.webhooks import service
from doxa.core.webhooks.models import Webhook, WebhookDelivery
from tests.conftest import MakeTicket
from tests.core.webhooks.conftest import Clock, send_due, signed_by, subscribe
from tests.receivers import Answer, Receiver

CREATED = ["ticket.created"]


def _state(context: Context) -> tuple[WebhookDelivery, OutboxItem]:
    with context.sessions() as db:
        delivery = db.scalars(sa.select(WebhookDelivery).order_by(WebhookDelivery.id)).one()
        return delivery, db.scalars(sa.select(OutboxItem)).one()


def _times(delivery: WebhookDelivery) -> list[datetime]:
    return [datetime.fromisoformat(attempt["at"]) for attempt in delivery.attempts]


class TestBackoff:
    def test_a_dead_receiver_is_tried_for_24_hours_then_the_subscription_is_off(
        self,
        clean: Context,
        receiver: Receiver,
        outbox: Outbox,
        clock: Clock,
        make_ticket: MakeTicket,
    ) -> None:
        hook = subscribe(clean, receiver.url, events=CREATED)
        receiver.answer(*[503] * 500)
        make_ticket()
        send_due(clean, outbox)
        for _ in range(200):
            delivery, item = _state(clean)
            if delivery.state is not WebhookDeliveryState.PENDING:
                break
            clock.offset += item.next_attempt_at - clock()
            send_due(clean, outbox)
        times = _times(delivery)
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert delivery.state is WebhookDeliveryState.FAILED
        assert times[-1] - times[0] >= timedelta(hours=24)
        for n, gap in enumerate(gaps):  # full jitter: anywhere up to 5 s * 2^n, at most 1 h
            assert gap <= min(
                timedelta(seconds=5) * 2 ** min(n, 12), timedelta(hours=1)
            ) + timedelta(seconds=1)
        assert max(gaps[:4]) < timedelta(minutes=1) < timedelta(minutes=20) < max(gaps)
        assert len({round(gap.total_seconds()) for gap in gaps}) > len(gaps) // 2  # jittered
        with clean.sessions() as db:
            stored = db.get_one(Webhook, hook.id)
        assert not stored.active and "24 hours" in (stored.disabled_reason or "")

    def test_retry_after_is_honoured_in_seconds_or_as_a_date_and_capped_at_an_hour(
        self,
        clean: Context,
        receiver: Receiver,
        outbox: Outbox,
        clock: Clock,
        make_ticket: MakeTicket,
    ) -> None:
        subscribe(clean, receiver.url, events=CREATED)
        in_ten = format_datetime(clock() + timedelta(minutes=10), usegmt=True)
        receiver.answer(
            Answer(503, {"retry-after": in_ten}),
            Answer(429, {"retry-after": "120"}),
            Answer(503, {"retry-after": "7200"}),
        )
        make_ticket()
        waits = []
        for _ in range(3):
            send_due(clean, outbox)
            delivery, item = _state(clean)
            waits.append(item.next_attempt_at - _times(delivery)[-1])
            clock.offset += item.next_attempt_at - clock()
        second = timedelta(seconds=1)  # the fake clock runs on with the real one
        assert timedelta(minutes=9) < waits[0] <= timedelta(minutes=10)
        assert abs(waits[1] - timedelta(seconds=120)) < second
        assert abs(waits[2] - timedelta(hours=1)) < second


class TestRotation:
    def test_both_secrets_sign_for_24_hours_then_only_the_new_one(
        self,
        clean: Context,
        receiver: Receiver,
        outbox: Outbox,
        clock: Clock,
        make_ticket: MakeTicket,
    ) -> None:
        hook = subscribe(clean, receiver.url, events=CREATED)
        with transaction(clean.sessions) as db:
            admin = db.scalars(sa.select(User)).one()
            new = service.rotate_secret(db, hook.id, actor=admin, now=clock()).secret
        make_ticket()
        send_due(clean, outbox)
        clock.advance(hours=24, seconds=1)
        make_ticket()
        send_due(clean, outbox)
        within, after = receiver.requests
        assert signed_by(new, within) and signed_by(hook.secret, within)
        assert signed_by(new, after) and not signed_by(hook.secret, after)
        assert (
            int(after.headers["webhook-timestamp"]) - int(within.headers["webhook-timestamp"])
            >= 86400
        )
