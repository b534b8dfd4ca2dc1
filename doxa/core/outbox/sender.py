"""Sending one claimed item: compose it, send it with no transaction open, record the outcome.

Plain functions over sessions, unaware of threads: doxa/runtime/outbox.py decides where and
how many of these run at once.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from doxa.core.db import transaction, utcnow
from doxa.core.enums import DeliveryState
from doxa.core.outbox import queue
from doxa.core.outbox.failures import Failure, Undelivered, classify, composition_failure
from doxa.core.outbox.models import OutboxItem, OutboxKind


class NotSent(Exception):
    """Raised by a courier's `prepare`: this item may not go (e.g. its recipient was
    deactivated since it was queued). Recorded `not_sent` with the reason; never retried."""


class Courier(Protocol):
    """What the outbox needs to know of one kind of item."""

    def prepare(self, db: Session, item: OutboxItem) -> Callable[[], object]:
        """The send, ready to run outside the transaction; raises if it cannot be composed,
        NotSent if it may not go. What it returns, or the `receipt` of the `Undelivered` it
        raises, goes to `settle`."""

    def settle(self, db: Session, item: OutboxItem, receipt: object) -> None:
        """Show the item's state on the row it sends (e.g. Message.delivery_state), with the
        send's receipt (None when there is none)."""


class Kickable(Protocol):
    """What the edges hold of the outbox's runner (doxa.runtime.outbox): a way to say, after
    a commit, that something was queued."""

    def kick(self) -> None: ...


class Outbox:
    """Claims and sends outbox items for one process; safe to call from several threads."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        couriers: Mapping[OutboxKind, Courier],
        *,
        clock: Callable[[], datetime] = utcnow,
    ):
        """`clock`: the time leases, retries and give-ups are reckoned by (tests run a day's
        schedule on a fake one)."""
        self.sessions, self.couriers, self.clock = sessions, dict(couriers), clock
        # Names this process's leases: a lease of ours that a crash left is just another one.
        self.name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    def claim(self, limit: int) -> list[int]:
        """Lease up to `limit` due items to this process (one short transaction)."""
        with transaction(self.sessions) as db:
            return queue.claim(
                db, sender=self.name, limit=limit, kinds=self.couriers, now=self.clock()
            )

    def send(self, item_id: int) -> bool:
        """Send one item leased to us; whatever happens, it is recorded and the queue moves on."""
        failure: Failure | None = None
        withheld: str | None = None
        receipt: object = None
        with transaction(self.sessions) as db:
            item = db.get(OutboxItem, item_id)
            if (
                item is None
                or item.state is not DeliveryState.QUEUED
                or item.leased_by != self.name
            ):
                return False  # sent meanwhile, or our lease expired and another process has it
            try:
                deliver = self.couriers[item.kind].prepare(db, item)
            except NotSent as exc:
                withheld = str(exc)
            except Exception as exc:  # one item's fault stays with it
                failure = composition_failure(exc)
        if failure is None and withheld is None:
            try:
                receipt = deliver()  # no transaction, no row lock: a slow one holds nothing
            except Undelivered as exc:
                failure, receipt = exc.failure, exc.receipt
            except Exception as exc:
                failure = classify(exc)
        with transaction(self.sessions) as db:
            item = db.get_one(OutboxItem, item_id)
            if item.state is DeliveryState.QUEUED:
                if withheld is not None:
                    queue.withhold(db, item, withheld)
                else:
                    queue.record(db, item, failure, now=self.clock())
                self.couriers[item.kind].settle(db, item, receipt)
        return failure is None and withheld is None
