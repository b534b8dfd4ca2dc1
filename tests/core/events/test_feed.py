"""The feed's order: a reader after an event never misses one that commits later."""

from __future__ import annotations

import time

from sqlalchemy.orm import Session

from doxa.core.context import Context
from doxa.core.db import backend, transaction
from doxa.core.enums import EventType
from doxa.core.events import feed
from doxa.core.events.record import SYSTEM, record


def _ping(db: Session) -> int:
    event = record(db, None, EventType.PING, actor=SYSTEM, data={})
    db.flush()
    return event.id


def _read(clean: Context, start: feed.Position = feed.START, *, wait_for: int = 0) -> list[int]:
    """The ids after `start`; waiting up to 10 s for `wait_for` of them, since on PostgreSQL any
    transaction open on the server (another test's, in another database) holds the feed back."""
    deadline = time.monotonic() + 10
    while True:
        with transaction(clean.sessions) as db:
            ids = [e.id for e in feed.after(db, start, limit=100)]
        if len(ids) >= wait_for or time.monotonic() > deadline:
            return ids
        time.sleep(0.05)


class TestOrder:
    def test_a_lower_id_that_commits_last_is_not_skipped(self, clean: Context) -> None:
        with clean.sessions() as slow:
            first = _ping(slow)  # id taken, not yet committed
            if not backend(slow).orders_commits_by_id:  # SQLite: the second writer would wait
                with transaction(clean.sessions) as fast:
                    second = _ping(fast)
                assert _read(clean) == []  # 2 is committed, but 1 may still come
            slow.commit()
        if backend(slow).orders_commits_by_id:
            with transaction(clean.sessions) as fast:
                second = _ping(fast)
        assert _read(clean, wait_for=2) == [first, second]

    def test_reading_on_from_an_event_id_gives_only_what_came_after(self, clean: Context) -> None:
        with transaction(clean.sessions) as db:
            ids = [_ping(db) for _ in range(3)]
        with transaction(clean.sessions) as db:
            start = feed.position_of(db, ids[0])
        assert _read(clean, start, wait_for=2) == ids[1:]


def _readable(clean: Context, event_id: int) -> None:
    """Wait (see _read) until the feed reaches `event_id`, the last event written."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with transaction(clean.sessions) as db:
            if feed.latest(db).id == event_id:
                return
        time.sleep(0.05)
    raise AssertionError(f"event {event_id} not readable within 10 s")


class TestConsume:
    def test_a_new_consumer_starts_at_the_present(self, clean: Context) -> None:
        with transaction(clean.sessions) as db:
            earlier = _ping(db)
        _readable(clean, earlier)
        with transaction(clean.sessions) as db:
            assert feed.consume(db, "hooks", limit=10) == []
        with transaction(clean.sessions) as db:
            later = _ping(db)
        _readable(clean, later)
        with transaction(clean.sessions) as db:
            assert [e.id for e in feed.consume(db, "hooks", limit=10)] == [later]

    def test_each_event_is_taken_once_and_consumers_are_apart(self, clean: Context) -> None:
        for name in ("hooks", "mail"):
            with transaction(clean.sessions) as db:
                feed.consume(db, name, limit=10)
        with transaction(clean.sessions) as db:
            ids = [_ping(db) for _ in range(5)]
        _readable(clean, ids[-1])
        taken: list[int] = []
        for _ in range(3):
            with transaction(clean.sessions) as db:
                taken += [e.id for e in feed.consume(db, "hooks", limit=2)]
        with transaction(clean.sessions) as db:
            other = [e.id for e in feed.consume(db, "mail", limit=10)]
        assert taken == ids and other == ids

    def test_skipping_passes_over_what_came_before_the_position_only(self, clean: Context) -> None:
        with transaction(clean.sessions) as db:
            feed.consume(db, "hooks", limit=10)
        with transaction(clean.sessions) as db:
            passed = [_ping(db) for _ in range(2)]
        _readable(clean, passed[-1])
        with transaction(clean.sessions) as db:
            upto = feed.latest(db)  # as a consumer with nobody to tell takes it
        with transaction(clean.sessions) as db:
            later = _ping(db)  # e.g. after a subscription came meanwhile
        _readable(clean, later)
        with transaction(clean.sessions) as db:
            feed.skip(db, "hooks", to=upto)
        with transaction(clean.sessions) as db:
            assert [e.id for e in feed.consume(db, "hooks", limit=10)] == [later]
