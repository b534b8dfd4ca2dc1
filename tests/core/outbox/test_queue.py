"""The outbox's transactions: claim with a committed lease, record, retry, give up."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from doxa.core.context import Context
from doxa.core.db import transaction, utcnow
from doxa.core.enums import DeliveryState
from doxa.core.outbox import queue
from doxa.core.outbox.failures import Failure
from doxa.core.outbox.models import OutboxItem, OutboxKind

TICKET = OutboxKind.TICKET_MAIL


def _queue(context: Context, *destinations: str) -> list[int]:
    with transaction(context.sessions) as db:
        start = db.scalar(sa.select(sa.func.count()).select_from(OutboxItem)) or 0
        return [
            queue.enqueue(db, TICKET, ref_id, destination=destination).id
            for ref_id, destination in enumerate(destinations, start=start + 1)
        ]


def _claim(context: Context, limit: int = 10, sender: str = "one") -> list[int]:
    with transaction(context.sessions) as db:
        return queue.claim(db, sender=sender, limit=limit)


def _item(context: Context, item_id: int) -> OutboxItem:
    with context.sessions() as db:
        return db.get_one(OutboxItem, item_id)


class TestClaim:
    def test_a_destination_gets_two_sends_at_a_time_and_the_others_theirs(
        self, clean: Context
    ) -> None:
        dead = _queue(clean, *["dead.example"] * 5)
        [reset] = _queue(clean, "example.org")
        first = _claim(clean)
        assert first == [dead[0], dead[1], reset]
        assert _claim(clean) == []  # the two in flight still hold the dead domain's share

    def test_the_lease_is_committed_and_only_an_expired_one_is_claimed_again(
        self, clean: Context
    ) -> None:
        [item_id] = _queue(clean, "example.org")
        assert _claim(clean, sender="one") == [item_id]
        leased = _item(clean, item_id)
        assert leased.leased_by == "one" and leased.lease_until is not None
        assert _claim(clean, sender="two") == []
        with transaction(clean.sessions) as db:  # the sender crashed; its lease runs out
            db.execute(sa.update(OutboxItem).values(lease_until=utcnow(), next_attempt_at=utcnow()))
        assert _claim(clean, sender="two") == [item_id]
        assert _item(clean, item_id).attempts == 2

    def test_not_sent_items_never_leave(self, clean: Context) -> None:
        with transaction(clean.sessions) as db:
            queue.enqueue(db, TICKET, 1, destination="example.org", state=DeliveryState.NOT_SENT)
        assert _claim(clean) == []


class TestRecord:
    def _attempt(self, context: Context, failure: Failure | None) -> OutboxItem:
        [item_id] = _queue(context, "example.org")
        _claim(context)
        with transaction(context.sessions) as db:
            queue.record(db, db.get_one(OutboxItem, item_id), failure)
        return _item(context, item_id)

    def test_a_temporary_failure_is_retried_later_and_frees_the_lease(self, clean: Context) -> None:
        item = self._attempt(clean, Failure(False, "451 4.3.0 Try again later"))
        assert item.state is DeliveryState.QUEUED and item.lease_until is None
        assert utcnow() + timedelta(seconds=14) < item.next_attempt_at
        assert item.last_error == "451 4.3.0 Try again later"
        with clean.sessions() as db:
            assert queue.queued_count(db) == 1

    def test_a_permanent_failure_fails_at_once(self, clean: Context) -> None:
        item = self._attempt(clean, Failure(True, "554 5.7.1 refused"))
        assert (item.state, item.last_error) == (DeliveryState.FAILED, "554 5.7.1 refused")

    def test_ticket_mail_gives_up_after_five_days(self, clean: Context) -> None:
        [item_id] = _queue(clean, "example.org")
        assert _item(clean, item_id).give_up_at - _item(clean, item_id).created_at == timedelta(
            days=5
        )
        _claim(clean)
        with transaction(clean.sessions) as db:
            item = db.get_one(OutboxItem, item_id)
            item.give_up_at = utcnow() - timedelta(seconds=1)
            queue.record(db, item, Failure(False, "ConnectionRefusedError"))
        item = _item(clean, item_id)
        assert item.state is DeliveryState.FAILED
        assert item.last_error == "gave up after 1 attempts: ConnectionRefusedError"
