"""Business-time math: due times in a calendar's hours, across weekends, holidays and DST."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from doxa.core.sla.calendars import (
    add_business_minutes,
    business_minutes_between,
    in_business_hours,
)

BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"
OFFICE = [["09:00", "17:00"]]


@dataclass
class Cal:
    timezone: str
    hours: dict[str, list[list[str]]]
    holidays: list[str] = field(default_factory=list)


def weekdays(zone: str, ranges: list[list[str]] = OFFICE, holidays: list[str] | None = None) -> Cal:
    days = ("mon", "tue", "wed", "thu", "fri")
    return Cal(zone, {day: ranges for day in days}, holidays or [])


def every_day(zone: str, ranges: list[list[str]]) -> Cal:
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    return Cal(zone, {day: ranges for day in days})


def local(zone: str, *parts: int) -> datetime:
    year, month, day, hour, minute = parts
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone))


class TestAddBusinessMinutes:
    def test_an_hour_from_half_past_four_is_half_past_nine_the_next_working_day(self) -> None:
        due = add_business_minutes(weekdays(BERLIN), local(BERLIN, 2026, 12, 8, 16, 30), 60)
        assert due == local(BERLIN, 2026, 12, 9, 9, 30)

    def test_a_due_time_at_the_close_is_the_close(self) -> None:
        due = add_business_minutes(weekdays(BERLIN), local(BERLIN, 2026, 12, 8, 16, 0), 60)
        assert due == local(BERLIN, 2026, 12, 8, 17, 0)

    def test_before_opening_counts_from_the_opening(self) -> None:
        due = add_business_minutes(weekdays(BERLIN), local(BERLIN, 2026, 12, 8, 6, 0), 30)
        assert due == local(BERLIN, 2026, 12, 8, 9, 30)

    def test_a_friday_ticket_skips_the_weekend_and_a_monday_holiday(self) -> None:
        calendar = weekdays(BERLIN, holidays=["2026-12-14"])
        due = add_business_minutes(calendar, local(BERLIN, 2026, 12, 11, 16, 0), 120)
        assert due == local(BERLIN, 2026, 12, 15, 10, 0)

    def test_several_ranges_a_day_skip_the_lunch_break(self) -> None:
        calendar = weekdays(BERLIN, [["09:00", "12:00"], ["13:00", "17:00"]])
        due = add_business_minutes(calendar, local(BERLIN, 2026, 12, 8, 11, 30), 60)
        assert due == local(BERLIN, 2026, 12, 8, 13, 30)

    def test_around_the_clock_without_a_calendar(self) -> None:
        start = datetime(2026, 3, 28, 22, 0, tzinfo=UTC)
        assert add_business_minutes(None, start, 600) == start + timedelta(hours=10)

    def test_negative_minutes_count_back(self) -> None:
        due = add_business_minutes(weekdays(BERLIN), local(BERLIN, 2026, 12, 9, 9, 30), -60)
        assert due == local(BERLIN, 2026, 12, 8, 16, 30)

    def test_a_year_of_minutes_is_computed_by_days_not_minutes(self) -> None:
        calendar = weekdays(BERLIN, holidays=["2027-01-01"])
        due = add_business_minutes(calendar, local(BERLIN, 2026, 12, 7, 9, 0), 480 * 260)
        assert due.astimezone(ZoneInfo(BERLIN)).hour == 17


class TestDaylightSaving:
    @pytest.mark.parametrize(
        ("zone", "friday", "monday_utc_hour"),
        [
            (BERLIN, (2026, 3, 27), 8),  # Monday 10:00 CEST (UTC+2)
            (NEW_YORK, (2026, 3, 6), 14),  # Monday 10:00 EDT (UTC-4)
        ],
    )
    def test_a_friday_ticket_over_the_spring_change_is_due_at_ten_local_on_monday(
        self, zone: str, friday: tuple[int, int, int], monday_utc_hour: int
    ) -> None:
        due = add_business_minutes(weekdays(zone), local(zone, *friday, 16, 0), 120)
        assert due.astimezone(ZoneInfo(zone)).strftime("%a %H:%M") == "Mon 10:00"
        assert due.astimezone(UTC).hour == monday_utc_hour

    @pytest.mark.parametrize(
        ("zone", "friday", "monday_utc_hour"),
        [
            (BERLIN, (2026, 10, 23), 9),  # Monday 10:00 CET (UTC+1)
            (NEW_YORK, (2026, 10, 30), 15),  # Monday 10:00 EST (UTC-5)
        ],
    )
    def test_a_friday_ticket_over_the_autumn_change_is_due_at_ten_local_on_monday(
        self, zone: str, friday: tuple[int, int, int], monday_utc_hour: int
    ) -> None:
        due = add_business_minutes(weekdays(zone), local(zone, *friday, 16, 0), 120)
        assert due.astimezone(ZoneInfo(zone)).strftime("%a %H:%M") == "Mon 10:00"
        assert due.astimezone(UTC).hour == monday_utc_hour

    @pytest.mark.parametrize(
        ("zone", "day"),
        [
            (BERLIN, (2026, 3, 29)),
            (BERLIN, (2026, 10, 25)),
            (NEW_YORK, (2026, 3, 8)),
            (NEW_YORK, (2026, 11, 1)),
        ],
    )
    def test_an_office_day_on_the_change_is_eight_hours(
        self, zone: str, day: tuple[int, int, int]
    ) -> None:
        calendar = every_day(zone, OFFICE)
        assert (
            business_minutes_between(calendar, local(zone, *day, 0, 0), local(zone, *day, 23, 0))
            == 480
        )

    @pytest.mark.parametrize(
        ("zone", "day", "hours"),
        [
            (BERLIN, (2026, 3, 29), 23),
            (BERLIN, (2026, 10, 25), 25),
            (NEW_YORK, (2026, 3, 8), 23),
            (NEW_YORK, (2026, 11, 1), 25),
        ],
    )
    def test_a_whole_day_counts_the_real_hours_of_the_change(
        self, zone: str, day: tuple[int, int, int], hours: int
    ) -> None:
        calendar = every_day(zone, [["00:00", "24:00"]])
        start = local(zone, *day, 0, 0)
        assert add_business_minutes(calendar, start, hours * 60) == local(
            zone, *day, 0, 0
        ) + timedelta(days=1)

    @pytest.mark.parametrize(("day", "minutes"), [((2026, 3, 29), 120), ((2026, 10, 25), 240)])
    def test_a_range_across_the_change_is_as_long_as_the_wall_clock_says(
        self, day: tuple[int, int, int], minutes: int
    ) -> None:
        calendar = every_day(BERLIN, [["01:00", "04:00"]])
        start = local(BERLIN, *day, 0, 0)
        assert business_minutes_between(calendar, start, start + timedelta(hours=8)) == minutes


class TestBetweenAndInHours:
    def test_between_counts_only_working_time(self) -> None:
        calendar = weekdays(BERLIN)
        friday, monday = local(BERLIN, 2026, 12, 11, 16, 0), local(BERLIN, 2026, 12, 14, 10, 0)
        assert business_minutes_between(calendar, friday, monday) == 120
        assert business_minutes_between(calendar, monday, friday) == -120

    def test_between_is_add_reversed(self) -> None:
        calendar = weekdays(NEW_YORK, [["08:00", "12:00"], ["13:00", "18:30"]], ["2026-11-26"])
        start = local(NEW_YORK, 2026, 10, 29, 17, 45)
        for minutes in (1, 59, 600, 5000):
            due = add_business_minutes(calendar, start, minutes)
            assert business_minutes_between(calendar, start, due) == minutes

    def test_in_business_hours_reads_the_local_time_and_holidays(self) -> None:
        calendar = weekdays(BERLIN, holidays=["2026-12-25"])
        assert in_business_hours(calendar, datetime(2026, 12, 8, 8, 30, tzinfo=UTC))  # 09:30
        assert not in_business_hours(calendar, datetime(2026, 12, 8, 16, 30, tzinfo=UTC))
        assert not in_business_hours(calendar, local(BERLIN, 2026, 12, 25, 10, 0))
        assert in_business_hours(None, datetime(2026, 12, 25, 3, 0, tzinfo=UTC))
