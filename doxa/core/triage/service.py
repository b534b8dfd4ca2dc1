"""Classifying tickets: claim pending ones, predict, apply when confident, else send to triage."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from doxa.core.enums import ActorType, ClassificationState, EventType, Priority, Role
from doxa.core.events.models import Event
from doxa.core.events.record import SYSTEM, record
from doxa.core.routing import engine as routing
from doxa.core.sla import clock
from doxa.core.tickets.access import get_readable
from doxa.core.tickets.models import Ticket
from doxa.core.tickets.service import first_body
from doxa.core.triage import language, similar
from doxa.core.triage.prediction import Prediction
from doxa.core.users.models import User
from doxa.core.users.service import require_role

BATCH = 20
MAX_ATTEMPTS = 3


class Classifier(Protocol):
    def predict(self, subject: str, body: str) -> Prediction: ...


def classify_pending(
    db: Session, classifier: Callable[[], Classifier], *, threshold: float, limit: int = BATCH
) -> int:
    """Classify up to `limit` pending tickets; rows other processes hold are skipped."""
    query = (
        select(Ticket)
        .where(Ticket.classification_state == ClassificationState.PENDING)
        .order_by(Ticket.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Ticket)
        # what the events' snapshots read, for the batch at once rather than a query a ticket
        .options(selectinload(Ticket.requester), selectinload(Ticket.tag_rows))
    )
    tickets = list(db.scalars(query))
    if tickets:
        model = classifier()
        for ticket in tickets:
            classify(db, ticket, model, threshold=threshold)
    db.flush()
    return len(tickets)


def classify(db: Session, ticket: Ticket, model: Classifier, *, threshold: float) -> None:
    """Predict and apply; a failing model leaves the ticket for triage, never raises."""
    ticket.classification_attempts += 1
    try:
        body = first_body(db, ticket.id)
        text = f"{ticket.subject}\n{body}"
        ticket.language, ticket.text_vector = language.detect(text), similar.vector(text)
        prediction = model.predict(ticket.subject, body)
    except Exception as exc:  # a broken model must not block intake or the queue
        changes: dict[str, list[object]] = {"error": [None, f"{exc}"[:255]]}
        if ticket.classification_attempts >= MAX_ATTEMPTS:
            _set(ticket, "classification_state", ClassificationState.FAILED, changes)
        _set(ticket, "needs_triage", True, changes)
        # A failure changes nothing the requester sees: staff's history only.
        record(db, ticket, EventType.TICKET_CLASSIFIED, actor=SYSTEM, changes=changes, public=False)
        routing.after_classification(db, ticket, failed=True)  # routed without it
        return
    apply(db, ticket, prediction, threshold=threshold)


def apply(db: Session, ticket: Ticket, prediction: Prediction, *, threshold: float) -> None:
    """Keep the suggestion; apply category and priority when confident, else send to triage.
    One `ticket.classified` event: the suggestion's fields and what it changed (a client sees
    only the latter, and only when there is one)."""
    changes: dict[str, list[object]] = {}
    _set(ticket, "ai_category", prediction.category, changes)
    _set(ticket, "ai_priority", Priority(prediction.priority), changes)
    ticket.ai_confidence = prediction.category_confidence
    ticket.ai_priority_confidence = prediction.priority_confidence
    ticket.ai_model_version = prediction.model_version
    ticket.ai_explanation = list(prediction.explanation) or None
    _set(ticket, "classification_state", ClassificationState.DONE, changes)
    confident = prediction.category_confidence >= threshold
    _set(ticket, "needs_triage", not confident, changes)
    if confident:
        decided = _decided(db, ticket)
        if "category" not in decided:
            _set(ticket, "category", ticket.pinned_category or prediction.category, changes)
        if "priority" not in decided:
            _set(ticket, "priority", Priority(prediction.priority), changes)
    public = bool({"category", "priority"} & changes.keys())
    record(db, ticket, EventType.TICKET_CLASSIFIED, actor=SYSTEM, changes=changes, public=public)
    clock.follow(db, ticket, changes)  # the label may choose another SLA policy
    routing.after_classification(db, ticket)


def _decided(db: Session, ticket: Ticket) -> set[str]:
    """Fields a routing rule or a person has already set: a classification that arrives after
    them (late, past the 10 s routing fallback) suggests, it does not overwrite."""
    query = select(Event.changes).where(
        Event.ticket_id == ticket.id,
        Event.type == EventType.TICKET_UPDATED,
        Event.actor_type.in_((ActorType.RULE, ActorType.USER)),
    )
    return {field for changes in db.scalars(query) if changes for field in changes}


def _set(ticket: Ticket, field: str, value: object, changes: dict[str, list[object]]) -> None:
    old = getattr(ticket, field)
    if old != value:
        setattr(ticket, field, value)
        changes[field] = [old, value]


def reclassify(
    db: Session, ticket_id: int, model: Classifier, *, actor: User, threshold: float
) -> Ticket:
    """Classify again now (staff): the answer replaces the suggestion."""
    require_role(actor, Role.AGENT, Role.ADMIN)
    ticket = get_readable(db, ticket_id, actor=actor, for_update=True)
    ticket.classification_attempts = 0
    classify(db, ticket, model, threshold=threshold)
    db.flush()
    return ticket
