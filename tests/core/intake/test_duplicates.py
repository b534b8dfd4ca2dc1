"""The same Message-ID in different bytes is one ticket (issue 19, item 28): a second MX path
adds a `Received:` line, a copy to another of our mailboxes has another dedupe key; and two
workers processing such copies at the same moment still make one ticket."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import func, select

from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.enums import Channel, IntakeStatus
from doxa.core.intake.models import IntakeEvent
from doxa.core.intake.pipeline import Pipeline, Submission, message_id_of
from doxa.core.intake.processing import process_event
from doxa.core.tickets.models import Message, Ticket
from doxa.gateway.pipeline import build_pipeline

MX = "Received: from mx{n}.example.net by doxa.example.com; Mon, 7 Dec 2026 10:00:0{n} +0000"


def _copy(message_id: str, n: int) -> bytes:
    """One message as the n-th MX path delivers it: only its `Received:` line differs."""
    lines = [
        MX.format(n=n),
        "From: Alice <alice@example.org>",
        "To: support@example.com",
        "Subject: Printer",
        f"Message-ID: <{message_id}>",
        "Content-Type: text/plain; charset=utf-8",
        "",
        "It prints blank pages.",
        "",
    ]
    return "\r\n".join(lines).encode()


def _accept(clean: Context, pipeline: Pipeline, raw: bytes, to: str) -> int:
    item = Submission(Channel.EMAIL, raw, [to], "alice@example.org", message_id_of(raw))
    with transaction(clean.sessions) as db:
        return pipeline.accept(db, item).id


def _two_paths(clean: Context, pipeline: Pipeline, **headers: str) -> list[IntakeEvent]:
    """Both copies accepted and processed one after the other, as a worker would."""
    extra = "".join(f"{name.replace('_', '-')}: {value}\r\n" for name, value in headers.items())
    copies = [
        _copy("twice@example.org", n).replace(b"\r\n\r\n", f"\r\n{extra}\r\n".encode(), 1)
        for n in (1, 2)
    ]
    ids = [_accept(clean, pipeline, raw, "support@example.com") for raw in copies]
    for event_id in ids:
        process_event(clean.sessions, pipeline, event_id)
    return _events(clean, ids)


def _work(clean: Context, pipeline: Pipeline, start: threading.Barrier, event_id: int) -> None:
    """One worker: waits for the other, then processes its event."""
    start.wait()
    process_event(clean.sessions, pipeline, event_id)


def _events(clean: Context, ids: list[int]) -> list[IntakeEvent]:
    with clean.sessions() as db:
        return [db.get_one(IntakeEvent, event_id) for event_id in ids]


def _count(clean: Context, model: type[Ticket] | type[Message]) -> int:
    with clean.sessions() as db:
        return db.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
def pipeline(clean: Context) -> Pipeline:
    return build_pipeline(clean.settings)


class TestSameMessageIdOtherBytes:
    def test_the_second_path_is_a_duplicate_of_the_first(
        self, clean: Context, pipeline: Pipeline
    ) -> None:
        first, second = _two_paths(clean, pipeline)
        assert first.status is IntakeStatus.TICKET_CREATED
        assert (second.status, second.duplicate_of_id) == (IntakeStatus.DUPLICATE, first.id)
        assert second.attempts == 0  # known at acceptance: never parsed nor processed
        assert (_count(clean, Ticket), _count(clean, Message)) == (1, 2)  # with its acknowledgment

    def test_the_second_path_of_a_held_message_is_no_second_hold(
        self, clean: Context, pipeline: Pipeline
    ) -> None:
        first, second = _two_paths(clean, pipeline, Auto_Submitted="auto-replied")
        assert (first.status, first.reason) == (IntakeStatus.HELD, "auto_reply")
        assert (second.status, second.duplicate_of_id) == (IntakeStatus.DUPLICATE, first.id)

    @pytest.mark.parametrize(
        "mailboxes",
        [
            ("support@example.com", "support@example.com"),
            ("support@example.com", "billing@example.com"),
        ],
        ids=["one mailbox", "two mailboxes"],
    )
    def test_two_workers_at_the_same_moment_make_one_ticket(
        self, clean: Context, pipeline: Pipeline, mailboxes: tuple[str, str]
    ) -> None:
        rounds = 8
        for _ in range(rounds):
            message_id = f"{uuid.uuid4().hex}@example.org"
            ids = [
                _accept(clean, pipeline, _copy(message_id, n), to)
                for n, to in enumerate(mailboxes, start=1)
            ]
            start = threading.Barrier(2)
            workers = [
                threading.Thread(target=_work, args=(clean, pipeline, start, event_id))
                for event_id in ids
            ]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            statuses = sorted(e.status for e in _events(clean, ids))
            assert statuses == [IntakeStatus.DUPLICATE, IntakeStatus.TICKET_CREATED]
            created, copy = sorted(_events(clean, ids), key=lambda e: e.duplicate_of_id or 0)
            assert copy.duplicate_of_id == created.id
        assert _count(clean, Ticket) == rounds
