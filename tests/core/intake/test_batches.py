"""Small events that wait together are stored in one transaction; a failure stays with its event."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.enums import Channel, DeliveryState, Direction, IntakeStatus
from doxa.core.intake.acknowledgments import CAP
from doxa.core.intake.inbound import InboundMessage
from doxa.core.intake.models import IntakeEvent
from doxa.core.intake.pipeline import Pipeline, Submission
from doxa.core.intake.processing import (
    BATCH_EVENT_BYTES,
    Batch,
    process_batch,
    process_event,
)
from doxa.core.tickets.models import Message as TicketMessage
from doxa.core.tickets.models import Ticket
from doxa.gateway.pipeline import build_pipeline
from doxa.runtime.intake import IntakeWorker
from doxa.runtime.pacing import Pacer
from tests.conftest import make_settings


def _mail(
    n: int, *, message_id: str | None = None, body: str = "My order has not arrived."
) -> bytes:
    lines = [
        f"From: Customer {n} <customer{n}@example.org>",
        "To: support@example.com",
        f"Subject: Question {n}",
        f"Message-ID: <{message_id or f'q{n}@example.org'}>",
        "Content-Type: text/plain; charset=utf-8",
        "",
        body,
        "",
    ]
    return "\r\n".join(lines).encode()


SMALL = 1_000  # bytes, the size each test mail is submitted with: one for a batch


def _accept(
    clean: Context,
    pipeline: Pipeline,
    raw: bytes,
    *,
    to: str = "support@example.com",
    channel: Channel = Channel.EMAIL,
) -> int:
    with transaction(clean.sessions) as db:
        return pipeline.accept(db, Submission(channel, raw, [to])).id


def _statuses(clean: Context, ids: list[int]) -> list[IntakeStatus]:
    with clean.sessions() as db:
        return [db.get_one(IntakeEvent, event_id).status for event_id in ids]


class _FailsOn(Pipeline):
    """The real pipeline, made to fail while storing one subject: a fault to inject."""

    def apply_claimed(self, db: Session, event: IntakeEvent, msg: InboundMessage) -> IntakeEvent:
        if msg.subject == "Question 2":
            raise RuntimeError("storage broke on this one")
        return super().apply_claimed(db, event, msg)


@pytest.fixture
def pipeline(clean: Context) -> Pipeline:
    return build_pipeline(clean.settings)


class TestProcessBatch:
    def test_small_events_become_a_ticket_each_in_one_call(
        self, clean: Context, pipeline: Pipeline
    ) -> None:
        ids = [_accept(clean, pipeline, _mail(n)) for n in range(5)]
        batch = process_batch(clean.sessions, pipeline, ids)
        assert batch.done == dict.fromkeys(ids, IntakeStatus.TICKET_CREATED)
        assert batch.left == []
        with clean.sessions() as db:
            assert db.scalar(select(func.count()).select_from(Ticket)) == 5

    def test_the_same_message_twice_in_one_batch_is_one_ticket(
        self, clean: Context, pipeline: Pipeline
    ) -> None:
        """Delivered to two of our mailboxes: the second copy is seen within the batch."""
        raw = _mail(1, message_id="twice@example.org")
        ids = [
            _accept(clean, pipeline, raw, to=to)
            for to in ("support@example.com", "billing@example.com")
        ]
        batch = process_batch(clean.sessions, pipeline, ids)
        assert list(batch.done.values()) == [IntakeStatus.TICKET_CREATED, IntakeStatus.DUPLICATE]

    def test_a_flood_from_one_sender_in_one_batch_is_held_past_the_hourly_limit(
        self, clean: Context
    ) -> None:
        """The batch sees its own earlier events: the limit holds inside one transaction too."""
        pipeline = build_pipeline(make_settings(clean.settings.database_url, sender_hourly_limit=3))
        raws = [_mail(n).replace(f"customer{n}@".encode(), b"flood@") for n in range(5)]
        ids = [_accept(clean, pipeline, raw) for raw in raws]
        batch = process_batch(clean.sessions, pipeline, ids)
        assert (
            list(batch.done.values()) == [IntakeStatus.TICKET_CREATED] * 3 + [IntakeStatus.HELD] * 2
        )
        with clean.sessions() as db:
            assert {db.get_one(IntakeEvent, i).reason for i in ids[3:]} == {"rate_limited"}

    @pytest.mark.parametrize(
        ("caps", "same_sender"),
        [({"ack_hourly_limit_per_recipient": 2}, True), ({"ack_hourly_limit": 2}, False)],
    )
    def test_acknowledgment_caps_count_the_batchs_own_acknowledgments(
        self, clean: Context, caps: dict[str, int], same_sender: bool
    ) -> None:
        """Four new tickets in one transaction: the third and fourth answers are held, as they
        would be across four transactions (the count sees the batch's own flushed rows)."""
        settings = make_settings(
            clean.settings.database_url, outbound_smtp_url="smtp://127.0.0.1:1", **caps
        )
        pipeline = build_pipeline(settings)
        raws = [_mail(n) for n in range(4)]
        if same_sender:
            raws = [raw.replace(f"customer{n}@".encode(), b"same@") for n, raw in enumerate(raws)]
        ids = [_accept(clean, pipeline, raw) for raw in raws]
        batch = process_batch(clean.sessions, pipeline, ids)
        assert list(batch.done.values()) == [IntakeStatus.TICKET_CREATED] * 4
        with clean.sessions() as db:
            answers = db.scalars(
                select(TicketMessage)
                .where(TicketMessage.direction == Direction.OUT)
                .order_by(TicketMessage.id)
            ).all()
            states = [(m.delivery_state, m.delivery_error) for m in answers]
        assert states == [(DeliveryState.QUEUED, None)] * 2 + [(DeliveryState.NOT_SENT, CAP)] * 2

    def test_a_large_event_is_left_to_run_alone(self, clean: Context, pipeline: Pipeline) -> None:
        small = _accept(clean, pipeline, _mail(1))
        large = _accept(clean, pipeline, _mail(2, body="x" * (BATCH_EVENT_BYTES + 1)))
        batch = process_batch(clean.sessions, pipeline, [small, large])
        assert list(batch.done) == [small]
        assert batch.left == [large]
        assert _statuses(clean, [large]) == [IntakeStatus.RECEIVED]

    def test_an_unreadable_event_is_left_and_then_rejected_alone(
        self, clean: Context, pipeline: Pipeline
    ) -> None:
        good = _accept(clean, pipeline, _mail(1))
        bad = _accept(clean, pipeline, b'{"email": "not an address"}', channel=Channel.FORM)
        batch = process_batch(clean.sessions, pipeline, [good, bad])
        assert batch.left == [bad]
        assert process_event(clean.sessions, pipeline, bad) is IntakeStatus.REJECTED
        assert _statuses(clean, [good, bad]) == [IntakeStatus.TICKET_CREATED, IntakeStatus.REJECTED]

    def test_a_failure_while_storing_undoes_the_batch_and_stays_with_its_event(
        self, clean: Context
    ) -> None:
        failing = _FailsOn(clean.settings, build_pipeline(clean.settings).normalizers)
        ids = [_accept(clean, failing, _mail(n)) for n in range(1, 4)]
        batch = process_batch(clean.sessions, failing, ids)
        assert batch == Batch({}, ids)  # nothing stored, every event left
        assert _statuses(clean, ids) == [IntakeStatus.RECEIVED] * 3
        for event_id in ids:
            process_event(clean.sessions, failing, event_id)
        assert _statuses(clean, ids) == [
            IntakeStatus.TICKET_CREATED,
            IntakeStatus.FAILED,
            IntakeStatus.TICKET_CREATED,
        ]


class TestIntakeWorker:
    def test_events_queued_together_are_all_processed_through_batches(
        self, clean: Context, pipeline: Pipeline
    ) -> None:
        ids = [_accept(clean, pipeline, _mail(n)) for n in range(40)]
        batches: list[list[int]] = []

        def many(event_ids: list[int]) -> Batch:
            batches.append(event_ids)
            return process_batch(clean.sessions, pipeline, event_ids)

        async def run() -> None:
            worker = IntakeWorker(clean.sessions, pipeline, process_many=many, sweep_every=3600)
            for event_id in ids:
                worker.submit(event_id, SMALL)
            await worker.start()
            await worker.stop(grace=60)

        asyncio.run(run())
        assert _statuses(clean, ids) == [IntakeStatus.TICKET_CREATED] * 40
        assert sorted(i for batch in batches for i in batch) == ids
        assert max(len(batch) for batch in batches) > 1

    def test_processing_waits_while_a_post_is_being_answered(
        self, clean: Context, pipeline: Pipeline
    ) -> None:
        event_id = _accept(clean, pipeline, _mail(1))
        pacer = Pacer(patience=30)

        async def run() -> tuple[IntakeStatus, IntakeStatus]:
            worker = IntakeWorker(clean.sessions, pipeline, sweep_every=3600, pacer=pacer)
            await worker.start()
            with pacer.serving():  # a post in flight: the stored event waits
                worker.submit(event_id, SMALL)
                await asyncio.sleep(0.5)
                during = _statuses(clean, [event_id])[0]
            await worker.stop(grace=30)
            return during, _statuses(clean, [event_id])[0]

        assert asyncio.run(run()) == (IntakeStatus.RECEIVED, IntakeStatus.TICKET_CREATED)

    def test_the_worker_is_caught_up_only_once_every_submitted_event_is_processed(
        self, clean: Context, pipeline: Pipeline
    ) -> None:
        ids = [_accept(clean, pipeline, _mail(n)) for n in range(3)]

        async def run() -> tuple[bool, bool, bool]:
            worker = IntakeWorker(clean.sessions, pipeline, sweep_every=3600)
            before = worker.caught_up.is_set()
            for event_id in ids:
                worker.submit(event_id, SMALL)
            submitted = worker.caught_up.is_set()
            await worker.start()
            await asyncio.wait_for(worker.caught_up.wait(), 30)
            await worker.stop(grace=30)
            return before, submitted, _statuses(clean, ids) == [IntakeStatus.TICKET_CREATED] * 3

        assert asyncio.run(run()) == (True, False, True)

    def test_a_small_event_runs_while_large_ones_hold_every_slot_they_may_take(
        self, clean: Context, pipeline: Pipeline
    ) -> None:
        """The rule, without timing: large events blocked in `process` take at most
        concurrency - 1 threads, so a small one submitted after them still runs."""
        large, small = [1, 2, 3], 4
        blocked, small_started = threading.Event(), threading.Event()
        started: list[int] = []

        def process(event_id: int) -> IntakeStatus:
            started.append(event_id)
            if event_id == small:
                small_started.set()
            if event_id in large:
                assert blocked.wait(30)
            return IntakeStatus.TICKET_CREATED

        async def run() -> tuple[set[int], list[int]]:
            worker = IntakeWorker(clean.sessions, pipeline, process=process, sweep_every=3600)
            await worker.start()
            for event_id in large:
                worker.submit(event_id, BATCH_EVENT_BYTES + 1)
            worker.submit(small, SMALL)
            assert await asyncio.to_thread(small_started.wait, 30)
            await asyncio.sleep(0.1)  # a second large one, were it let in, would start now
            during = set(started)
            blocked.set()
            await worker.stop(grace=30)
            return during, sorted(started)

        assert asyncio.run(asyncio.wait_for(run(), 30)) == ({large[0], small}, [1, 2, 3, 4])

    def test_the_sweep_learns_each_waiting_event_s_size(
        self, clean: Context, pipeline: Pipeline
    ) -> None:
        raws = [_mail(1), _mail(2, body="x" * (BATCH_EVENT_BYTES + 1))]
        ids = [_accept(clean, pipeline, raw) for raw in raws]
        with transaction(clean.sessions) as db:
            waiting = pipeline.waiting(db, older_than=timedelta(0))
        assert waiting == [(event_id, len(raw)) for event_id, raw in zip(ids, raws, strict=True)]
