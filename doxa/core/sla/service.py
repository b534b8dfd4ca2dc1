"""Calendars and SLA policies: staff read them, admins write them. What cannot be read is
refused with a 422 naming the path of the bad part; what a policy or ticket uses cannot be
deleted (409)."""

from __future__ import annotations

import itertools
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from doxa.core.enums import Priority, Role
from doxa.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from doxa.core.routing.conditions import read_when
from doxa.core.routing.models import Rule
from doxa.core.schemas import MAX_ID
from doxa.core.sla import policies
from doxa.core.sla.calendars import DAYS, minute_of_day
from doxa.core.sla.models import Calendar, SlaPolicy
from doxa.core.sla.schemas import CalendarCreate, CalendarUpdate, SlaPolicyCreate, SlaPolicyUpdate
from doxa.core.tickets.models import Ticket
from doxa.core.users.models import User

TARGETS = ("first_response", "next_response", "resolution")
MAX_TARGET_MINUTES = 525_600  # a year
MAX_RANGES = 24
MAX_CALENDARS = MAX_POLICIES = 100

Model = TypeVar("Model", Calendar, SlaPolicy)


def _reader(actor: User) -> None:
    if not actor.is_staff:
        raise PermissionDenied("requires role AGENT or ADMIN")


def _writer(actor: User) -> None:
    if actor.role is not Role.ADMIN:
        raise PermissionDenied("requires role ADMIN")


def _get(db: Session, model: type[Model], item_id: int, *, for_update: bool = False) -> Model:
    item = db.get(model, item_id, with_for_update=for_update)
    if item is None:
        noun = "calendar" if model is Calendar else "SLA policy"
        raise NotFound(f"{noun} {item_id} not found")
    return item


# Calendars


def list_calendars(db: Session, *, actor: User) -> list[Calendar]:
    _reader(actor)
    return list(db.scalars(select(Calendar).order_by(Calendar.id).limit(MAX_CALENDARS)))


def get_calendar(db: Session, calendar_id: int, *, actor: User) -> Calendar:
    _reader(actor)
    return _get(db, Calendar, calendar_id)


def create_calendar(db: Session, data: CalendarCreate, *, actor: User) -> Calendar:
    """A calendar of working hours; 422 without any, or with a zone or range that cannot be read."""
    _writer(actor)
    if len(list_calendars(db, actor=actor)) >= MAX_CALENDARS:
        raise Conflict(f"at most {MAX_CALENDARS} calendars")
    calendar = Calendar(name=data.name)
    _set_calendar(calendar, data, data.model_fields_set | {"timezone", "hours", "holidays"})
    db.add(calendar)
    db.flush()
    return calendar


def update_calendar(
    db: Session, calendar_id: int, data: CalendarUpdate, *, actor: User
) -> Calendar:
    _writer(actor)
    calendar = _get(db, Calendar, calendar_id, for_update=True)
    _set_calendar(
        calendar, data, {name for name in data.model_fields_set if getattr(data, name) is not None}
    )
    db.flush()
    return calendar


def delete_calendar(db: Session, calendar_id: int, *, actor: User) -> None:
    """Delete a calendar no policy and no rule uses (409 otherwise)."""
    _writer(actor)
    calendar = _get(db, Calendar, calendar_id, for_update=True)
    policy = db.scalar(select(SlaPolicy.id).where(SlaPolicy.calendar_id == calendar_id).limit(1))
    if policy is not None:
        raise Conflict(f"calendar {calendar_id} is in use by SLA policy {policy}")
    for kind, model in (("SLA policy", SlaPolicy), ("rule", Rule)):
        for item_id, when in db.execute(select(model.id, model.when)):
            if calendar_id in _calendars_named(when):
                raise Conflict(f"calendar {calendar_id} is in use by {kind} {item_id}")
    db.delete(calendar)
    db.flush()


def _calendars_named(when: Any) -> set[int]:
    try:
        return read_when(when).calendar_ids()
    except InvalidInput:
        return set()


def _set_calendar(calendar: Calendar, data: BaseModel, fields: set[str]) -> None:
    values = {name: getattr(data, name) for name in fields}
    if "name" in values:
        calendar.name = values["name"]
    if "timezone" in values:
        calendar.timezone = check_timezone(values["timezone"])
    if "hours" in values:
        calendar.hours = check_hours(values["hours"])
    if "holidays" in values:
        calendar.holidays = sorted({day.isoformat() for day in values["holidays"]})


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"timezone: {name!r} is not an IANA time zone (e.g. Europe/Berlin)"
        ) from None
    return name


def check_hours(hours: dict[str, list[list[str]]]) -> dict[str, list[list[str]]]:
    """Working ranges per weekday, each `[start, end]` with start before end, none overlapping;
    at least one range in the week."""
    checked: dict[str, list[list[str]]] = {}
    for day, ranges in hours.items():
        if day not in DAYS:
            raise InvalidInput(f"hours.{day}: not a weekday (one of {', '.join(DAYS)})")
        if len(ranges) > MAX_RANGES:
            raise InvalidInput(f"hours.{day}: at most {MAX_RANGES} ranges a day")
        spans = []
        for n, pair in enumerate(ranges):
            path = f"hours.{day}[{n}]"
            if len(pair) != 2:
                raise InvalidInput(f'{path}: a range ["HH:MM", "HH:MM"]')
            try:
                start, end = minute_of_day(pair[0]), minute_of_day(pair[1])
            except ValueError as error:
                raise InvalidInput(f"{path}: {error}") from None
            if start >= end:
                raise InvalidInput(f"{path}: starts at {pair[0]}, not before its end {pair[1]}")
            spans.append((start, end, n))
        spans.sort()
        for (_, end, _), (start, _, n) in itertools.pairwise(spans):
            if start < end:
                raise InvalidInput(f"hours.{day}[{n}]: overlaps another range of the day")
        if ranges:
            checked[day] = [
                list(pair) for pair in sorted(ranges, key=lambda p: minute_of_day(p[0]))
            ]
    if not checked:
        raise InvalidInput("hours: a calendar needs working hours (at least one range in the week)")
    return checked


# Policies


def list_policies(db: Session, *, actor: User) -> list[SlaPolicy]:
    """Every policy, in the order they are tried (`position`, then id)."""
    _reader(actor)
    query = select(SlaPolicy).order_by(SlaPolicy.position, SlaPolicy.id).limit(MAX_POLICIES)
    return list(db.scalars(query))


def get_policy(db: Session, policy_id: int, *, actor: User) -> SlaPolicy:
    _reader(actor)
    return _get(db, SlaPolicy, policy_id)


def create_policy(db: Session, data: SlaPolicyCreate, *, actor: User) -> SlaPolicy:
    """A policy; it applies to tickets created (or whose priority, team or channel changes) from
    now on, when it is the first active one whose `when` matches."""
    _writer(actor)
    if len(list_policies(db, actor=actor)) >= MAX_POLICIES:
        raise Conflict(f"at most {MAX_POLICIES} SLA policies")
    policy = SlaPolicy()
    _set_policy(db, policy, data, set(SlaPolicyCreate.model_fields))
    db.add(policy)
    db.flush()
    policies.forget(db)
    return policy


def update_policy(db: Session, policy_id: int, data: SlaPolicyUpdate, *, actor: User) -> SlaPolicy:
    _writer(actor)
    policy = _get(db, SlaPolicy, policy_id, for_update=True)
    sent = {n for n in data.model_fields_set if getattr(data, n) is not None or n == "calendar_id"}
    _set_policy(db, policy, data, sent)
    db.flush()
    policies.forget(db)
    return policy


def delete_policy(db: Session, policy_id: int, *, actor: User) -> None:
    """Delete a policy no ticket is under (409 otherwise: deactivate it instead)."""
    _writer(actor)
    policy = _get(db, SlaPolicy, policy_id, for_update=True)
    used = db.scalar(select(Ticket.id).where(Ticket.sla_policy_id == policy_id).limit(1))
    if used is not None:
        raise Conflict(f"SLA policy {policy_id} is in use by ticket {used}; deactivate it instead")
    db.delete(policy)
    db.flush()
    policies.forget(db)


def _set_policy(db: Session, policy: SlaPolicy, data: BaseModel, fields: set[str]) -> None:
    values = {name: getattr(data, name) for name in fields}
    if "when" in values:
        when = read_when(values["when"], "when")
        for calendar_id in sorted(when.calendar_ids()):
            if calendar_id > MAX_ID or db.get(Calendar, calendar_id) is None:
                raise InvalidInput(f"when: business_hours names no calendar {calendar_id}")
        policy.when = values["when"]
    if "calendar_id" in values:
        if values["calendar_id"] is not None and db.get(Calendar, values["calendar_id"]) is None:
            raise InvalidInput(f"calendar_id: no calendar {values['calendar_id']}")
        policy.calendar_id = values["calendar_id"]
    if "targets" in values:
        policy.targets = check_targets(values["targets"])
    if "warn_at" in values:
        if not 0 < values["warn_at"] < 1:
            raise InvalidInput("warn_at: a fraction of the target between 0 and 1 (e.g. 0.8)")
        policy.warn_at = values["warn_at"]
    for name in ("name", "position", "active"):
        if name in values:
            setattr(policy, name, values[name])


def check_targets(targets: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    priorities = [str(p) for p in Priority]
    for priority, minutes in targets.items():
        if priority not in priorities:
            raise InvalidInput(
                f"targets.{priority}: not a priority (one of {', '.join(priorities)})"
            )
        for target, value in minutes.items():
            path = f"targets.{priority}.{target}"
            if target not in TARGETS:
                raise InvalidInput(f"{path}: not a target (one of {', '.join(TARGETS)})")
            if not 0 < value <= MAX_TARGET_MINUTES:
                raise InvalidInput(f"{path}: minutes from 1 to {MAX_TARGET_MINUTES}")
    return {priority: dict(minutes) for priority, minutes in targets.items()}
