"""doxa.metrics: the wrappers the execution plan puts around background work, and the
counter the webhook edge increments."""

from __future__ import annotations

import pytest

from doxa import metrics
from doxa.core.enums import IntakeStatus
from doxa.core.intake.processing import DatabaseUnavailable
from tests.api.test_metrics import sample


def _now() -> str:
    return metrics.render(outbox_depth=3).decode()


class TestTimedIntake:
    def test_outcomes_are_counted_and_a_lost_database_too(self) -> None:
        before = _now()

        def lost(event_id: int) -> IntakeStatus | None:
            raise DatabaseUnavailable("gone")

        assert metrics.timed_intake(lambda _: IntakeStatus.HELD)(1) is IntakeStatus.HELD
        with pytest.raises(DatabaseUnavailable):
            metrics.timed_intake(lost)(2)
        after = _now()
        name = "doxa_intake_processed_total"
        for outcome in ("held", "database_unavailable"):
            assert sample(after, name, outcome=outcome) - sample(before, name, outcome=outcome) == 1
        timed = "doxa_intake_processing_seconds_count"
        assert sample(after, timed) - sample(before, timed) == 2
        assert sample(after, "doxa_outbox_depth") == 3


class TestTimedClassification:
    def test_each_classified_ticket_is_one_observation(self) -> None:
        before = _now()
        assert metrics.timed_classification(lambda: 4)() == 4
        assert metrics.timed_classification(lambda: 0)() == 0
        after = _now()
        for name in ("doxa_classification_seconds_count", "doxa_classified_tickets_total"):
            assert sample(after, name) - sample(before, name) == 4


class TestWebhookAnswered:
    def test_answers_are_counted_by_endpoint_and_status(self) -> None:
        before = _now()
        metrics.webhook_answered("mailgun", 406)
        after = _now()
        labels = {"endpoint": "mailgun", "status": "406"}
        name = "doxa_webhook_answers_total"
        assert sample(after, name, **labels) - sample(before, name, **labels) == 1
