from __future__ import annotations

from fastapi import APIRouter, Response

from doxa.api import problems
from doxa.api.deps import AdminUser, IdPath, SessionDep, StaffUser
from doxa.core.schemas import Page
from doxa.core.sla import service
from doxa.core.sla.schemas import CalendarCreate, CalendarRead, CalendarUpdate

router = APIRouter(prefix="/calendars", tags=["sla"])


@router.get("")
def list_calendars(db: SessionDep, staff: StaffUser) -> Page[CalendarRead]:
    """Every business-hours calendar."""
    items = service.list_calendars(db, actor=staff)
    return Page(items=[CalendarRead.model_validate(c) for c in items])


@router.post("", status_code=201, responses=problems.errors(409, e409="Too many calendars"))
def create_calendar(body: CalendarCreate, db: SessionDep, admin: AdminUser) -> CalendarRead:
    """Add a calendar: working hours per weekday in its time zone, and holidays."""
    return CalendarRead.model_validate(service.create_calendar(db, body, actor=admin))


@router.get("/{calendar_id}")
def get_calendar(calendar_id: IdPath, db: SessionDep, staff: StaffUser) -> CalendarRead:
    """One calendar."""
    return CalendarRead.model_validate(service.get_calendar(db, calendar_id, actor=staff))


@router.patch("/{calendar_id}")
def update_calendar(
    calendar_id: IdPath, body: CalendarUpdate, db: SessionDep, admin: AdminUser
) -> CalendarRead:
    """Change a calendar; due times already computed stay as they are."""
    calendar = service.update_calendar(db, calendar_id, body, actor=admin)
    return CalendarRead.model_validate(calendar)


@router.delete(
    "/{calendar_id}",
    status_code=204,
    responses=problems.errors(409, e409="A policy or rule uses the calendar"),
)
def delete_calendar(calendar_id: IdPath, db: SessionDep, admin: AdminUser) -> Response:
    """Delete a calendar that no SLA policy or rule uses."""
    service.delete_calendar(db, calendar_id, actor=admin)
    return Response(status_code=204)
