"""The clock as services drive it: the AI's label chooses the policy; staff moving a ticket's
priority keeps the time used; a customer's message while stopped counts once it runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from doxa.core.enums import Channel, Priority, Role, SlaState, Status
from doxa.core.events.record import SYSTEM
from doxa.core.sla import clock
from doxa.core.sla.models import SlaPolicy
from doxa.core.tickets import service as tickets
from doxa.core.tickets.models import Ticket
from doxa.core.tickets.schemas import TicketCreate
from doxa.core.triage.prediction import Prediction
from doxa.core.triage.service import apply
from doxa.core.users.models import User

START = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
BILLING = {"all": [{"field": "category", "op": "is", "value": "billing"}]}


def _ticket(db: Session) -> Ticket:
    customer = User(email="ann@example.org", role=Role.CLIENT, full_name="Ann")
    db.add(customer)
    db.flush()
    return tickets.open_ticket(
        db, TicketCreate(subject="Charged twice", body="Refund"), actor=customer
    )


class TestClock:
    def test_the_ais_label_chooses_the_policy(self, db: Session) -> None:
        db.add(SlaPolicy(name="Billing", when=BILLING, targets={"high": {"first_response": 30}}))
        ticket = _ticket(db)
        assert ticket.sla_policy_id is None
        prediction = Prediction("billing", 0.95, "high", 0.9, "test-1")
        apply(db, ticket, prediction, threshold=0.5)
        assert ticket.sla_state is SlaState.OK and ticket.priority is Priority.HIGH
        assert ticket.first_response_due_at is not None

    def test_a_message_while_stopped_counts_from_when_the_clock_runs(self, db: Session) -> None:
        targets = {"normal": {"first_response": 60, "next_response": 30}}
        db.add(SlaPolicy(name="All", targets=targets))
        ticket = _ticket(db)
        clock.responded(db, ticket, now=START)
        tickets.change(db, ticket, {"status": Status.PENDING}, actor=SYSTEM)
        ticket.sla_paused_at = START
        clock.customer_wrote(db, ticket, now=START + timedelta(hours=1))
        ticket.status = Status.OPEN
        clock.follow(db, ticket, {"status"}, now=START + timedelta(hours=2))
        assert ticket.next_response_due_at == START + timedelta(hours=2, minutes=30)

    def test_no_policy_left_clears_the_clock(self, db: Session) -> None:
        policy = SlaPolicy(
            name="Urgent",
            when={"all": [{"field": "priority", "op": "is", "value": "normal"}]},
            targets={"normal": {"resolution": 60}},
        )
        db.add(policy)
        ticket = _ticket(db)
        assert ticket.sla_policy_id == policy.id
        tickets.change(db, ticket, {"priority": Priority.LOW}, actor=SYSTEM)
        assert (
            ticket.sla_policy_id is None
            and ticket.sla_due_at is None
            and ticket.sla_alarm_at is None
        )

    def test_a_new_channel_chooses_the_policy_again(self, db: Session) -> None:
        mail = {"all": [{"field": "channel", "op": "is", "value": "email"}]}
        db.add(
            SlaPolicy(name="Mail", when=mail, position=0, targets={"normal": {"resolution": 30}})
        )
        db.add(SlaPolicy(name="Rest", position=1, targets={"normal": {"resolution": 600}}))
        ticket = _ticket(db)  # through the API
        assert ticket.resolution_due_at is not None
        api_due = ticket.resolution_due_at
        tickets.change(db, ticket, {"channel": Channel.EMAIL}, actor=SYSTEM)
        assert ticket.resolution_due_at is not None and ticket.resolution_due_at < api_due
