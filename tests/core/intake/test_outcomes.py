"""Every outcome of an inbound event is one log line, with its fields apart in JSON."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy.orm import Session

from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.enums import Channel
from doxa.core.intake.inbound import InboundMessage
from doxa.core.intake.models import IntakeEvent
from doxa.core.intake.pipeline import Pipeline, Submission
from doxa.core.intake.processing import process_event
from doxa.gateway.pipeline import build_pipeline
from doxa.logs import JsonFormatter

OUTCOMES = "doxa.core.intake.outcomes"
MAIL = (
    b"From: Ann <ann@example.org>\r\nTo: support@example.com\r\nSubject: Refund\r\n"
    b"Message-ID: <refund-1@example.org>\r\n\r\nPlease refund invoice 2231.\r\n"
)


class _Breaks(Pipeline):
    """The real pipeline, made to fail while storing: a fault to inject."""

    def apply_claimed(self, db: Session, event: IntakeEvent, msg: InboundMessage) -> IntakeEvent:
        raise RuntimeError("storage broke\nsecond line")


def _accept(clean: Context, pipeline: Pipeline, raw: bytes, channel: Channel) -> int:
    with transaction(clean.sessions) as db:
        submission = Submission(
            channel, raw, ["support@example.com"], envelope_from="ann@example.org"
        )
        return pipeline.accept(db, submission).id


def _fields(record: logging.LogRecord) -> dict[str, object]:
    """The line as LOG_FORMAT=json writes it."""
    line: dict[str, object] = json.loads(JsonFormatter().format(record))
    return line


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger=OUTCOMES)
    return caplog


class TestOutcomeLines:
    def test_a_new_ticket_is_one_line_with_each_field_apart_in_json(
        self, clean: Context, logged: pytest.LogCaptureFixture
    ) -> None:
        pipeline = build_pipeline(clean.settings)
        event_id = _accept(clean, pipeline, MAIL, Channel.EMAIL)
        process_event(clean.sessions, pipeline, event_id)
        [record] = [r for r in logged.records if r.name == OUTCOMES]
        line = _fields(record)
        assert {k: line[k] for k in ("event_id", "channel", "sender", "outcome", "reason")} == {
            "event_id": event_id,
            "channel": "email",
            "sender": "ann@example.org",
            "outcome": "ticket_created",
            "reason": None,
        }
        assert isinstance(line["ticket"], int)
        assert line["message"] == (
            f"intake event {event_id} email from ann@example.org: ticket_created "
            f"ticket={line['ticket']} reason=None"
        )

    def test_a_rejected_event_is_one_warning_with_its_reason(
        self, clean: Context, logged: pytest.LogCaptureFixture
    ) -> None:
        pipeline = build_pipeline(clean.settings)
        event_id = _accept(clean, pipeline, b'{"email": "not an address"}', Channel.FORM)
        process_event(clean.sessions, pipeline, event_id)
        [record] = [r for r in logged.records if r.name == OUTCOMES]
        line = _fields(record)
        assert record.levelno == logging.WARNING
        assert (line["event_id"], line["outcome"], line["ticket"]) == (event_id, "rejected", None)
        assert line["reason"]

    def test_a_failed_event_is_one_error_with_the_error_as_reason_and_its_traceback(
        self, clean: Context, logged: pytest.LogCaptureFixture
    ) -> None:
        breaks = _Breaks(clean.settings, build_pipeline(clean.settings).normalizers)
        event_id = _accept(clean, breaks, MAIL, Channel.EMAIL)
        process_event(clean.sessions, breaks, event_id)
        [record] = [r for r in logged.records if r.name == OUTCOMES]
        line = _fields(record)
        assert record.levelno == logging.ERROR
        assert (line["outcome"], line["reason"]) == ("failed", "RuntimeError: storage broke")
        assert "Traceback" in str(line["exception"])
