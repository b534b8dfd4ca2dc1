"""Rules on mail played through smtplib against the real listener: what the sender wrote is
not proof (`authenticated`), and nothing in a rule can fail intake."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from doxa.core.context import Context
from doxa.core.db import transaction, utcnow
from doxa.core.enums import IntakeStatus, Priority
from doxa.core.routing import engine
from doxa.core.teams.models import Team
from doxa.core.tickets.models import Ticket
from tests.core.routing.conftest import MakeRule, MakeTeam, cond, rule_events
from tests.gateway.conftest import Smtp, StartSmtp, message, relayed

BOSS = "boss@example.com"
PASS = "mx.ours.test; dmarc=pass header.from=example.com"
TRUSTED = {"trusted_authserv_ids": "mx.ours.test", "trusted_relays": "127.0.0.1"}


def _route_late(context: Context) -> None:
    """The fallback, as if its 10 s had passed (an injected clock)."""
    later = utcnow() + timedelta(minutes=1)
    engine.route_overdue(context.sessions, now=later)


def _latest(smtp: Smtp) -> Ticket:
    assert smtp.settle()[-1].status is IntakeStatus.TICKET_CREATED
    with smtp.context.sessions() as db:
        ticket = db.scalars(select(Ticket).order_by(Ticket.id.desc())).first()
    assert ticket is not None
    return ticket


def test_a_forged_sender_does_not_pass_a_rule_that_requires_authentication(
    start_smtp: StartSmtp, make_rule: MakeRule
) -> None:
    make_rule(
        {"set": "priority", "value": "urgent"},
        all=[cond("requester.email", "is", BOSS), cond("authenticated", "is", True)],
    )
    smtp = start_smtp(**TRUSTED)
    smtp.send(message("Call me", "Now.", sender=BOSS), sender=BOSS)
    forged = _latest(smtp)
    smtp.send(relayed(message("Call me", "Now.", sender=BOSS), PASS), sender=BOSS)
    proven = _latest(smtp)
    _route_late(smtp.context)
    with smtp.context.sessions() as db:
        forged, proven = db.get_one(Ticket, forged.id), db.get_one(Ticket, proven.id)
    assert not forged.authenticated and forged.priority is Priority.NORMAL
    assert proven.authenticated and proven.priority is Priority.URGENT


def test_a_rule_naming_a_deleted_team_never_stops_mail_becoming_a_ticket(
    start_smtp: StartSmtp, make_rule: MakeRule, make_team: MakeTeam, clean: Context
) -> None:
    billing = make_team("Billing")
    make_rule(
        {"set": "team_id", "value": billing.id},
        {"add_tag": "billing"},
        all=[cond("subject", "contains", "invoice")],
        name="invoices",
    )
    with transaction(clean.sessions) as db:
        db.delete(db.get_one(Team, billing.id))
    smtp = start_smtp()
    smtp.send(message("My invoice", "Please resend it."))
    ticket = _latest(smtp)
    _route_late(smtp.context)
    with smtp.context.sessions() as db:
        stored = db.get_one(Ticket, ticket.id)
    assert stored.routed_at is not None and stored.team_id is None
    reasons = [e.data.get("reason") for e in rule_events(clean, ticket.id)]
    assert f"no team {billing.id}" in reasons
