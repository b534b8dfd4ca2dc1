"""The whole ingestion path on real data: every corpus message accepted, then processed."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from sqlalchemy import func, select

from doxa.core.context import Context
from doxa.core.db import LARGE_VALUE_BYTES, transaction
from doxa.core.enums import Channel, IntakeStatus
from doxa.core.intake.models import IntakeEvent
from doxa.core.intake.pipeline import Submission, message_id_of
from doxa.core.intake.processing import process_event
from doxa.core.tickets.models import Ticket
from doxa.gateway.pipeline import build_pipeline
from tests.conftest import empty_tables, make_settings
from tests.gateway.conftest import CORPUS
from tests.gateway.test_parsing import UNDETECTED_BOUNCES

# Never FAILED: that is for what a retry may fix, and the corpus holds no such thing.
KEPT = {
    IntakeStatus.TICKET_CREATED,
    IntakeStatus.FOLLOWUP,
    IntakeStatus.HELD,
    IntakeStatus.DUPLICATE,
    IntakeStatus.REJECTED,
}


@pytest.fixture(scope="module")
def corpus_paths() -> list[str]:
    if not (CORPUS / "INDEX.json").is_file():
        pytest.skip(f"shared email corpus not found at {CORPUS}")
    return [e["path"] for e in json.loads((CORPUS / "INDEX.json").read_text())["files"]]


def _ingest(
    context: Context,
    paths: list[str],
    *,
    envelope_from: str | None = None,
    to: str = "support@example.com",
) -> dict[str, IntakeEvent]:
    settings = make_settings(context.settings.database_url, sender_hourly_limit=100_000)
    pipeline = build_pipeline(settings)
    events: dict[str, IntakeEvent] = {}
    for path in paths:
        raw = (CORPUS / path).read_bytes()
        item = Submission(Channel.EMAIL, raw, [to], envelope_from, message_id_of(raw))
        with transaction(context.sessions) as db:
            event_id = pipeline.accept(db, item).id
        process_event(context.sessions, pipeline, event_id)
        with context.sessions() as db:
            events[path] = db.get_one(IntakeEvent, event_id)
    return events


@dataclass(frozen=True)
class Ingested:
    events: dict[str, IntakeEvent]
    tickets: int  # tickets in the database right after


@pytest.fixture(scope="class")
def whole_corpus(context: Context, corpus_paths: list[str]) -> Ingested:
    """The whole corpus through the pipeline into empty tables, once per backend for the
    tests that start from it (each pass takes minutes on PostgreSQL)."""
    empty_tables(context)
    events = _ingest(context, corpus_paths)
    with context.sessions() as db:
        return Ingested(events, db.scalar(select(func.count()).select_from(Ticket)) or 0)


@pytest.mark.slow
class TestCorpusThroughPipeline:
    def test_every_message_ends_as_a_ticket_a_followup_or_an_explained_record(
        self, whole_corpus: Ingested
    ) -> None:
        events = whole_corpus.events
        outcomes = Counter(e.status for e in events.values())
        assert set(outcomes) <= KEPT, outcomes
        for path, event in events.items():
            if event.status is IntakeStatus.HELD:
                assert event.reason, path
            if event.status is IntakeStatus.REJECTED:
                assert event.reason == "no_headers" and event.error, (path, event.error)
        # The corpus is mostly bounces (held) and one bounce in three flavours (duplicates).
        assert whole_corpus.tickets == outcomes[IntakeStatus.TICKET_CREATED] > 250, outcomes

    def test_data_without_a_header_block_is_a_ticket_from_the_envelope_sender(
        self, context: Context, whole_corpus: Ingested
    ) -> None:
        # Bare bodies and an Outlook .msg file: rejected from a file, tickets over SMTP.
        rejected = [p for p, e in whole_corpus.events.items() if e.status is IntakeStatus.REJECTED]
        assert len(rejected) > 20
        # Another mailbox, into the database that holds the whole corpus: not a duplicate of
        # the rejected deliveries.
        events = _ingest(
            context, rejected, envelope_from="Someone@Example.org", to="billing@example.com"
        )
        outcomes = Counter(e.status for e in events.values())
        assert set(outcomes) <= {IntakeStatus.TICKET_CREATED, IntakeStatus.DUPLICATE}, outcomes
        assert {e.sender for e in events.values()} == {"someone@example.org"}

    def test_no_bounce_or_auto_reply_makes_a_ticket(
        self, clean: Context, corpus_paths: list[str]
    ) -> None:
        bounces = [
            p
            for p in corpus_paths
            if p.startswith("sisimai-bounces/maildir/")
            and "/not/" not in p
            and p not in UNDETECTED_BOUNCES
        ]
        auto = [p for p in corpus_paths if _auto_submitted(p)]
        events = _ingest(clean, bounces + auto)
        made_tickets = [p for p, e in events.items() if e.ticket_id is not None]
        assert made_tickets == []


@cache
def _auto_submitted_flags() -> dict[str, object]:
    index = json.loads((CORPUS / "INDEX.json").read_text())["files"]
    return {e["path"]: e["auto_submitted"] for e in index}


def _auto_submitted(path: str) -> bool:
    value = _auto_submitted_flags().get(path)
    return bool(value) and str(value).lower() != "no" and Path(path).suffix != ".json"


class TestAccept:
    def test_a_large_message_delivered_twice_is_stored_twice_as_one_message(
        self, clean: Context
    ) -> None:
        pipeline = build_pipeline(clean.settings)
        raw = b"Message-ID: <big@example.org>\r\nSubject: big\r\n\r\n" + b"x" * (
            LARGE_VALUE_BYTES + 1
        )
        item = Submission(Channel.EMAIL, raw, ["support@example.com"], None, message_id_of(raw))
        accepted = []
        for _ in range(2):
            with transaction(clean.sessions) as db:
                accepted.append(pipeline.accept(db, item))
        assert [a.status for a in accepted] == [IntakeStatus.RECEIVED, IntakeStatus.DUPLICATE]
        with clean.sessions() as db:
            assert [db.get_one(IntakeEvent, a.id).raw for a in accepted] == [raw, raw]
