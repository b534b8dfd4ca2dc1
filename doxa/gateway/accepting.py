"""Group commit for the SMTP edge: the messages that arrived while the last commit ran are
stored in one transaction, and each is answered once that transaction is committed.

With a transaction per message on one accepting thread, every `250` waited for the commits
queued before it: small messages from 8 clients reached 40 % of a bare aiosmtpd server that
commits each on a pooled connection of its own. A commit costs about what a small message's
INSERT does, so one commit for the group keeps up whatever the load, on one thread (which
keeps the API's share of the GIL where it was).

Nothing is answered `250` before its own row is committed. A group whose transaction fails
because the database went away answers each of its messages `451`, so senders retry; one that
fails for any other reason is stored again one message per transaction, so the message at
fault gets the 451 and the others their `250`. A Message-ID repeated within one group is
deduplicated as across groups: `Pipeline.accept` inserts with ON CONFLICT DO NOTHING, and the
transaction sees its own earlier rows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import anyio
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from doxa import metrics
from doxa.core.db import URGENT_WRITE, transaction
from doxa.core.enums import IntakeStatus
from doxa.core.intake.pipeline import Accepted, Delivery, Pipeline, message_id_of

log = logging.getLogger(__name__)


class Raw(Protocol):
    """A message's data as the edge holds it until stored (the SMTP edge's `Spool`)."""

    size: int

    def read(self) -> bytearray: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True, eq=False)
class Waiting:
    item: Delivery  # without its bytes: they are read from `raw` on the committing thread
    raw: Raw
    answer: asyncio.Future[Accepted]


class GroupCommitter:
    """Stores messages in groups, one group at a time, each in one transaction.

    `enqueue` takes over the message's `Raw` (closed once stored or refused) and gives a future
    that holds the stored event, or the exception that kept it from being stored. Each id of a
    stored event still waiting to be processed goes to `submit` after its commit, whatever
    became of the session that sent it.
    """

    def __init__(self, sessions: sessionmaker[Session], pipeline: Pipeline, *,
                 submit: Callable[[int], object], limits: tuple[int, int]) -> None:  # fmt: skip
        self.sessions, self.pipeline, self.submit = sessions, pipeline, submit
        self.max_messages, self.max_bytes = limits
        self._waiting: list[Waiting] = []
        self._running: asyncio.Task[None] | None = None
        self._thread = anyio.CapacityLimiter(1)

    def enqueue(self, item: Delivery, raw: Raw) -> asyncio.Future[Accepted]:
        loop = asyncio.get_running_loop()
        waiting = Waiting(item, raw, loop.create_future())
        self._waiting.append(waiting)
        if self._running is None:
            self._running = loop.create_task(self._run())
        return waiting.answer

    async def _run(self) -> None:
        group: list[Waiting] = []
        try:
            while self._waiting:
                group = self._take()
                try:
                    results = await anyio.to_thread.run_sync(
                        self._store, group, limiter=self._thread
                    )
                except Exception as exc:  # not expected: _store gives every failure as a result
                    log.exception("storing a group of %d messages failed", len(group))
                    results = [exc] * len(group)
                self._answer(group, results)
                metrics.smtp_group_committed(len(group))
                group = []
        finally:
            self._running = None
            # Cancelled with the listener's loop: whatever is left hears no 250.
            self._answer(group + self._waiting, None)
            self._waiting = []

    def _take(self) -> list[Waiting]:
        """What waits, oldest first, up to the group's limits (at least one message)."""
        count = size = 0
        for waiting in self._waiting:
            if count and (count == self.max_messages or size + waiting.raw.size > self.max_bytes):
                break
            count, size = count + 1, size + waiting.raw.size
        group, self._waiting = self._waiting[:count], self._waiting[count:]
        return group

    def _answer(self, group: list[Waiting], results: list[Accepted | Exception] | None) -> None:
        """Each message's answer: its stored event (sent to `submit` if it waits for processing),
        or what kept it from being stored; None: not stored."""
        for index, waiting in enumerate(group):
            waiting.raw.close()
            result = RuntimeError("not stored") if results is None else results[index]
            if isinstance(result, Accepted) and result.status is IntakeStatus.RECEIVED:
                self.submit(result.id)
            if waiting.answer.done():
                continue
            if isinstance(result, Exception):
                waiting.answer.set_exception(result)
            else:
                waiting.answer.set_result(result)

    def _store(self, group: list[Waiting]) -> list[Accepted | Exception]:
        try:
            with transaction(self.sessions) as db:
                db.connection(execution_options={URGENT_WRITE: True})  # clients wait on it
                if len(group) == 1:
                    return [self.pipeline.accept(db, self._delivery(group[0]))]
                return list(self.pipeline.accept_many(db, [self._delivery(w) for w in group]))
        except (OperationalError, InterfaceError) as lost:
            log.warning("database unavailable: %d messages answered 451 (%s)", len(group), lost)
            return [lost] * len(group)
        except Exception as exc:
            if len(group) == 1:
                log.exception("could not store a message from %s", group[0].item.envelope_from)
                return [exc]
            log.warning("a group of %d messages failed (%r); storing each alone", len(group), exc)
            return [self._store_alone(waiting) for waiting in group]

    def _store_alone(self, waiting: Waiting) -> Accepted | Exception:
        try:
            with transaction(self.sessions) as db:
                db.connection(execution_options={URGENT_WRITE: True})
                return self.pipeline.accept(db, self._delivery(waiting))
        except Exception as exc:
            log.exception("could not store a message from %s", waiting.item.envelope_from)
            return exc

    @staticmethod
    def _delivery(waiting: Waiting) -> Delivery:
        # Read here, on the committing thread, not on the listener's loop, and only while its
        # group is stored (a group holds a few MiB at most: see the lanes' limits).
        raw = waiting.raw.read()
        return replace(waiting.item, raw=raw, external_id=message_id_of(raw))
