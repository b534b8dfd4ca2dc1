"""Routing rules (staff read, admins write), trying them on a ticket, and routing one now."""

from __future__ import annotations

from fastapi import APIRouter, Response

from doxa.api import problems
from doxa.api.deps import AdminUser, IdPath, SessionDep, StaffUser
from doxa.core.routing import service as rules
from doxa.core.routing.schemas import RuleCreate, RuleRead, RuleTest, RuleTestRead, RuleUpdate
from doxa.core.schemas import Page
from doxa.core.tickets.schemas import TicketRead

router = APIRouter()  # tags per route: /tickets/{id}/route is listed with the tickets


@router.get("/rules", tags=["rules"])
def list_rules(db: SessionDep, staff: StaffUser) -> Page[RuleRead]:
    """Every rule in the order they run (`position`, then id): at most 200, one page."""
    return Page(items=[RuleRead.model_validate(r) for r in rules.list_rules(db, actor=staff)])


@router.post(
    "/rules",
    tags=["rules"],
    status_code=201,
    responses=problems.errors(
        409,
        422,
        e409="There are 200 rules already",
        e422="The rule cannot be read: the detail names the path, e.g. `then[1].value: no team 42`",
    ),
)
def create_rule(body: RuleCreate, db: SessionDep, admin: AdminUser) -> RuleRead:
    """Add a rule; it runs on tickets routed from now on."""
    return RuleRead.model_validate(rules.create_rule(db, body, actor=admin))


@router.post("/rules/test", tags=["rules"], responses=problems.errors(404, e404="No such ticket"))
def test_rules(body: RuleTest, db: SessionDep, staff: StaffUser) -> RuleTestRead:
    """Which active rules match the ticket and what each would do; changes nothing."""
    return rules.dry_run(db, body.ticket_id, actor=staff)


@router.get("/rules/{rule_id}", tags=["rules"])
def get_rule(rule_id: IdPath, db: SessionDep, staff: StaffUser) -> RuleRead:
    """One rule."""
    return RuleRead.model_validate(rules.get_rule(db, rule_id, actor=staff))


@router.patch(
    "/rules/{rule_id}",
    tags=["rules"],
    responses=problems.errors(422, e422="The rule cannot be read: the detail names the path"),
)
def update_rule(rule_id: IdPath, body: RuleUpdate, db: SessionDep, admin: AdminUser) -> RuleRead:
    """Change a rule; only the fields sent change."""
    return RuleRead.model_validate(rules.update_rule(db, rule_id, body, actor=admin))


@router.delete("/rules/{rule_id}", tags=["rules"], status_code=204)
def delete_rule(rule_id: IdPath, db: SessionDep, admin: AdminUser) -> Response:
    """Delete a rule; the events of what it did keep its name."""
    rules.delete_rule(db, rule_id, actor=admin)
    return Response(status_code=204)


@router.post("/tickets/{ticket_id}/route", tags=["tickets"])
def route_ticket(ticket_id: IdPath, db: SessionDep, staff: StaffUser) -> TicketRead:
    """Run the routing rules on the ticket again now; each action is an event naming its rule."""
    return TicketRead.seen_by(rules.route_now(db, ticket_id, actor=staff), staff.role)
