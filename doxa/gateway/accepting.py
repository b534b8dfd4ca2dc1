"""Group commit at the edges: what arrived while the last commit ran is stored in one
transaction, and each is answered once that transaction is committed.

With a transaction per message on one accepting thread, every `250` waited for the commits
queued before it: small messages from 8 clients reached 40 % of a bare aiosmtpd server that
commits each on a pooled connection of its own. A commit costs about what a small message's
INSERT does, so one commit for the group keeps up whatever the load, on one thread (which
keeps the API's share of the GIL where it was). Webhook posts are stored the same way, with
the keys they may use once (signatures, Idempotency-Keys, Mailgun tokens) claimed in the same
transaction: a thread hop, two statements and a commit per post had cost their endpoint 40 %
of a bare one's rate.

Nothing is answered before its own row is committed. A group whose transaction fails because
the database went away answers each of its items with that error, so senders retry; one that
fails for any other reason (a row at fault) is stored again one item per transaction, so the
item at fault gets its own answer and the others theirs. A Message-ID or body repeated within
one group is deduplicated as across groups: `Pipeline.accept` inserts with ON CONFLICT DO
NOTHING, and the transaction sees its own earlier rows.

Replays. The group's keys are claimed with one INSERT .. ON CONFLICT DO NOTHING RETURNING; a
key found taken (a retry, a replay, a race; within the group or before it) makes only its own
item leave the group: its rows are deleted in the same transaction and it gets the answer the
key's first use had (or a conflict), and the others commit together. Before, a taken key
rolled the whole group back and stored its items one per transaction: 1,500 replays of one
signed form post ran at 0.25x the rate of 1,500 distinct posts, and a legitimate client's p99
was 370 ms beside 15 replaying clients. A repeat of a key this process committed does not
even reach a group: `KeyMemory` answers it on the loop (bench/webhooks.py --replays, 16
clients on a loaded machine: 1.6x and 5.1x the distinct posts' rate in two runs, 0.8-1.4 ms of
server CPU a replay). Only a key to be claimed afresh (expired), or a leaving item whose row
may be the first of a duplicate that stays, still sends its group one item per transaction.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import delete
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from doxa.core.db import URGENT_WRITE, transaction
from doxa.core.enums import IntakeStatus
from doxa.core.errors import Conflict, DomainError
from doxa.core.intake import keys
from doxa.core.intake.models import IntakeEvent, IntakeKey
from doxa.core.intake.pipeline import Accepted, Pipeline, Submission
from doxa.runtime.threads import Background, Threads

log = logging.getLogger(__name__)

# Two lanes of one thread each, so that an item of megabytes never holds up the small ones
# behind it; large items are stored one per transaction, as their bytes, not the commit, are
# their cost. A thread per message instead held the API's p99 at 40-70 ms under 8 sending
# clients (every thread one more contender for the GIL the API needs).
GROUP_ITEM_BYTES = 256 * 1024  # larger items take the other lane
SMALL_GROUP_LIMITS = (64, 4 * 1024 * 1024)  # items and bytes in one transaction, at most
LARGE_GROUP_LIMITS = (1, 0)
# Keys this process committed, remembered so that a replay of one is answered before it joins
# a group (about 300 bytes each); forgotten a minute before the database may take them afresh.
KEYS_REMEMBERED = 16_384
REMEMBER_SECONDS = keys.KEEP.total_seconds() - 60


class Pending(Protocol):
    """An item as its edge holds it until stored (the SMTP edge's spooled message, a post)."""

    @property
    def size(self) -> int: ...

    @property
    def claims(self) -> tuple[keys.Claim, ...]:
        """Keys the item may use only once, claimed in the transaction that stores it."""
        ...

    def submission(self) -> Submission:
        """What to store, read on the committing thread."""
        ...

    def close(self) -> None: ...


class Repeated(Exception):
    """A key of this item was used before with the same body: `first` stored it. Nothing of
    the item was stored; its sender gets the first answer (or a refusal, by the edge's rule)."""

    def __init__(self, first: int) -> None:
        super().__init__(first)
        self.first = first


class NotStored(Exception):
    """The edge stopped (its loop cancelled) before the item's group was stored."""


class _Contested(Exception):
    """A key claimed in a group is to be claimed afresh, or the rows of an item that leaves the
    group may be another's first: each item alone."""


def _again(answer: Repeated | Conflict) -> Repeated | Conflict:
    """The same answer for another item (an exception instance is raised once)."""
    return Repeated(answer.first) if isinstance(answer, Repeated) else Conflict(answer.detail)


class KeyMemory:
    """The keys this process claimed and committed, newest last, with the body digest and the
    event of their first use: a repeat of an item's first key (a form's signature, a Mailgun
    token) gets its answer here, on the loop, with no database work at all. Other keys, and
    keys claimed by another process, are found taken in the group's transaction."""

    def __init__(self, size: int = KEYS_REMEMBERED) -> None:
        self.size = size
        self._keys: OrderedDict[tuple[str, str], tuple[str, int, float]] = OrderedDict()

    def remember(self, claims: tuple[keys.Claim, ...], event_id: int) -> None:
        for scope, key, body_sha256 in claims:
            self._keys.pop((scope, key), None)
            self._keys[scope, key] = (body_sha256, event_id, time.monotonic())
        while len(self._keys) > self.size:
            self._keys.popitem(last=False)

    def repeat(self, claims: tuple[keys.Claim, ...]) -> Repeated | Conflict | None:
        """The answer to an item whose first key this process committed; None: not known."""
        if not claims:
            return None
        scope, key, body_sha256 = claims[0]
        known = self._keys.get((scope, key))
        if known is None or time.monotonic() - known[2] > REMEMBER_SECONDS:
            return None
        if known[0] != body_sha256:
            return Conflict(keys.CONFLICT.format(scope))
        return Repeated(known[1])


@dataclass(frozen=True, slots=True, eq=False)
class Waiting:
    pending: Pending
    answer: asyncio.Future[Accepted]


class GroupCommitter:
    """Stores items in groups, one group at a time, each in one transaction.

    `enqueue` takes over the item (closed once stored or refused) and gives a future that
    holds the stored event, or the exception that kept it from being stored (`Repeated` for
    a key used before). Each id of a stored event still waiting to be processed goes to
    `submit` (with its size) after its commit, whatever became of the client that sent it;
    `committed` hears each group's size.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        pipeline: Pipeline,
        *,
        submit: Callable[[int, int], object],
        limits: tuple[int, int],
        committed: Callable[[int], object],
        memory: KeyMemory,
    ) -> None:
        self.sessions, self.pipeline, self.submit = sessions, pipeline, submit
        self.max_items, self.max_bytes = limits
        self.committed, self.memory = committed, memory
        self._waiting: list[Waiting] = []
        self._running = Background()  # stores the groups while items wait
        self._thread = Threads(1)  # one committing thread: groups are stored in order

    def enqueue(self, pending: Pending) -> asyncio.Future[Accepted]:
        loop = asyncio.get_running_loop()
        waiting = Waiting(pending, loop.create_future())
        self._waiting.append(waiting)
        self._running.start(self._run)
        return waiting.answer

    async def _run(self) -> None:
        group: list[Waiting] = []
        try:
            while self._waiting:
                group = self._take()
                try:
                    results = await self._thread.run(self._store, group)
                except Exception as exc:  # not expected: _store gives every failure as a result
                    log.exception("storing a group of %d items failed", len(group))
                    results = [exc] * len(group)
                self._answer(group, results)
                self.committed(len(group))
                group = []
        finally:
            # Cancelled with the edge's loop: whatever is left hears no acceptance.
            self._answer(group + self._waiting, None)
            self._waiting = []

    def _take(self) -> list[Waiting]:
        """What waits, oldest first, up to the group's limits (at least one item)."""
        count = size = 0
        for waiting in self._waiting:
            if count and (count == self.max_items or size + waiting.pending.size > self.max_bytes):
                break
            count, size = count + 1, size + waiting.pending.size
        group, self._waiting = self._waiting[:count], self._waiting[count:]
        return group

    def _answer(self, group: list[Waiting], results: list[Accepted | Exception] | None) -> None:
        """Each item's answer: its stored event (sent to `submit` if it waits for processing),
        or what kept it from being stored; None: not stored."""
        for index, waiting in enumerate(group):
            waiting.pending.close()
            result = NotStored() if results is None else results[index]
            if isinstance(result, Accepted):
                self.memory.remember(waiting.pending.claims, result.id)
                if result.status is IntakeStatus.RECEIVED:
                    self.submit(result.id, waiting.pending.size)  # its queue by size
                elif result.outcome is not None:
                    result.outcome.log()  # a repeated delivery: its outcome is final, committed
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
                    return [self._store_one(db, group[0].pending)]
                return self._store_many(db, [waiting.pending for waiting in group])
        except (OperationalError, InterfaceError) as lost:
            log.warning("database unavailable: %d items refused for now (%s)", len(group), lost)
            return [lost] * len(group)
        except Exception as exc:
            if len(group) == 1:
                return [self._failed(group[0].pending, exc)]
            if not isinstance(exc, _Contested):
                log.warning("a group of %d items failed (%r); storing each alone", len(group), exc)
            return [self._store_alone(waiting.pending) for waiting in group]

    def _store_alone(self, pending: Pending) -> Accepted | Exception:
        try:
            with transaction(self.sessions) as db:
                db.connection(execution_options={URGENT_WRITE: True})
                return self._store_one(db, pending)
        except Exception as exc:
            return self._failed(pending, exc)

    def _store_one(self, db: Session, pending: Pending) -> Accepted:
        """One item, with the exact answer for a key used before (rolls back what it stored)."""
        accepted = self.pipeline.accept(db, pending.submission())
        for claim in pending.claims:  # claimed after the insert: the common case is cheap
            first = keys.claim(db, claim, event_id=accepted.id)
            if first is not None:
                raise Repeated(first)
        return accepted

    def _store_many(self, db: Session, group: list[Pending]) -> list[Accepted | Exception]:
        accepted = self.pipeline.accept_many(db, [pending.submission() for pending in group])
        claims = [
            (claim, event.id)
            for pending, event in zip(group, accepted, strict=True)
            for claim in pending.claims
        ]
        taken = keys.claim_all(db, claims) if claims else set()
        if not taken:
            return list(accepted)
        return self._without_repeats(db, group, accepted, taken)

    def _without_repeats(
        self,
        db: Session,
        group: list[Pending],
        accepted: list[Accepted],
        taken: set[tuple[str, str, int]],
    ) -> list[Accepted | Exception]:
        """The group's answers once the items whose keys were taken have left it: each gets
        what `_store_one` would have answered it (the first answer, or a conflict), and its
        rows are deleted; the others stay stored in this transaction."""
        holders = keys.owners(db, {(scope, key) for scope, key, _ in taken})
        results: list[Accepted | Exception] = list(accepted)
        left: dict[int, Repeated | Conflict] = {}  # event ids of items that left: their answers
        for index, (pending, event) in enumerate(zip(group, accepted, strict=True)):
            claim = next((c for c in pending.claims if (c.scope, c.key, event.id) in taken), None)
            if claim is None:
                continue
            holder = holders.get((claim.scope, claim.key))
            if holder is not None and holder.intake_event_id == event.id:
                continue  # its own: never delete what was claimed for it
            if holder is None or holder.intake_event_id is None:
                raise _Contested  # expired or gone: `keys.claim` takes it afresh, alone
            if holder.body_sha256 != claim.body_sha256:
                answer: Repeated | Conflict = Conflict(keys.CONFLICT.format(claim.scope))
            elif (earlier := left.get(holder.intake_event_id)) is not None:
                answer = _again(earlier)  # the same body as an item that left before it
            else:
                answer = Repeated(holder.intake_event_id)
            results[index] = left[event.id] = answer
        stays = [event for event in accepted if event.id not in left]
        if any(event.status is IntakeStatus.DUPLICATE for event in stays) and any(
            event.status is IntakeStatus.RECEIVED for event in accepted if event.id in left
        ):
            raise _Contested  # a row that leaves may be the first of a duplicate that stays
        db.execute(delete(IntakeKey).where(IntakeKey.intake_event_id.in_(list(left))))
        db.execute(delete(IntakeEvent).where(IntakeEvent.id.in_(list(left))))
        return results

    @staticmethod
    def _failed(pending: Pending, exc: Exception) -> Exception:
        if not isinstance(exc, Repeated | DomainError | OperationalError | InterfaceError):
            log.exception("could not store an item of %d bytes", pending.size)
        return exc


class Lanes:
    """Two committers: items up to GROUP_ITEM_BYTES stored in groups, larger ones alone; a
    repeat of a key they committed is answered before either."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        pipeline: Pipeline,
        *,
        submit: Callable[[int, int], object],
        committed: Callable[[int], object],
    ) -> None:
        self.memory = KeyMemory()
        self.small, self.large = (
            GroupCommitter(
                sessions,
                pipeline,
                submit=submit,
                limits=limits,
                committed=committed,
                memory=self.memory,
            )
            for limits in (SMALL_GROUP_LIMITS, LARGE_GROUP_LIMITS)
        )

    def enqueue(self, pending: Pending) -> asyncio.Future[Accepted]:
        if (repeat := self.memory.repeat(pending.claims)) is not None:
            pending.close()
            answer: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
            answer.set_exception(repeat)
            return answer
        lane = self.large if pending.size > GROUP_ITEM_BYTES else self.small
        return lane.enqueue(pending)
