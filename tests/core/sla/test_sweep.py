"""The sweep: each alarm fired once, also by two sweepers at the same moment."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import func, select

from doxa.core.context import Context
from doxa.core.db import transaction, utcnow
from doxa.core.enums import EventType, Role
from doxa.core.events.models import Event
from doxa.core.sla import sweep
from doxa.core.sla.models import SlaPolicy
from doxa.core.tickets import service as tickets
from doxa.core.tickets.models import Ticket
from doxa.core.tickets.schemas import TicketCreate
from doxa.core.users.models import User

TICKETS = 300


def _open_many(context: Context, count: int) -> None:
    with transaction(context.sessions) as db:
        db.add(SlaPolicy(name="All", targets={"normal": {"first_response": 60}}, warn_at=0.5))
        customer = User(email="ann@example.org", role=Role.CLIENT, full_name="Ann")
        db.add(customer)
        db.flush()
        for n in range(count):
            tickets.open_ticket(db, TicketCreate(subject=f"Down {n}", body="Help"), actor=customer)


def _count(context: Context, kind: EventType) -> int:
    with context.sessions() as db:
        return db.scalar(select(func.count(Event.id)).where(Event.type == str(kind))) or 0


class TestSweep:
    def test_two_sweepers_at_once_fire_each_alarm_once(self, clean: Context) -> None:
        _open_many(clean, TICKETS)
        later = utcnow() + timedelta(hours=2)
        start = threading.Barrier(2)
        fired: list[int] = []

        def sweeper() -> None:
            start.wait()
            fired.append(sweep.run(clean.sessions, now=lambda: later))

        threads = [threading.Thread(target=sweeper) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sum(fired) == 2 * TICKETS
        assert _count(clean, EventType.SLA_WARNING) == TICKETS
        assert _count(clean, EventType.SLA_BREACHED) == TICKETS
        assert sweep.run(clean.sessions, now=lambda: later + timedelta(days=1)) == 0

    def test_a_pass_reads_only_tickets_whose_alarm_has_come(self, clean: Context) -> None:
        _open_many(clean, 5)
        assert sweep.run(clean.sessions, now=utcnow) == 0
        with clean.sessions() as db:
            alarms = db.scalars(select(Ticket.sla_alarm_at)).all()
        assert all(alarm is not None and alarm > utcnow() for alarm in alarms)
