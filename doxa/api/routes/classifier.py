from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from doxa.api import problems
from doxa.api.deps import AdminUser, ContextDep, IdPath, SessionDep, StaffUser, TriageDep
from doxa.core.schemas import example
from doxa.core.tickets.schemas import Label, TicketRead
from doxa.core.triage import service, training

router = APIRouter(tags=["classifier"])


class ClassifierRead(BaseModel):
    version: str
    categories: list[str] = Field(description="the active taxonomy: what a ticket may carry")
    labels: dict[str, list[str]] = Field(description="what the model itself predicts")
    training_size: int
    trained_on: str = Field(description="`own data` or `seed set`")
    evaluation: dict[str, Any]
    created_at: datetime
    training: bool


class TaxonomyUpdate(BaseModel):
    # A default category: sent as it stands from Swagger, it adds nothing new.
    model_config = example(categories=["general"])

    categories: list[Label] = Field(min_length=1, max_length=100)


class TaxonomyRead(BaseModel):
    categories: list[str]


class SimilarRead(BaseModel):
    ticket: TicketRead
    similarity: float = Field(description="cosine similarity of the texts, -1 to 1")


class RetrainAccepted(BaseModel):
    status: str = "training"


@router.get(
    "/classifier", responses=problems.errors(404, e404="No classifier has been trained yet")
)
def describe(db: SessionDep, staff: StaffUser, triage: TriageDep) -> ClassifierRead:
    """The active model: version, labels, training-set size and its last evaluation."""
    return ClassifierRead(**training.describe(db, actor=staff), training=triage.training)


@router.patch("/classifier")
def add_categories(body: TaxonomyUpdate, db: SessionDep, admin: AdminUser) -> TaxonomyRead:
    """Add categories to the active taxonomy; the model learns them from agents' corrections."""
    return TaxonomyRead(categories=training.add_categories(db, body.categories, actor=admin))


@router.post(
    "/classifier/retrain",
    status_code=202,
    responses=problems.errors(409, e409="A classifier is being trained already"),
)
def retrain(admin: AdminUser, triage: TriageDep) -> RetrainAccepted:
    """Train a new version in the background on the help desk's own data (imported with
    `doxa classifier train`; the seed set while there is none) plus agents' corrections."""
    triage.retrain_soon()
    return RetrainAccepted()


@router.get("/tickets/{ticket_id}/similar")
def similar(
    ticket_id: IdPath,
    db: SessionDep,
    staff: StaffUser,
    triage: TriageDep,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> list[SimilarRead]:
    """The most similar other tickets by their text, resolved (or closed) ones first."""
    found = triage.similar.find(db, ticket_id, actor=staff, limit=limit)
    return [
        SimilarRead(ticket=TicketRead.seen_by(s.ticket, staff.role), similarity=s.similarity)
        for s in found
    ]


@router.post("/tickets/{ticket_id}/classify")
def classify(
    ticket_id: IdPath, db: SessionDep, staff: StaffUser, triage: TriageDep, context: ContextDep
) -> TicketRead:
    """Classify the ticket again now; below the threshold it goes (back) to triage."""
    threshold = context.settings.ai_confidence_threshold
    ticket = service.reclassify(
        db, ticket_id, triage.local.model(db), actor=staff, threshold=threshold
    )
    return TicketRead.seen_by(ticket, staff.role)
