"""When rules run: after the first classification or its failure, the 10 s fallback (an
injected clock), a late classification, and never failing what called them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from doxa.core.context import Context
from doxa.core.enums import Priority, Role
from doxa.core.routing import engine
from doxa.core.tickets import service as tickets
from doxa.core.tickets.models import Ticket
from doxa.core.tickets.schemas import TicketUpdate
from doxa.core.triage.prediction import Prediction
from doxa.core.triage.service import classify_pending
from tests.conftest import MakeTicket, MakeUser
from tests.core.routing.conftest import MakeRule, MakeTeam, cond, rule_events


class SureModel:
    def predict(self, subject: str, body: str) -> Prediction:
        return Prediction("bug", 0.95, "high", 0.7, "test-version")


class BrokenModel:
    def predict(self, subject: str, body: str) -> Prediction:
        raise RuntimeError("model exploded")


def _ticket(context: Context, ticket_id: int) -> Ticket:
    with context.sessions() as db:
        return db.get_one(Ticket, ticket_id)


def test_first_classification_routes_by_the_ai_category(
    db: Session, clean: Context, make_ticket: MakeTicket, make_rule: MakeRule, make_team: MakeTeam
) -> None:
    bugs = make_team("Bugs")
    make_rule({"set": "team_id", "value": bugs.id}, all=[cond("ai_category", "is", "bug")])
    ticket = make_ticket()
    classify_pending(db, SureModel, threshold=0.99)  # not confident: only the suggestion
    db.commit()
    stored = _ticket(clean, ticket.id)
    assert stored.team_id == bugs.id and stored.routed_at is not None
    assert stored.category is None  # ai_category sees the suggestion whatever its confidence
    [event] = rule_events(clean, ticket.id)
    assert event.changes == {"team_id": [None, bugs.id]} and event.actor_name == "rule 0"


def test_a_failed_classification_routes_without_it(
    db: Session, clean: Context, make_ticket: MakeTicket, make_rule: MakeRule
) -> None:
    make_rule({"set": "priority", "value": "high"}, all=[cond("channel", "is", "api")])
    ticket = make_ticket()
    classify_pending(db, BrokenModel, threshold=0.6)
    db.commit()
    assert _ticket(clean, ticket.id).priority is Priority.HIGH
    classify_pending(db, BrokenModel, threshold=0.6)  # the second failure routes nothing again
    db.commit()
    assert len(rule_events(clean, ticket.id)) == 1


def test_the_fallback_routes_a_ticket_unclassified_after_10_s_once(
    clean: Context, make_ticket: MakeTicket, make_rule: MakeRule
) -> None:
    make_rule({"set": "priority", "value": "low"}, all=[cond("subject", "contains", "printer")])
    ticket = make_ticket()
    created = _ticket(clean, ticket.id).created_at
    assert engine.route_overdue(clean.sessions, now=created + timedelta(seconds=9)) == 0
    assert _ticket(clean, ticket.id).routed_at is None
    assert engine.route_overdue(clean.sessions, now=created + timedelta(seconds=11)) == 1
    assert engine.route_overdue(clean.sessions, now=created + timedelta(seconds=30)) == 0
    stored = _ticket(clean, ticket.id)
    assert stored.priority is Priority.LOW and stored.routed_at is not None
    assert len(rule_events(clean, ticket.id)) == 1


def _late(
    clean: Context, db: Session, make_ticket: MakeTicket, make_rule: MakeRule, make_team: MakeTeam
) -> tuple[Ticket, int]:
    bugs = make_team("Bugs")
    make_rule(
        {"set": "priority", "value": "low"}, all=[cond("channel", "is", "api")], name="api is low"
    )
    make_rule(
        {"set": "team_id", "value": bugs.id},
        all=[cond("ai_category", "is", "bug")],
        position=1,
        name="bugs",
    )
    ticket = make_ticket()
    created = _ticket(clean, ticket.id).created_at
    assert engine.route_overdue(clean.sessions, now=created + timedelta(seconds=11)) == 1
    return ticket, bugs.id


def test_a_late_classification_runs_the_rules_that_read_it_again(
    db: Session, clean: Context, make_ticket: MakeTicket, make_rule: MakeRule, make_team: MakeTeam
) -> None:
    ticket, bugs = _late(clean, db, make_ticket, make_rule, make_team)
    assert _ticket(clean, ticket.id).team_id is None
    classify_pending(db, SureModel, threshold=0.99)
    db.commit()
    assert _ticket(clean, ticket.id).team_id == bugs
    assert [e.actor_name for e in rule_events(clean, ticket.id)] == ["api is low", "bugs"]


def test_a_late_classification_leaves_a_ticket_staff_moved(
    db: Session,
    clean: Context,
    make_ticket: MakeTicket,
    make_rule: MakeRule,
    make_team: MakeTeam,
    make_user: MakeUser,
) -> None:
    ticket, _ = _late(clean, db, make_ticket, make_rule, make_team)
    agent = db.merge(make_user(Role.AGENT))
    tickets.update_ticket(db, ticket.id, TicketUpdate(assignee_id=agent.id), actor=agent)
    db.commit()
    classify_pending(db, SureModel, threshold=0.99)
    db.commit()
    assert _ticket(clean, ticket.id).team_id is None
    assert [e.actor_name for e in rule_events(clean, ticket.id)] == ["api is low"]


def test_a_stored_rule_that_cannot_be_read_is_skipped_alone(
    clean: Context, make_ticket: MakeTicket, make_rule: MakeRule
) -> None:
    make_rule({"set": "priority", "value": "urgent"}, all="nonsense")
    make_rule({"set": "priority", "value": "low"}, position=1)
    ticket = make_ticket()
    engine.route_overdue(
        clean.sessions, now=_ticket(clean, ticket.id).created_at + timedelta(minutes=1)
    )
    assert _ticket(clean, ticket.id).priority is Priority.LOW


def test_whatever_fails_in_a_rule_is_rolled_back_and_the_caller_goes_on(
    db: Session, make_ticket: MakeTicket, make_rule: MakeRule, caplog: pytest.LogCaptureFixture
) -> None:
    make_rule({"set": "priority", "value": "low"})
    make_rule(
        {"set": "priority", "value": "high"}, position=1, all=[cond("business_hours", "is", 1)]
    )

    def broken(calendar_id: int) -> bool:
        raise RuntimeError("calendar math exploded")

    ticket = db.merge(make_ticket())
    assert engine.claim(db, ticket)
    engine.route_safely(db, ticket, business_hours=broken)
    db.commit()
    db.refresh(ticket)
    assert ticket.priority is Priority.NORMAL and ticket.routed_at is not None
    assert "calendar math exploded" in caplog.text


def test_two_fallbacks_at_once_route_each_ticket_once(
    clean: Context, make_ticket: MakeTicket, make_rule: MakeRule
) -> None:
    """As two `doxa serve` processes' jobs would: each ticket claimed by one of them."""
    make_rule({"set": "priority", "value": "high"})
    made = [make_ticket() for _ in range(30)]
    later = _ticket(clean, made[-1].id).created_at + timedelta(minutes=1)

    def drain() -> int:
        routed = 0
        while count := engine.route_overdue(clean.sessions, now=later, limit=4):
            routed += count
        return routed

    with ThreadPoolExecutor(2) as pool:
        totals = list(pool.map(lambda _: drain(), range(2)))
    assert sum(totals) == 30
    assert all(len(rule_events(clean, ticket.id)) == 1 for ticket in made)


def test_a_late_classification_does_not_overwrite_what_a_rule_set(
    db: Session, clean: Context, make_ticket: MakeTicket, make_rule: MakeRule, make_team: MakeTeam
) -> None:
    ticket, _ = _late(clean, db, make_ticket, make_rule, make_team)  # "api is low" applied
    classify_pending(db, SureModel, threshold=0.6)  # confident: it would set "high"
    db.commit()
    stored = _ticket(clean, ticket.id)
    assert (stored.priority, stored.ai_priority) == (Priority.LOW, Priority.HIGH)
    assert stored.category == "bug"  # what no rule or person set, the classification does
