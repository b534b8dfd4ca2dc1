"""Group commit at the SMTP edge: real smtplib clients against the real listener, on each
database. A first message's store is held, so the messages sent meanwhile pile up and are
committed together as the next group (the shape of a busy listener)."""

from __future__ import annotations

import functools
import re
import smtplib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from doxa.core.enums import IntakeStatus
from doxa.core.intake.models import IntakeEvent
from doxa.gateway.accepting import GroupCommitter
from doxa.gateway.smtp import IntakeHandler
from tests.gateway.conftest import Smtp, message

Reply = tuple[int, str]


def _handler(smtp: Smtp) -> IntakeHandler:
    return smtp.http.app.state.smtp_server.handler  # type: ignore[attr-defined,no-any-return]


def _send(smtp: Smtp, raw: str) -> Reply:
    """One message on its own connection; the DATA reply (any code), not an exception."""
    with smtplib.SMTP("127.0.0.1", smtp.port, timeout=60) as client:
        client.ehlo()
        client.mail("alice@example.org")
        client.rcpt("support@example.com")
        code, text = client.data(raw.encode())
        return code, text.decode()


def _event_id(reply: Reply) -> int:
    found = re.search(r"intake event (\d+)", reply[1])
    assert reply[0] == 250 and found, reply
    return int(found.group(1))


Fault = Callable[[], AbstractContextManager[object]]


class Held:
    """The committer's next group waits until the gate opens; the groups after it are stored
    within `fault`, on the committing thread. The groups' sizes are recorded."""

    def __init__(self, committer: GroupCommitter, fault: Fault) -> None:
        self.committer, self.sizes, self.fault = committer, list[int](), fault
        self.gate, self.entered = threading.Event(), threading.Event()
        self.store: Callable[..., Any] = committer._store

    def __call__(self, group: list[Any]) -> Any:
        self.sizes.append(len(group))
        if len(self.sizes) == 1:
            self.entered.set()
            self.gate.wait(30)
            return self.store(group)
        with self.fault():
            return self.store(group)

    def wait_for_waiting(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.committer._waiting) < count:
            assert time.monotonic() < deadline, f"{len(self.committer._waiting)} waiting"
            time.sleep(0.01)


@contextmanager
def held(smtp: Smtp, fault: Fault) -> Iterator[Held]:
    with holding(_handler(smtp).lanes.small, fault) as hold:
        yield hold


@contextmanager
def holding(committer: GroupCommitter, fault: Fault = nullcontext) -> Iterator[Held]:
    """`committer`'s next group is held (see `Held`), whichever edge it serves."""
    hold = Held(committer, fault)
    committer._store = hold  # type: ignore[method-assign]
    try:
        yield hold
    finally:
        hold.gate.set()
        del committer._store


def send_as_a_group(
    smtp: Smtp, raws: list[str], fault: Fault = nullcontext
) -> tuple[Reply, list[Reply], Held]:
    """A first message whose store is held, then `raws` from one client each, concurrently:
    they are committed together, as the group after the first (stored within `fault`)."""
    with held(smtp, fault) as hold, ThreadPoolExecutor(len(raws) + 1) as pool:
        first = pool.submit(_send, smtp, message("first"))
        assert hold.entered.wait(30)
        replies = [pool.submit(_send, smtp, raw) for raw in raws]
        hold.wait_for_waiting(len(raws))
        hold.gate.set()
        return first.result(), [reply.result() for reply in replies], hold


class TestGroupCommit:
    def test_concurrent_clients_are_committed_in_one_group_and_each_gets_its_own_event(
        self, smtp: Smtp
    ) -> None:
        committed: list[bool] = []
        committer = _handler(smtp).lanes.small
        submit = committer.submit

        # The worker hears of an event after its commit.
        def submitted(event_id: int, size: int) -> None:
            with smtp.context.sessions() as db:
                committed.append(db.get(IntakeEvent, event_id) is not None)
            submit(event_id, size)

        committer.submit = submitted
        raws = [message(f"client {n}") for n in range(8)]
        first, replies, hold = send_as_a_group(smtp, raws)
        assert hold.sizes == [1, 8]
        ids = [_event_id(reply) for reply in [first, *replies]]
        assert len(set(ids)) == 9 and committed == [True] * 9
        events = {event.id: event for event in smtp.settle()}
        assert sorted(events) == sorted(ids)
        assert {events[i].status for i in ids} == {IntakeStatus.TICKET_CREATED}
        subjects = sorted(ticket.subject for ticket in smtp.tickets())
        assert subjects == sorted(["first", *(f"client {n}" for n in range(8))])

    def test_each_250_comes_after_its_own_row_is_committed(self, smtp: Smtp) -> None:
        def send_and_look(n: int) -> bool:
            event_id = _event_id(_send(smtp, message(f"look {n}")))
            with smtp.context.sessions() as db:  # another connection sees it at once
                return db.get(IntakeEvent, event_id) is not None

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(send_and_look, range(40))) == [True] * 40
        assert len(smtp.settle()) == 40

    def test_no_reply_is_sent_while_the_commit_is_held_and_250_once_it_completes(
        self, smtp: Smtp
    ) -> None:
        with _intake_commit(smtp) as hold, ThreadPoolExecutor(1) as pool:
            reply = pool.submit(_send, smtp, message("Held at commit"))
            assert hold.reached.wait(30)  # the row is written; its commit waits for the test
            time.sleep(0.5)  # ample for a reply sent before the commit to arrive
            assert not reply.done() and _stored(smtp) == 0
            hold.release.set()
            event_id = _event_id(reply.result(30))
        assert [e.id for e in smtp.settle()] == [event_id]

    def test_a_commit_that_fails_gets_451_and_the_retry_250(self, smtp: Smtp) -> None:
        with _intake_commit(smtp, fails=True) as hold:
            hold.release.set()
            code, text = _send(smtp, message("Failed at commit"))
        assert (code, text[:5]) == (451, "4.3.0") and _stored(smtp) == 0
        assert _send(smtp, message("Failed at commit"))[0] == 250
        smtp.settle()
        assert [t.subject for t in smtp.tickets()] == ["Failed at commit"]

    def test_a_repeated_message_id_within_one_group_is_stored_once_and_the_rest_are_duplicates(
        self, smtp: Smtp
    ) -> None:
        earlier = message("Stored before", message_id="earlier@example.org")
        before = _event_id(_send(smtp, earlier))
        same = message("Twice in a group", message_id="twin@example.org")
        no_id = "From: b@example.org\r\nTo: support@example.com\r\nSubject: no id\r\n\r\nx\r\n"
        _, replies, hold = send_as_a_group(smtp, [same, same, same, no_id, no_id, earlier])
        assert hold.sizes == [1, 6]
        ids = [_event_id(reply) for reply in replies]
        events = {event.id: event for event in smtp.settle()}
        twins, bare = [events[i] for i in ids[:3]], [events[i] for i in ids[3:5]]
        for group in (twins, bare):
            [original] = [e for e in group if e.status is not IntakeStatus.DUPLICATE]
            assert original.status is IntakeStatus.TICKET_CREATED
            assert all(e.duplicate_of_id == original.id for e in group if e is not original)
        again = events[ids[5]]
        assert again.status is IntakeStatus.DUPLICATE and again.duplicate_of_id == before
        subjects = sorted(t.subject for t in smtp.tickets())
        assert subjects == ["Stored before", "Twice in a group", "first", "no id"]


class TestGroupFaults:
    def test_database_lost_during_a_group_gives_each_of_its_messages_451_and_loses_nothing(
        self, smtp: Smtp
    ) -> None:
        raws = [message(f"in the failing group {n}") for n in range(6)]
        lost = functools.partial(_database_lost_at_commit, smtp)  # the group's rows are in
        first, replies, hold = send_as_a_group(smtp, raws, lost)
        assert hold.sizes == [1, 6]
        assert [code for code, _ in replies] == [451] * 6
        assert all(text.startswith("4.3.0") for _, text in replies)
        assert _send(smtp, message("after"))[0] == 250
        events = smtp.settle()
        # What was answered 250 is there; the group's rows were rolled back with it.
        assert sorted(e.id for e in events) == sorted([_event_id(first), events[-1].id])
        assert sorted(t.subject for t in smtp.tickets()) == ["after", "first"]

    def test_a_message_that_cannot_be_stored_fails_alone_and_the_rest_of_its_group_is_accepted(
        self, smtp: Smtp
    ) -> None:
        raws = [message(f"fine {n}") for n in range(4)] + [message("poison", "POISON")]
        with _poisoned_insert(smtp, b"POISON"):
            _, replies, hold = send_as_a_group(smtp, raws)
        assert hold.sizes == [1, 5]
        assert [code for code, _ in replies] == [250] * 4 + [451]
        smtp.settle()
        assert sorted(t.subject for t in smtp.tickets()) == [
            "fine 0",
            "fine 1",
            "fine 2",
            "fine 3",
            "first",
        ]


def _is_intake_insert(statement: str) -> bool:
    return statement.lstrip().upper().startswith("INSERT INTO INTAKE_EVENT")


def _stored(smtp: Smtp) -> int:
    """Intake events another connection sees."""
    with smtp.context.sessions() as db:
        return len(db.scalars(sa.select(IntakeEvent.id)).all())


@dataclass
class CommitHold:
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@contextmanager
def _intake_commit(smtp: Smtp, *, fails: bool = False) -> Iterator[CommitHold]:
    """The next commit of a transaction that stored an intake event waits for `release`, then
    goes on (or fails, as a disk that is gone makes it)."""
    engine, hold, armed = smtp.context.engine, CommitHold(), [True]
    mark = f"stores_intake_{id(hold)}"  # this hold's own: earlier tests' listeners stay

    def before(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if armed[0] and _is_intake_insert(statement):
            conn.info[mark] = True

    def commit(conn: Any) -> None:
        if not (armed[0] and conn.info.pop(mark, False)):
            return
        armed[0] = False
        hold.reached.set()
        hold.release.wait(30)
        if fails:
            raise sa.exc.OperationalError(
                "COMMIT", None, sqlite3.OperationalError("disk I/O error")
            )

    def rollback(conn: Any) -> None:
        if armed[0]:  # a connection a later test invalidates has no info to read
            conn.info.pop(mark, None)

    listeners: dict[str, Callable[..., None]] = {
        "before_cursor_execute": before,
        "commit": commit,
        "rollback": rollback,
    }
    for name, listener in listeners.items():
        event.listen(engine, name, listener)
    try:
        yield hold
    finally:
        armed[0] = False  # left listening: see _poisoned_insert
        hold.release.set()


@contextmanager
def _database_lost_at_commit(smtp: Smtp) -> Iterator[None]:
    """A commit on this thread finds the database gone: on PostgreSQL the server ends the
    connection just before it; on SQLite the commit fails as it does when the disk does."""
    engine, thread = smtp.context.engine, threading.get_ident()
    postgresql = engine.dialect.name == "postgresql"
    admin = sa.create_engine(engine.url, isolation_level="AUTOCOMMIT") if postgresql else None

    armed = True

    def commit(conn: Any) -> None:
        if not armed or threading.get_ident() != thread:
            return  # the intake worker's, say
        if admin is None:
            raise sa.exc.OperationalError(
                "COMMIT", None, sqlite3.OperationalError("disk I/O error")
            )
        with admin.connect() as other:
            other.execute(
                sa.text("SELECT pg_terminate_backend(:pid)"),
                {"pid": conn.connection.driver_connection.info.backend_pid},
            )

    event.listen(engine, "commit", commit)
    try:
        yield
    finally:
        armed = False  # left listening: see _poisoned_insert
        if admin is not None:
            admin.dispose()


@contextmanager
def _poisoned_insert(smtp: Smtp, marker: bytes) -> Iterator[None]:
    """Storing a message whose bytes hold `marker` fails (not for want of a database)."""
    engine = smtp.context.engine
    armed = True

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if not armed:
            return
        rows = parameters if isinstance(parameters, list) else [parameters]
        values = [v for row in rows for v in (row.values() if isinstance(row, dict) else row)]
        values = [getattr(value, "obj", value) for value in values]  # psycopg's Binary wraps
        if _is_intake_insert(statement) and any(
            isinstance(value, bytes | bytearray | memoryview) and marker in bytes(value)
            for value in values
        ):
            raise ValueError("this message cannot be stored")

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield
    finally:
        # Disarmed, not removed: removing a listener while the intake worker runs a statement
        # broke that statement ("deque mutated during iteration"), and processing starts just
        # as the group is answered. The engine is the test's own.
        armed = False
