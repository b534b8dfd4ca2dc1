"""Rules: staff read them, admins write them; each one written is read whole (a 422 naming
the path of the bad part) and what it names checked. Testing and routing a ticket on demand."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from doxa.core.enums import Role
from doxa.core.errors import Conflict, InvalidInput, NotFound
from doxa.core.routing import engine
from doxa.core.routing.actions import check_then, read_then
from doxa.core.routing.conditions import Condition, When, read_when
from doxa.core.routing.models import Rule
from doxa.core.routing.schemas import (
    ActionOutcome,
    RuleCreate,
    RuleMatch,
    RuleTestRead,
    RuleUpdate,
)
from doxa.core.sla.models import Calendar
from doxa.core.tickets.access import get_readable
from doxa.core.tickets.models import Ticket
from doxa.core.users.models import User
from doxa.core.users.service import require_role

MAX_RULES = 200
STAFF = (Role.AGENT, Role.ADMIN)


def list_rules(db: Session, *, actor: User) -> list[Rule]:
    require_role(actor, *STAFF)
    return list(db.scalars(select(Rule).order_by(Rule.position, Rule.id)))


def get_rule(db: Session, rule_id: int, *, actor: User) -> Rule:
    require_role(actor, *STAFF)
    rule = db.get(Rule, rule_id)
    if rule is None:
        raise NotFound(f"rule {rule_id} not found")
    return rule


def create_rule(db: Session, data: RuleCreate, *, actor: User) -> Rule:
    require_role(actor, Role.ADMIN)
    if (db.scalar(select(func.count()).select_from(Rule)) or 0) >= MAX_RULES:
        raise Conflict(f"at most {MAX_RULES} rules; delete one first")
    rule = Rule(name=data.name, position=data.position, active=data.active, stop=data.stop)
    rule.when, rule.then = _checked(db, data.when, data.then)
    db.add(rule)
    db.flush()
    engine.forget(db)
    return rule


def update_rule(db: Session, rule_id: int, data: RuleUpdate, *, actor: User) -> Rule:
    require_role(actor, Role.ADMIN)
    rule = get_rule(db, rule_id, actor=actor)
    sent = data.model_fields_set
    for name in ("name", "position", "active", "stop"):
        value = getattr(data, name)
        if name in sent and value is None:
            raise InvalidInput(f"{name}: must not be null")
        if value is not None:
            setattr(rule, name, value)
    if "then" in sent and data.then is None:
        raise InvalidInput("then: must not be null")
    when = data.when if "when" in sent else rule.when
    rule.when, rule.then = _checked(db, when, data.then if data.then is not None else rule.then)
    db.flush()
    engine.forget(db)
    return rule


def delete_rule(db: Session, rule_id: int, *, actor: User) -> None:
    require_role(actor, Role.ADMIN)
    db.delete(get_rule(db, rule_id, actor=actor))
    db.flush()
    engine.forget(db)


def dry_run(db: Session, ticket_id: int, *, actor: User) -> RuleTestRead:
    """Which rules match the ticket and what each would do; nothing is changed."""
    require_role(actor, *STAFF)
    ticket = get_readable(db, ticket_id, actor=actor)
    matches = [
        RuleMatch(
            rule_id=match.rule.id,
            name=match.rule.name,
            position=match.rule.position,
            stop=match.rule.stop,
            actions=[
                ActionOutcome(action=step.action.as_json(), skipped=step.skipped)
                for step in match.steps
            ],
        )
        for match in engine.evaluate(db, ticket)
    ]
    return RuleTestRead(ticket_id=ticket.id, matches=matches)


def route_now(db: Session, ticket_id: int, *, actor: User) -> Ticket:
    """Run the rules on the ticket now (staff); it counts as routed from then on."""
    require_role(actor, *STAFF)
    ticket = get_readable(db, ticket_id, actor=actor, for_update=True)
    engine.claim(db, ticket)
    engine.route(db, ticket)
    return ticket


def _checked(db: Session, when: Any, then: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The rule's parts as stored: read (paths named), and what they name exists."""
    conditions = read_when(when)
    actions = read_then(then)
    _check_calendars(db, conditions)
    check_then(db, actions)
    return _when_json(conditions), [action.as_json() for action in actions]


def _check_calendars(db: Session, when: When) -> None:
    for key, group in (("all", when.all), ("any", when.any)):
        for n, condition in enumerate(group):
            if condition.field == "business_hours" and db.get(Calendar, condition.value) is None:
                raise InvalidInput(f"when.{key}[{n}].value: no calendar {condition.value}")


def _when_json(when: When) -> dict[str, Any]:
    def each(condition: Condition) -> dict[str, Any]:
        return {"field": condition.field, "op": condition.op, "value": condition.value}

    return {"all": [each(c) for c in when.all], "any": [each(c) for c in when.any]}
