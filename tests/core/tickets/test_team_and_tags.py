"""`tickets.service.change` for a ticket's team and tags, as rules and the system call it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from doxa.core.events.record import SYSTEM
from doxa.core.teams.models import Team
from doxa.core.tickets import service
from doxa.core.tickets.models import Ticket, TicketTag
from tests.conftest import MakeTicket


class TestChange:
    def test_the_team_read_after_a_move_is_the_new_one(
        self, db: Session, make_ticket: MakeTicket
    ) -> None:
        first, second = Team(name="First"), Team(name="Second")
        db.add_all([first, second])
        db.commit()  # before make_ticket's own transaction
        ticket = db.get(Ticket, make_ticket(team_id=first.id).id)
        assert ticket is not None and ticket.team is not None and ticket.team.name == "First"
        service.change(db, ticket, {"team_id": second.id}, actor=SYSTEM)
        assert ticket.team is not None and ticket.team.name == "Second"
        service.change(db, ticket, {"team_id": None}, actor=SYSTEM)
        assert ticket.team is None

    def test_tags_are_compared_as_kept_and_stored_one_row_each(
        self, db: Session, make_ticket: MakeTicket
    ) -> None:
        ticket = db.get(Ticket, make_ticket().id)
        assert ticket is not None
        assert service.change(db, ticket, {"tags": ["b", "A"]}, actor=SYSTEM) == {
            "tags": [[], ["a", "b"]]
        }
        assert service.change(db, ticket, {"tags": ["a", "B ", "b"]}, actor=SYSTEM) == {}
        service.change(db, ticket, {"tags": [*ticket.tags, "c"]}, actor=SYSTEM)  # add_tag's way
        db.flush()
        rows = db.execute(select(TicketTag.ticket_id, TicketTag.tag).order_by(TicketTag.tag))
        assert rows.all() == [(ticket.id, "a"), (ticket.id, "b"), (ticket.id, "c")]
