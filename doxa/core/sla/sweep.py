"""The service-level sweep: each warning and breach as an event, once, soon after its moment.

A pass reads only the tickets whose `sla_alarm_at` has come (its index; never the table) and
claims them with one `UPDATE … WHERE sla_alarm_at <= now RETURNING id` (firing moves a ticket's
alarm past now, or clears it), so of several processes sweeping at once one fires a ticket's
alarm and the others pass it by. On PostgreSQL the read
also skips rows another transaction holds (FOR UPDATE SKIP LOCKED): a sweeper never waits on
a ticket an agent is changing, it takes it on its next pass. Run every ~10 s
(doxa/runtime/plan.py), an event comes well within the 60 s SPEC allows.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from doxa.core.db import backend, transaction, utcnow
from doxa.core.enums import EventType
from doxa.core.events.record import SYSTEM, record
from doxa.core.sla import clock
from doxa.core.tickets.models import Ticket

BATCH = 500
EVENT = {clock.WARNING: EventType.SLA_WARNING, clock.BREACHED: EventType.SLA_BREACHED}


def sweep(db: Session, *, now: datetime) -> tuple[int, int]:
    """Fire what has come due at `now` on up to BATCH tickets: (events recorded, tickets read)."""
    query = (
        select(Ticket).where(Ticket.sla_alarm_at <= now).order_by(Ticket.sla_alarm_at).limit(BATCH)
    )
    tickets = list(db.scalars(backend(db).skip_locked(query)))
    if not tickets:
        return 0, 0
    # One statement claims the batch: a ticket another sweeper fired meanwhile has its next
    # alarm (later, or none) and is left out.
    claim = (
        update(Ticket)
        .where(Ticket.id.in_([t.id for t in tickets]), Ticket.sla_alarm_at <= now)
        .values(sla_alarm_at=None)
        .returning(Ticket.id)
        .execution_options(synchronize_session=False)
    )
    with db.no_autoflush:  # the ticket rows are written once, with the events, at the end
        claimed = set(db.scalars(claim))
        terms: dict[int, clock.Terms | None] = {}  # each policy read once a pass
        fired = sum(_ring(db, t, now, terms) for t in tickets if t.id in claimed)
    db.flush()
    return fired, len(tickets)


def _ring(db: Session, ticket: Ticket, now: datetime, known: dict[int, clock.Terms | None]) -> int:
    """The ticket's alarms that have come, as events (the ticket is this sweeper's)."""
    set_committed_value(ticket, "sla_alarm_at", None)
    key = ticket.sla_policy_id or 0
    if key not in known:
        known[key] = clock.terms_of(db, ticket)
    terms = known[key]
    if terms is None:
        return 0
    come = [alarm for alarm in clock.alarms(terms, ticket) if alarm[0] <= now]
    fired = list(ticket.sla_warned or [])
    breached = list(ticket.sla_breached or [])
    for _moment, kind, target in come:
        fired.append(f"{kind}:{target}")
        if kind == clock.BREACHED and target not in breached:
            breached.append(target)
    ticket.sla_warned, ticket.sla_breached = fired, breached
    clock.refresh(db, ticket, now, terms)
    for moment, kind, target in come:
        data = {
            "target": target,
            "due_at": clock.running(ticket).get(target, moment).isoformat(),
            "at": moment.isoformat(),
            "policy_id": terms.policy.id,
            "state": str(ticket.sla_state),
        }
        record(db, ticket, EVENT[kind], actor=SYSTEM, data=data, public=False)
    return len(come)


def run(sessions: sessionmaker[Session], *, now: Callable[[], datetime] = utcnow) -> int:
    """Sweep until nothing more has come (a transaction per batch); the events recorded."""
    total = 0
    while True:
        with transaction(sessions) as db:
            fired, read = sweep(db, now=now())
        total += fired
        if read < BATCH:
            return total
