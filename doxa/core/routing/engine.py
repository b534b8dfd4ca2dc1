"""Running routing rules on a ticket (SPEC "Routing, assignment and service levels").

Active rules run in `position` order; every matching rule's actions apply, until a matching
rule with `stop`. Conditions see the ticket as it was when routing began (what `POST
/rules/test` shows is exactly what a run would do). Each applied action goes through
`tickets.service.change` with the rule as the actor; an action naming something gone (a
deleted team, a deactivated agent) is skipped and an event says so. Nothing in a rule can fail
intake: `route_safely` rolls a failing run back to its savepoint and logs one line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, func, null, select, update
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from doxa.core.db import backend, transaction, utcnow
from doxa.core.enums import EventType, Priority, Status
from doxa.core.errors import InvalidInput
from doxa.core.events.record import Actor, record
from doxa.core.routing.actions import ADD_TAG, Action, active_staff, read_then
from doxa.core.routing.conditions import BODY_CHARS, Facts, When, read_when
from doxa.core.routing.models import Rule
from doxa.core.sla.calendars import in_business_hours
from doxa.core.sla.models import Calendar
from doxa.core.teams.models import Team
from doxa.core.tickets import service as tickets
from doxa.core.tickets.models import MAX_TAGS, Message, Ticket, TicketTag
from doxa.core.triage.labels import categories
from doxa.core.users.models import User

log = logging.getLogger(__name__)

# What a late classification changes: rules reading these run again (SPEC).
CLASSIFICATION_FIELDS = frozenset({"category", "ai_category", "ai_confidence"})
# A ticket whose classification has neither come nor failed this long after it was created is
# routed without it (the Periodic job in doxa/runtime/plan.py).
FALLBACK_AFTER = timedelta(seconds=10)
FALLBACK_BATCH = 50

# calendar id -> whether that calendar is in business hours now.
BusinessHours = Callable[[int], bool]


@dataclass(frozen=True)
class CompiledRule:
    id: int
    name: str
    position: int
    when: When
    then: tuple[Action, ...]
    stop: bool
    reads: frozenset[str]


@dataclass
class Step:
    """One action of a matching rule: applied, or skipped with the reason."""

    action: Action
    skipped: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {**self.action.as_json(), "skipped": self.skipped}


@dataclass
class Match:
    """A rule that matched, and what its actions do (or would do)."""

    rule: CompiledRule
    steps: list[Step] = field(default_factory=list)


# Compiled rules by (id, updated_at): reading a rule's JSON once per version, not per ticket.
_compiled: dict[tuple[int, datetime | None], CompiledRule] = {}


def active_rules(db: Session) -> list[CompiledRule]:
    """The active rules in the order they run; one that cannot be read (written around the
    API) is left out and logged, the others still run."""
    query = select(Rule).where(Rule.active.is_(True)).order_by(Rule.position, Rule.id)
    rules = []
    for rule in db.scalars(query):
        try:
            rules.append(compiled(rule))
        except InvalidInput as exc:
            log.warning("rule %s cannot be read, skipped: %s", rule.id, exc.detail)
    return rules


def compiled(rule: Rule) -> CompiledRule:
    key = (rule.id, rule.updated_at)
    found = _compiled.get(key)
    if found is None:
        when = read_when(rule.when)
        found = CompiledRule(
            rule.id,
            rule.name,
            rule.position,
            when,
            read_then(rule.then),
            rule.stop,
            frozenset(when.reads()),
        )
        if len(_compiled) > 1000:
            _compiled.clear()
        _compiled[key] = found
    return found


def business_hours_now(db: Session, moment: datetime | None = None) -> BusinessHours:
    """`business_hours` conditions: the SLA calendars' math (doxa.core.sla.calendars
    `in_business_hours(calendar, moment)`), each calendar read once; a calendar gone is never
    in business hours."""
    at = moment or utcnow()
    seen: dict[int, bool] = {}

    def inside(calendar_id: int) -> bool:
        if calendar_id not in seen:
            calendar = db.get(Calendar, calendar_id)
            seen[calendar_id] = calendar is not None and in_business_hours(calendar, at)
        return seen[calendar_id]

    return inside


def facts_of(
    db: Session, ticket: Ticket, *, reads: Iterable[str], business_hours: BusinessHours
) -> Facts:
    """What conditions see of the ticket: one query for the requester's address and, when a
    rule reads `body`, the opening message's first BODY_CHARS characters."""
    body = None
    if "body" in reads:
        opening = select(func.substr(Message.body, 1, BODY_CHARS)).where(
            Message.ticket_id == ticket.id
        )
        body = opening.order_by(Message.id).limit(1).scalar_subquery()
    row = db.execute(
        select(User.email, body if body is not None else null()).where(
            User.id == ticket.requester_id
        )
    ).one_or_none()
    email = row[0] if row is not None else None
    values: dict[str, Any] = {
        "channel": ticket.channel,
        "mailbox": ticket.mailbox,
        "requester.email": email,
        "requester.domain": email.rpartition("@")[2] if email else None,
        "subject": ticket.subject,
        "language": ticket.language,
        "category": ticket.category,
        "ai_category": ticket.ai_category,
        "ai_confidence": ticket.ai_confidence,
        "priority": ticket.priority,
        "authenticated": ticket.authenticated,
        "body": (row[1] if row is not None else None) or "",
    }
    return Facts(values, metadata=ticket.meta or {}, in_business_hours=business_hours)


def evaluate(
    db: Session,
    ticket: Ticket,
    *,
    rules: Sequence[CompiledRule] | None = None,
    only_reading: frozenset[str] | None = None,
    business_hours: BusinessHours | None = None,
) -> list[Match]:
    """The rules that match, in order until a matching `stop`, with what each action would do.
    Changes nothing. `only_reading`: only rules whose conditions read one of these fields."""
    known = _known(db)
    rules = known.rules if rules is None else rules
    if only_reading is not None:
        rules = [rule for rule in rules if rule.reads & only_reading]
    if not rules:
        return []
    reads = frozenset().union(*(rule.reads for rule in rules))
    hours = business_hours or business_hours_now(db)
    facts = facts_of(db, ticket, reads=reads, business_hours=hours)
    matches: list[Match] = []
    checks = known.checks
    for rule in rules:
        if not rule.when.matches(facts):
            continue
        matches.append(Match(rule, [Step(a, checks.gone(a)) for a in rule.then]))
        if rule.stop:
            break
    return matches


def route(
    db: Session,
    ticket: Ticket,
    *,
    only_reading: frozenset[str] | None = None,
    business_hours: BusinessHours | None = None,
) -> list[Match]:
    """Run the rules on the ticket: each applied action an event naming the rule, each skipped
    one an event saying why."""
    matches = evaluate(db, ticket, only_reading=only_reading, business_hours=business_hours)
    apply(db, ticket, matches)
    return matches


def apply(db: Session, ticket: Ticket, matches: list[Match]) -> None:
    """The matching rules' actions, in order. Written in one flush at the end (the ticket's
    fields in one UPDATE, the events in one INSERT): each action's event otherwise flushed
    the one before it, three statements an action."""
    tags: list[str] | None = None
    with db.no_autoflush:
        for match in matches:
            actor = Actor.rule(match.rule.id, match.rule.name)
            for step in match.steps:
                if step.skipped is not None:
                    record(
                        db,
                        ticket,
                        EventType.TICKET_UPDATED,
                        actor=actor,
                        data={"skipped": step.action.as_json(), "reason": step.skipped},
                        public=False,
                    )
                elif step.action.field == ADD_TAG:
                    if tags is None:
                        query = select(TicketTag.tag).where(TicketTag.ticket_id == ticket.id)
                        tags = list(db.scalars(query))
                    if step.action.value not in tags and len(tags) < MAX_TAGS:
                        tags = [*tags, step.action.value]
                        tickets.change(db, ticket, {"tags": tags}, actor=actor)
                else:
                    tickets.change(
                        db, ticket, {step.action.field: _value(step.action)}, actor=actor
                    )
    db.flush()


def route_safely(
    db: Session,
    ticket: Ticket,
    *,
    only_reading: frozenset[str] | None = None,
    business_hours: BusinessHours | None = None,
) -> None:
    """`route`, never raising: the actions are applied in a savepoint (only when some rule
    matched), and whatever goes wrong is rolled back to it and logged; the ticket and the
    caller's work stay. The caller's transaction must have written already (`claim` does): on
    SQLite a savepoint opened first would become the transaction itself."""
    ticket_id = ticket.id
    try:
        matches = evaluate(db, ticket, only_reading=only_reading, business_hours=business_hours)
        if any(match.steps for match in matches):
            with db.begin_nested():
                apply(db, ticket, matches)
    except Exception as exc:  # a rule must never fail intake or classification
        log.warning("routing ticket %s failed, left as it was: %r", ticket_id, exc)


def claim(db: Session, ticket: Ticket, *, now: datetime | None = None) -> bool:
    """Mark the ticket routed; True for the one caller (of every process) that did it first."""
    at = now or utcnow()
    result = db.execute(
        update(Ticket)
        .where(Ticket.id == ticket.id, Ticket.routed_at.is_(None))
        .values(routed_at=at)
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], result).rowcount != 1:
        return False
    set_committed_value(ticket, "routed_at", at)
    return True


def after_classification(db: Session, ticket: Ticket, *, failed: bool = False) -> None:
    """Right after a classification (or its failure): the first routing of a new ticket; or,
    when the fallback routed it already, the rules that read the classification again, unless
    staff have moved the ticket meanwhile."""
    if claim(db, ticket):
        route_safely(db, ticket)
    elif not failed and not ticket.staff_routed:
        route_safely(db, ticket, only_reading=CLASSIFICATION_FIELDS)


def route_overdue(
    sessions: sessionmaker[Session],
    *,
    after: timedelta = FALLBACK_AFTER,
    limit: int = FALLBACK_BATCH,
    now: datetime | None = None,
) -> int:
    """Route tickets whose classification is later than `after` (the Periodic job). Rows
    another process holds (classifying them) are skipped, and the claim (routed_at still
    NULL) makes sure no ticket is routed twice, whichever process gets there."""
    at = now or utcnow()
    with transaction(sessions) as db:
        waiting = (
            select(Ticket.id)
            .where(Ticket.routed_at.is_(None), Ticket.created_at <= at - after)
            .order_by(Ticket.created_at, Ticket.id)
            .limit(limit)
        )
        ids = list(db.scalars(backend(db).skip_locked(waiting)))
        if not ids:
            return 0
        claimed = list(
            db.scalars(
                update(Ticket)
                .where(Ticket.id.in_(ids), Ticket.routed_at.is_(None))
                .values(routed_at=at)
                .returning(Ticket.id)
                .execution_options(synchronize_session=False)
            )
        )
        query = select(Ticket).where(Ticket.id.in_(claimed)).order_by(Ticket.id)
        tickets = list(db.scalars(query.execution_options(populate_existing=True)))
        for ticket in tickets:
            route_safely(db, ticket)
    return len(tickets)


@dataclass
class _Known:
    """What one transaction has read of the rules and of what they name: a batch (the
    fallback's, a classification batch) reads them once."""

    transaction: object
    rules: list[CompiledRule]
    checks: _Checks


_KNOWN = "doxa.routing.known"


def _known(db: Session) -> _Known:
    current = db.get_transaction()
    known = db.info.get(_KNOWN)
    if not isinstance(known, _Known) or known.transaction is not current:
        known = db.info[_KNOWN] = _Known(current, active_rules(db), _Checks(db))
    return known


def forget(db: Session) -> None:
    """After writing rules: the transaction reads them again."""
    db.info.pop(_KNOWN, None)


class _Checks:
    """Whether what an action names is gone, each thing looked up once per run."""

    def __init__(self, db: Session) -> None:
        self.db = db
        # The teams themselves, not only whether they exist: held here, they stay in the
        # session's (weak) identity map, so placing each ticket of the batch reads none again.
        self.teams: dict[int, Team | None] = {}
        self.staff: dict[int, bool] = {}
        self.known: tuple[str, ...] | None = None

    def gone(self, action: Action) -> str | None:
        value = action.value
        if action.field == "team_id" and value is not None:
            if value not in self.teams:
                self.teams[value] = self.db.get(Team, value)
            return None if self.teams[value] is not None else f"no team {value}"
        if action.field == "assignee_id" and value is not None:
            if value not in self.staff:
                self.staff[value] = active_staff(self.db, value)
            return None if self.staff[value] else f"user {value} is not an active agent"
        if action.field == "category":
            self.known = self.known if self.known is not None else categories(self.db)
            return None if value in self.known else f"unknown category {value!r}"
        return None


def _value(action: Action) -> object:
    if action.field == "priority":
        return Priority(action.value)
    if action.field == "status":
        return Status(action.value)
    return action.value
