"""The outbox's three short transactions (enqueue, claim, record) and what reads its depth.

Services flush, the caller commits: `claim` and `record` are each meant to be the whole of one
short transaction, so that no transaction or row lock is open while an item is being sent.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from doxa.core.db import utcnow
from doxa.core.enums import DeliveryState
from doxa.core.outbox.failures import MAIL_BACKOFF, Backoff, Failure, retry_at
from doxa.core.outbox.models import OutboxItem, OutboxKind

log = logging.getLogger(__name__)

# How long each kind is retried: ticket mail for 5 days (SPEC); account mail's links expire
# within a day, so a later mail would carry a dead link; an agent's notification is stale
# after a few hours; a webhook delivery for at least 24 hours (SPEC), and one more, so that an
# attempt past the 24 hours of a subscription's failure sees them and turns it off
# (webhooks/courier.py).
LIFETIME = {
    OutboxKind.TICKET_MAIL: timedelta(days=5),
    OutboxKind.ACCOUNT_MAIL: timedelta(days=1),
    OutboxKind.AGENT_MAIL: timedelta(hours=6),
    OutboxKind.WEBHOOK: timedelta(hours=25),
}
# How each kind waits between attempts: a webhook receiver is retried sooner at first (a
# restart takes seconds), with full jitter (Standard Webhooks), then at most hourly.
BACKOFF = {
    OutboxKind.TICKET_MAIL: MAIL_BACKOFF,
    OutboxKind.ACCOUNT_MAIL: MAIL_BACKOFF,
    OutboxKind.AGENT_MAIL: MAIL_BACKOFF,
    OutboxKind.WEBHOOK: Backoff(timedelta(seconds=5), timedelta(hours=1), full_jitter=True),
}
# A sender holds an item this long at most; past it, a crash in flight is assumed.
LEASE = timedelta(minutes=5)
# At most this many sends at a time to one destination, across every process.
PER_DESTINATION = 2


def mail_destination(address: str) -> str:
    """A mail's destination as fairness counts it: the recipient's domain."""
    return address.rpartition("@")[2].strip().lower()[:255]


def enqueue(
    db: Session,
    kind: OutboxKind,
    ref_id: int,
    *,
    destination: str,
    state: DeliveryState = DeliveryState.QUEUED,
    now: datetime | None = None,
) -> OutboxItem:
    """Put one row's sending in the outbox, in the transaction that made the row."""
    [item] = enqueue_many(db, kind, [(ref_id, destination)], state=state, now=now)
    return item


def enqueue_many(
    db: Session,
    kind: OutboxKind,
    rows: list[tuple[int, str]],
    *,
    state: DeliveryState = DeliveryState.QUEUED,
    now: datetime | None = None,
) -> list[OutboxItem]:
    """`enqueue` for many (ref_id, destination) rows at once: one flush (one multi-row INSERT),
    not one per row (a batch of events to several subscriptions makes thousands)."""
    now = now or utcnow()
    items = [
        OutboxItem(
            kind=kind,
            ref_id=ref_id,
            destination=destination,
            state=state,
            next_attempt_at=now,
            give_up_at=now + LIFETIME[kind],
            created_at=now,
        )
        for ref_id, destination in rows
    ]
    db.add_all(items)
    db.flush()
    return items


def requeue(
    db: Session, kind: OutboxKind, ref_id: int, *, destination: str, now: datetime | None = None
) -> OutboxItem:
    """Send a failed row again, from a fresh start (attempts and lifetime)."""
    item = db.scalar(select(OutboxItem).where(OutboxItem.kind == kind, OutboxItem.ref_id == ref_id))
    if item is None:
        return enqueue(db, kind, ref_id, destination=destination, now=now)
    now = now or utcnow()
    item.state, item.attempts, item.last_error = DeliveryState.QUEUED, 0, None
    item.next_attempt_at, item.give_up_at = now, now + LIFETIME[kind]
    item.lease_until = item.leased_by = None
    db.flush()
    return item


def claim(
    db: Session,
    *,
    sender: str,
    limit: int,
    per_destination: int = PER_DESTINATION,
    kinds: Iterable[OutboxKind] | None = None,
    now: datetime | None = None,
) -> list[int]:
    """Lease up to `limit` due items (of `kinds`, default all) to `sender`, the fairest choice;
    their ids.

    Within a destination the oldest go first and at most `per_destination` are in flight (in
    every process, counting the leases already out); across destinations the first of each
    comes before the second of any, so 10,000 items to a dead domain take two senders, not all.
    On PostgreSQL the rows are locked with SKIP LOCKED, inside this short transaction only.
    """
    now = now or utcnow()
    until = now + LEASE
    due = [OutboxItem.state == DeliveryState.QUEUED, OutboxItem.next_attempt_at <= now]
    if kinds is not None:  # a process without a relay sends no mail
        due.append(OutboxItem.kind.in_(list(kinds)))
    busy = (
        select(OutboxItem.destination, func.count().label("leased"))
        .where(OutboxItem.lease_until > now, OutboxItem.state == DeliveryState.QUEUED)
        .group_by(OutboxItem.destination)
        .subquery()
    )
    rank = func.row_number().over(
        partition_by=OutboxItem.destination,
        order_by=(OutboxItem.next_attempt_at, OutboxItem.id),
    )
    ranked = (
        select(OutboxItem.id, OutboxItem.destination, rank.label("rank")).where(*due).subquery()
    )
    fairest = (
        select(ranked.c.id)
        .outerjoin(busy, busy.c.destination == ranked.c.destination)
        .where(ranked.c.rank + func.coalesce(busy.c.leased, 0) <= per_destination)
        .order_by(ranked.c.rank, ranked.c.id)
        .limit(limit)
    )
    # Checked again under the lock: another process may have leased one meanwhile (SQLite
    # ignores FOR UPDATE; its one writer serializes claims).
    free = (
        select(OutboxItem.id)
        .where(OutboxItem.id.in_(fairest), *due)
        .with_for_update(skip_locked=True)
    )
    leased = db.scalars(
        update(OutboxItem)
        .where(OutboxItem.id.in_(free))
        .values(
            lease_until=until,
            leased_by=sender,
            next_attempt_at=until,
            attempts=OutboxItem.attempts + 1,
            updated_at=now,
        )
        .returning(OutboxItem.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(leased)


def record(
    db: Session, item: OutboxItem, failure: Failure | None, *, now: datetime | None = None
) -> None:
    """The outcome of one attempt: sent, failed for good, or due again later (when the
    receiver asked, else by the kind's backoff). One log line per failure, naming the item,
    its kind, its destination and the reason."""
    now = now or utcnow()
    item.lease_until = item.leased_by = None
    if failure is None:
        item.state, item.last_error = DeliveryState.SENT, None
        log.info(
            "outbox item %s (%s %s) sent to %s", item.id, item.kind, item.ref_id, item.destination
        )
        db.flush()
        return
    item.last_error = failure.reason
    if failure.permanent or now >= item.give_up_at:
        item.state = DeliveryState.FAILED
        if not failure.permanent:
            item.last_error = f"gave up after {item.attempts} attempts: {failure.reason}"[:2000]
        outcome = "failed"
    else:
        wait = failure.retry_after
        due = (
            now + wait
            if wait is not None
            else retry_at(now, item.attempts, backoff=BACKOFF[item.kind])
        )
        item.next_attempt_at = min(due, item.give_up_at)
        outcome = f"not sent, retry at {item.next_attempt_at:%Y-%m-%dT%H:%M:%SZ}"
    log.warning(
        "outbox item %s (%s %s to %s) %s: %s",
        item.id,
        item.kind,
        item.ref_id,
        item.destination,
        outcome,
        item.last_error,
    )
    db.flush()


def withhold(db: Session, item: OutboxItem, reason: str) -> None:
    """The courier found, at send time, that the item may not go: `not_sent`, with why."""
    item.lease_until = item.leased_by = None
    item.state, item.last_error = DeliveryState.NOT_SENT, reason[:2000]
    log.info("outbox item %s (%s %s) not sent: %s", item.id, item.kind, item.ref_id, reason)
    db.flush()


def queued_count(db: Session) -> int:
    """How many items wait to be sent, every kind together (the outbox's depth)."""
    query = select(func.count()).where(OutboxItem.state == DeliveryState.QUEUED)
    return db.scalar(query) or 0


def oldest_queued_age(db: Session, *, now: datetime | None = None) -> timedelta:
    """How long the oldest item still waiting has waited (zero when none waits)."""
    query = select(func.min(OutboxItem.created_at)).where(OutboxItem.state == DeliveryState.QUEUED)
    oldest = db.scalar(query)
    return max(timedelta(0), (now or utcnow()) - oldest) if oldest is not None else timedelta(0)
