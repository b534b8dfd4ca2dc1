from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from doxa.core.enums import ClassificationState
from doxa.core.models import Ticket
from doxa.core.triage.prediction import Prediction
from doxa.core.triage.service import MAX_ATTEMPTS, classify_pending
from tests.conftest import MakeTicket


class BrokenModel:
    """A model whose every prediction fails, as a corrupt blob or a dead endpoint would."""

    def predict(self, subject: str, body: str) -> Prediction:
        raise RuntimeError("model exploded")


class SureModel:
    def predict(self, subject: str, body: str) -> Prediction:
        return Prediction("bug", 0.95, "high", 0.7, "test-version")


class TestClassifyPending:
    def test_failing_model_sends_the_ticket_to_triage_and_gives_up_after_retries(
        self, db: Session, make_ticket: MakeTicket
    ) -> None:
        ticket = make_ticket()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            assert classify_pending(db, BrokenModel, threshold=0.6) == 1
            db.commit()
            stored = db.get_one(Ticket, ticket.id)
            assert stored.needs_triage and stored.classification_attempts == attempt
        assert stored.classification_state is ClassificationState.FAILED
        assert classify_pending(db, BrokenModel, threshold=0.6) == 0

    @pytest.mark.parametrize(("threshold", "applied"), [(0.9, True), (0.99, False)])
    def test_threshold_decides_whether_the_answer_is_applied(
        self, db: Session, make_ticket: MakeTicket, threshold: float, applied: bool
    ) -> None:
        ticket = make_ticket()
        classify_pending(db, SureModel, threshold=threshold)
        db.commit()
        stored = db.get_one(Ticket, ticket.id)
        assert stored.ai_category == "bug" and stored.ai_model_version == "test-version"
        assert (stored.category == "bug") is applied and stored.needs_triage is not applied
