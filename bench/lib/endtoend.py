"""Tickets stored and classified per second under a sustained flood, read from the database.

A post or a mail is *stored* once intake made its ticket (the `ticket` row exists) and
*classified* once `ticket.classification_state` left `pending` (`done`, or `failed` after its
attempts: what `doxa/core/triage/service.py` sets when the model answered). A thread samples
both counts, and the intake events still `received`, every second while the flood runs and
until nothing is left to do, so the figures are end to end: from the first accepted request to
the last classified ticket, whatever the service's processes and queues do in between.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import sqlalchemy as sa

COUNTS = sa.text(
    "SELECT (SELECT count(*) FROM ticket),"
    " (SELECT count(*) FROM ticket WHERE classification_state = 'pending'),"
    " (SELECT count(*) FROM intake_event),"
    " (SELECT count(*) FROM intake_event WHERE status = 'received')"
)


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # time.monotonic()
    tickets: int
    pending: int  # tickets not classified yet
    events: int
    received: int  # intake events not processed yet

    @property
    def classified(self) -> int:
        return self.tickets - self.pending


@dataclass
class Progress:
    """Samples the database every `every` seconds on a thread of its own while in `with`."""

    url: str  # an SQLAlchemy URL
    every: float = 1.0
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._engine = sa.create_engine(self.url, pool_size=2)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> Sample:
        with self._engine.connect() as db:
            row = db.execute(COUNTS).one()
        taken = Sample(time.monotonic(), *(int(n) for n in row))
        with self._lock:
            self.samples.append(taken)
        return taken

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def __enter__(self) -> Progress:
        self.sample()
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.close()

    def close(self) -> None:
        self._engine.dispose()

    def wait_done(self, events: int, stalled: float, limit: float = 0.0) -> Sample:
        """Until at least `events` intake events exist, none is `received` and no ticket is
        pending, or nothing moved for `stalled` seconds, or `limit` seconds passed (0: no
        limit): the last sample. (On a busy machine the niced worker processes may take many
        minutes; the rates after the flood are figures then, and the backlog left.)"""
        moved, seen = time.monotonic(), (-1, -1, -1)
        ends = moved + limit if limit else float("inf")
        while time.monotonic() < ends:
            last = self.sample()
            if last.events >= events and not last.received and not last.pending:
                return last
            now = (last.events, last.received, last.pending)
            if now != seen:
                moved, seen = time.monotonic(), now
            elif time.monotonic() - moved > stalled:
                return last
            time.sleep(min(self.every, 0.2))
        return self.sample()

    def figures(self, first: Sample, started: float, ended: float, accepted: int) -> dict[str, Any]:
        """From `first` (taken just before the flood started at `started`) to the end: rates
        over the flood, over its second half (the steady state, once queues have filled), the
        backlog left when it ended, and when everything accepted was stored and classified."""
        with self._lock:
            samples = sorted(self.samples, key=lambda s: s.at)
        during = [s for s in samples if first.at <= s.at <= ended] or [first]
        half = started + (ended - started) / 2
        middle = next((s for s in during if s.at >= half), during[-1])
        last = during[-1]
        seconds = max(last.at - started, 1e-9)
        final = samples[-1]  # when the wait after the flood ended

        def rate(a: Sample, b: Sample, count: str) -> float:
            span = b.at - a.at
            return round((getattr(b, count) - getattr(a, count)) / span, 1) if span > 0 else 0.0

        stored_at = self._first(samples, lambda s: s.tickets - first.tickets >= accepted)
        done_at = self._first(
            samples, lambda s: s.tickets - first.tickets >= accepted and not s.pending
        )
        return {
            "accepted": accepted,
            "stored_per_s": round((last.tickets - first.tickets) / seconds, 1),
            "classified_per_s": round((last.classified - first.classified) / seconds, 1),
            "steady_stored_per_s": rate(middle, last, "tickets"),
            "steady_classified_per_s": rate(middle, last, "classified"),
            "backlog_stored": accepted - (last.tickets - first.tickets),
            "backlog_classified": accepted - (last.classified - first.classified),
            # after the flood: the edges idle, processing no longer gives way to them
            "after_stored_per_s": rate(last, final, "tickets"),
            "after_classified_per_s": rate(last, final, "classified"),
            "waited_after_s": round(final.at - ended, 1),
            "left_stored": accepted - (final.tickets - first.tickets),
            "left_classified": accepted - (final.classified - first.classified),
            "all_stored_after_s": None if stored_at is None else round(stored_at - ended, 1),
            "all_classified_after_s": None if done_at is None else round(done_at - ended, 1),
            # accepted / (first request .. last ticket classified): the whole way through
            "end_to_end_per_s": None
            if done_at is None
            else round(accepted / (done_at - started), 1),
            "timeline": [
                [
                    round(s.at - started, 1),
                    s.tickets - first.tickets,
                    s.classified - first.classified,
                ]
                for s in samples
                if s.at >= first.at
            ],
        }

    @staticmethod
    def _first(samples: list[Sample], done: Callable[[Sample], bool]) -> float | None:
        return next((s.at for s in samples if done(s)), None)


def wait_settled(url: str, timeout: float) -> Sample:
    """Until no intake event is `received` and no ticket pending (e.g. a warm-up's tickets
    classified: a fresh install trains its first model at start, which should not be timed)."""
    progress = Progress(url)
    try:
        return progress.wait_done(0, timeout)
    finally:
        progress.close()
