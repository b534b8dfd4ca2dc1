from __future__ import annotations

from fastapi import APIRouter, Response

from doxa.api import problems
from doxa.api.deps import AdminUser, IdPath, SessionDep, StaffUser
from doxa.core.schemas import Page
from doxa.core.sla import service
from doxa.core.sla.schemas import SlaPolicyCreate, SlaPolicyRead, SlaPolicyUpdate

router = APIRouter(prefix="/sla-policies", tags=["sla"])


@router.get("")
def list_policies(db: SessionDep, staff: StaffUser) -> Page[SlaPolicyRead]:
    """Every SLA policy, in the order they are tried (the first active match applies)."""
    items = service.list_policies(db, actor=staff)
    return Page(items=[SlaPolicyRead.model_validate(p) for p in items])


@router.post("", status_code=201, responses=problems.errors(409, e409="Too many policies"))
def create_policy(body: SlaPolicyCreate, db: SessionDep, admin: AdminUser) -> SlaPolicyRead:
    """Add a policy: which tickets (`when`), the calendar, targets per priority, `warn_at`."""
    return SlaPolicyRead.model_validate(service.create_policy(db, body, actor=admin))


@router.get("/{policy_id}")
def get_policy(policy_id: IdPath, db: SessionDep, staff: StaffUser) -> SlaPolicyRead:
    """One SLA policy."""
    return SlaPolicyRead.model_validate(service.get_policy(db, policy_id, actor=staff))


@router.patch("/{policy_id}")
def update_policy(
    policy_id: IdPath, body: SlaPolicyUpdate, db: SessionDep, admin: AdminUser
) -> SlaPolicyRead:
    """Change a policy; tickets under it keep their due times until their priority, team or
    channel changes."""
    return SlaPolicyRead.model_validate(service.update_policy(db, policy_id, body, actor=admin))


@router.delete(
    "/{policy_id}",
    status_code=204,
    responses=problems.errors(409, e409="A ticket is under the policy (deactivate it instead)"),
)
def delete_policy(policy_id: IdPath, db: SessionDep, admin: AdminUser) -> Response:
    """Delete a policy no ticket is under."""
    service.delete_policy(db, policy_id, actor=admin)
    return Response(status_code=204)
