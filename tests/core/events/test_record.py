"""record(): the per-ticket sequence under concurrent writers, and JSON-safe changes."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.enums import EventType, Priority
from doxa.core.events.models import Event
from doxa.core.events.record import SYSTEM, record
from doxa.core.tickets.models import Ticket
from tests.conftest import MakeTicket


class TestSequence:
    def test_two_writers_without_a_row_lock_never_share_a_sequence(
        self, clean: Context, make_ticket: MakeTicket
    ) -> None:
        if clean.engine.dialect.name != "postgresql":
            pytest.skip("SQLite has one writer at a time")
        ticket_id = make_ticket().id
        start = threading.Barrier(2)

        def write() -> None:
            start.wait()
            for _ in range(25):
                with transaction(clean.sessions) as db:
                    ticket = db.get_one(Ticket, ticket_id)  # read without FOR UPDATE
                    record(db, ticket, EventType.TICKET_UPDATED, actor=SYSTEM, data={})

        threads = [threading.Thread(target=write) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with clean.sessions() as db:
            query = select(Event.sequence).where(Event.ticket_id == ticket_id)
            sequences = list(db.scalars(query.order_by(Event.sequence)))
            assert db.get_one(Ticket, ticket_id).event_sequence == 52
        assert sequences == list(range(1, 53))  # created, first message, then 50

    def test_writers_of_several_events_a_transaction_never_share_one_either(
        self, clean: Context, make_ticket: MakeTicket
    ) -> None:
        """After its first event a transaction counts on without a statement; a savepoint
        rolled back (its lock released on PostgreSQL) leaves no gap and no shared number."""
        ticket_id = make_ticket().id
        start = threading.Barrier(2)

        def write() -> None:
            start.wait()
            for _ in range(10):
                with transaction(clean.sessions) as db:
                    ticket = db.get_one(Ticket, ticket_id)
                    with db.begin_nested() as savepoint:
                        record(db, ticket, EventType.TICKET_UPDATED, actor=SYSTEM, data={})
                        savepoint.rollback()
                    for _ in range(3):
                        record(db, ticket, EventType.TICKET_UPDATED, actor=SYSTEM, data={})

        threads = [threading.Thread(target=write) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with clean.sessions() as db:
            query = select(Event.sequence).where(Event.ticket_id == ticket_id)
            sequences = list(db.scalars(query.order_by(Event.sequence)))
            assert db.get_one(Ticket, ticket_id).event_sequence == 62
        assert sequences == list(range(1, 63))  # created, first message, then 60


class TestData:
    def test_changes_are_stored_as_json_and_data_is_the_ticket_after_the_change(
        self, clean: Context, make_ticket: MakeTicket
    ) -> None:
        ticket_id = make_ticket().id
        with transaction(clean.sessions) as db:
            ticket = db.get_one(Ticket, ticket_id)
            ticket.priority = Priority.URGENT
            changes: dict[str, list[object]] = {"priority": [Priority.NORMAL, Priority.URGENT]}
            record(db, ticket, EventType.TICKET_UPDATED, actor=SYSTEM, changes=changes)
        with clean.sessions() as db:
            event = db.scalars(select(Event).order_by(Event.id.desc())).first()
            ticket = db.get_one(Ticket, ticket_id)
            assert event is not None
            assert event.changes == {"priority": ["normal", "urgent"]}
            assert event.data["priority"] == "urgent"
            assert event.data["updated_at"] == ticket.updated_at.isoformat().replace("+00:00", "Z")
