from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from doxa.api.deps import AdminUser, ContextDep, IdPath, SessionDep, StaffUser, TriageDep
from doxa.core.tickets.schemas import TicketRead
from doxa.core.triage import service, training

router = APIRouter(tags=["classifier"])


class ClassifierRead(BaseModel):
    version: str
    labels: dict[str, list[str]]
    training_size: int
    evaluation: dict[str, Any]
    created_at: datetime
    training: bool


class RetrainAccepted(BaseModel):
    status: str = "training"


@router.get("/classifier")
def describe(db: SessionDep, staff: StaffUser, triage: TriageDep) -> ClassifierRead:
    """The active model: version, labels, training-set size and its last evaluation."""
    return ClassifierRead(**training.describe(db, actor=staff), training=triage.training)


@router.post("/classifier/retrain", status_code=202)
def retrain(admin: AdminUser, triage: TriageDep) -> RetrainAccepted:
    """Train a new version on the seed data plus agents' corrections, in the background."""
    triage.retrain_soon()
    return RetrainAccepted()


@router.post("/tickets/{ticket_id}/classify")
def classify(
    ticket_id: IdPath, db: SessionDep, staff: StaffUser, triage: TriageDep, context: ContextDep
) -> TicketRead:
    """Classify the ticket again now; below the threshold it goes (back) to triage."""
    threshold = context.settings.ai_confidence_threshold
    ticket = service.reclassify(
        db, ticket_id, triage.local.model(db), actor=staff, threshold=threshold
    )
    return TicketRead.model_validate(ticket)
