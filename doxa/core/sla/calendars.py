"""Business time: minutes counted inside a calendar's working hours, in its time zone.

A calendar's day is its local date: `hours` name ranges of local wall-clock time per weekday,
`holidays` name local dates. Each range becomes a real interval (UTC) on its date, so a
09:00-17:00 day is 8 hours even on a daylight-saving day, and a range that crosses the change
is an hour shorter or longer, as the clock on the wall says. A time of day the change skips
(02:30 on a spring-forward night) is read with the offset before the change (zoneinfo's
`fold=0`). Sums walk the calendar a day at a time (whole days, not minutes): a due time costs
O(days it spans). `calendar=None` is around the clock.

Pure functions: no database, no clock of their own.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# A target of a year of business minutes in a calendar of one hour a week spans ~60 years: the
# walk stops there (a calendar is refused without working hours, so it never runs dry sooner).
MAX_DAYS = 366 * 100
ONE_DAY = timedelta(days=1)


class CalendarLike(Protocol):
    """What the math reads of a calendar (the `Calendar` model or anything shaped like it)."""

    @property
    def timezone(self) -> str: ...
    @property
    def hours(self) -> Mapping[str, Sequence[Sequence[str]]]: ...
    @property
    def holidays(self) -> Sequence[str]: ...


@dataclass(frozen=True, slots=True)
class Schedule:
    """A calendar compiled: its zone, per weekday the ranges in minutes of the day, holidays."""

    zone: ZoneInfo
    days: tuple[tuple[tuple[int, int], ...], ...]  # Monday first
    holidays: frozenset[date]

    def intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """The working intervals of a local date, as UTC moments, earliest first."""
        if day in self.holidays:
            return []
        return [
            (self._moment(day, start), self._moment(day, end))
            for start, end in self.days[day.weekday()]
        ]

    def _moment(self, day: date, minute: int) -> datetime:
        if minute >= 1440:
            day, minute = day + ONE_DAY, minute - 1440
        local = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=self.zone)
        return local.astimezone(UTC)

    def local_date(self, moment: datetime) -> date:
        return moment.astimezone(self.zone).date()


def minute_of_day(text: str) -> int:
    """`"09:30"` -> 570; `"24:00"` -> 1440. ValueError for anything else."""
    hours, sep, minutes = text.partition(":")
    if not sep or len(hours) != 2 or len(minutes) != 2 or not (hours + minutes).isdigit():
        raise ValueError("a time of day HH:MM")
    value = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or value > 1440:
        raise ValueError("a time of day from 00:00 to 24:00")
    return value


def schedule(calendar: CalendarLike) -> Schedule:
    """The calendar compiled (cached by its contents: an edited calendar compiles anew)."""
    hours = tuple(tuple((each[0], each[1]) for each in calendar.hours.get(day, ())) for day in DAYS)
    return _compile(calendar.timezone, hours, tuple(calendar.holidays))


@functools.lru_cache(maxsize=256)
def _compile(
    zone: str, hours: tuple[tuple[tuple[str, str], ...], ...], holidays: tuple[str, ...]
) -> Schedule:
    days = tuple(
        tuple(sorted((minute_of_day(start), minute_of_day(end)) for start, end in ranges))
        for ranges in hours
    )
    return Schedule(ZoneInfo(zone), days, frozenset(date.fromisoformat(d) for d in holidays))


def _forward(plan: Schedule, start: datetime) -> Iterator[tuple[datetime, datetime]]:
    """Working intervals from `start` on (the first one cut at `start`)."""
    day = plan.local_date(start)
    for _ in range(MAX_DAYS):
        for begin, end in plan.intervals(day):
            if end > start:
                yield max(begin, start), end
        day += ONE_DAY
    raise ValueError("no working hours within a century")


def _backward(plan: Schedule, start: datetime) -> Iterator[tuple[datetime, datetime]]:
    """Working intervals before `start`, latest first (the first one cut at `start`)."""
    day = plan.local_date(start)
    for _ in range(MAX_DAYS):
        for begin, end in reversed(plan.intervals(day)):
            if begin < start:
                yield begin, min(end, start)
        day -= ONE_DAY
    raise ValueError("no working hours within a century")


def add_business_minutes(
    calendar: CalendarLike | None, start: datetime, minutes: float
) -> datetime:
    """The moment `minutes` of business time after `start` (before it, when negative). A due
    time that ends exactly at the close of a range is that close (16:00 + 60 min -> 17:00)."""
    start = start.astimezone(UTC)
    if calendar is None or not minutes:
        return start + timedelta(minutes=minutes)
    plan = schedule(calendar)
    left = timedelta(minutes=abs(minutes))
    if minutes > 0:
        for begin, end in _forward(plan, start):
            if end - begin >= left:
                return begin + left
            left -= end - begin
    else:
        for begin, end in _backward(plan, start):
            if end - begin >= left:
                return end - left
            left -= end - begin
    raise AssertionError("unreachable: the walks raise first")  # pragma: no cover


def business_minutes_between(calendar: CalendarLike | None, a: datetime, b: datetime) -> float:
    """Business minutes from `a` to `b` (negative when `b` is earlier)."""
    a, b = a.astimezone(UTC), b.astimezone(UTC)
    if b < a:
        return -business_minutes_between(calendar, b, a)
    if calendar is None:
        return (b - a).total_seconds() / 60
    plan = schedule(calendar)
    total = timedelta()
    day, last = plan.local_date(a), plan.local_date(b)
    while day <= last:
        for begin, end in plan.intervals(day):
            overlap = min(end, b) - max(begin, a)
            if overlap > timedelta():
                total += overlap
        day += ONE_DAY
    return total.total_seconds() / 60


def in_business_hours(calendar: CalendarLike | None, moment: datetime) -> bool:
    """Whether `moment` falls inside the calendar's working hours (always, without one)."""
    if calendar is None:
        return True
    plan = schedule(calendar)
    moment = moment.astimezone(UTC)
    return any(begin <= moment < end for begin, end in plan.intervals(plan.local_date(moment)))
