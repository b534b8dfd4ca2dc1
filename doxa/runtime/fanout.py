"""The event streams' fan-out: one poller per process reads new events from the database and
hands each stream what its reader may see.

Reading the database (not an in-memory bus) is what makes events written by another
`doxa serve` on the same PostgreSQL reach this process's streams (within `every` seconds). The
poller reads on a thread of its own, in a short transaction, and only while some stream is
open; each batch is rendered once for staff and once for clients (`views.render`), and each
stream picks its own. A stream more than `max_behind` events behind is dropped (it may resume
with Last-Event-ID); streams are capped per user, per network and in all.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from doxa.core.db import transaction
from doxa.core.enums import Role
from doxa.core.errors import TooManyRequests
from doxa.core.events import feed, views
from doxa.core.events.feed import Position
from doxa.runtime.loops import wait_at_most

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 10


@dataclass(eq=False)
class Subscription:
    """One open stream: the events for its reader after `start`, queued by the poller."""

    user_id: int
    role: Role
    network: str
    start: Position  # the poller's place when it subscribed: it is given what comes after
    queue: deque[tuple[Position, int, str, str]] = field(default_factory=deque)
    dropped: bool = False
    reason: str = ""  # why it was dropped, for the stream's last comment
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, event: views.Rendered, max_behind: int) -> None:
        data = event.for_reader(self.role, self.user_id)
        if data is None or self.dropped:
            return
        if len(self.queue) >= max_behind:
            self.drop(f"more than {max_behind} events behind; resume with Last-Event-ID")
            return
        self.queue.append((event.place, event.id, event.type, data))
        self._ready.set()

    def drop(self, reason: str) -> None:
        self.dropped, self.reason = True, reason
        self.queue.clear()
        self._ready.set()

    async def next(self, within: float) -> tuple[Position, int, str, str] | None:
        """The next event, or None after `within` seconds without one or once dropped."""
        if not self.queue and not self.dropped:
            self._ready.clear()
            await wait_at_most(self._ready, within)
        if self.dropped or not self.queue:
            return None
        return self.queue.popleft()


class EventFanout:
    """The poller and the open streams of this process."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        total: int,
        per_user: int,
        per_network: int,
        keepalive: float = 15.0,
        every: float = 0.25,
        batch: int = 500,
        max_behind: int = 1000,
    ) -> None:
        self.sessions = sessions
        self.total, self.per_user, self.per_network = total, per_user, per_network
        self.every, self.batch, self.max_behind = every, batch, max_behind
        self.keepalive = keepalive  # seconds between a stream's comments (and reader checks)
        self._subscriptions: set[Subscription] = set()
        self._users: Counter[int] = Counter()
        self._networks: Counter[str] = Counter()
        self._place: Position | None = None  # None while no stream is open
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="event-fanout")

    @property
    def open_streams(self) -> int:
        return len(self._subscriptions)

    @property
    def dropped_streams(self) -> int:
        """Streams dropped for being too far behind that have not ended yet."""
        return sum(subscription.dropped for subscription in self._subscriptions)

    async def start(self) -> None:
        # Made afresh at each start: an app's lifespan may run again, on another loop.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="event-fanout")
        self._wanted = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._thread.shutdown(wait=True, cancel_futures=True)
        for subscription in self._subscriptions:  # their streams end at their next look
            subscription.drop("the server is stopping; resume with Last-Event-ID")

    def check(self, user_id: int, network: str) -> None:
        """TooManyRequests if one more stream for this user and network would pass a cap."""
        if len(self._subscriptions) >= self.total:
            raise TooManyRequests(
                "too many event streams are open", retry_after=RETRY_AFTER_SECONDS
            )
        if self._users[user_id] >= self.per_user:
            raise TooManyRequests(
                f"at most {self.per_user} event streams per user", retry_after=RETRY_AFTER_SECONDS
            )
        if self._networks[network] >= self.per_network:
            raise TooManyRequests(
                "too many event streams from this network", retry_after=RETRY_AFTER_SECONDS
            )

    async def subscribe(self, user_id: int, role: Role, network: str) -> Subscription:
        """A new stream, given every event after the poller's place (see `Subscription.start`);
        TooManyRequests past a cap. `unsubscribe` it when the stream ends."""
        self.check(user_id, network)
        if self._place is None:
            place = await self._run_on_thread(self._latest)
            if self._place is None:
                self._place = place
        self.check(user_id, network)  # again: others may have come while we read
        subscription = Subscription(user_id, role, network, self._place)
        self._subscriptions.add(subscription)
        self._users[user_id] += 1
        self._networks[network] += 1
        self._wanted.set()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription not in self._subscriptions:
            return
        self._subscriptions.discard(subscription)
        self._users[subscription.user_id] -= 1
        self._networks[subscription.network] -= 1
        self._users += Counter()  # drops the zeros
        self._networks += Counter()

    async def _run_on_thread(self, call: Callable[[], Position]) -> Position:
        return await asyncio.wrap_future(self._thread.submit(call))

    def _latest(self) -> Position:
        with transaction(self.sessions) as db:
            return feed.latest(db)

    def _read(self, start: Position) -> list[views.Rendered]:
        with transaction(self.sessions) as db:
            return views.render(db, feed.after(db, start, limit=self.batch))

    async def _run(self) -> None:
        while True:
            if not self._subscriptions:
                self._place = None  # a later first stream starts at the present
                self._wanted.clear()
                await self._wanted.wait()
            start = self._place
            if start is None:
                await asyncio.sleep(self.every)
                continue
            try:
                events = await asyncio.wrap_future(self._thread.submit(self._read, start))
            except Exception:
                log.exception("reading events for the streams failed; trying again")
                await asyncio.sleep(self.every)
                continue
            if self._place != start:  # every stream went and another came meanwhile
                continue
            for event in events:
                for subscription in self._subscriptions:
                    subscription.offer(event, self.max_behind)
            if events:
                self._place = events[-1].place
            if len(events) < self.batch:
                await asyncio.sleep(self.every)
