from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from doxa.core import db as db_module
from doxa.core.context import Context
from doxa.core.db import (
    LARGE_VALUE_BYTES,
    URGENT_WRITE,
    backend,
    large_value,
    make_engine,
    make_sessionmaker,
    recycle_if_large,
)
from doxa.core.models import User
from tests.conftest import MakeUser


def dbapi_connection_after(database_url: str, moved: int) -> tuple[Any, Any]:
    """The driver connections of two sessions in a row, the first having moved `moved` bytes."""
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    sessions = make_sessionmaker(engine)
    try:
        with sessions() as db:
            first = db.connection().connection.dbapi_connection
            recycle_if_large(db, moved)
        with sessions() as db:
            return first, db.connection().connection.dbapi_connection
    finally:
        engine.dispose()


@pytest.fixture
def postgresql_url(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("only libpq keeps buffers the size of the largest value; SQLite is left alone")
    return database_url


class TestRecycleIfLarge:
    def test_a_connection_that_moved_a_large_value_is_replaced(self, postgresql_url: str) -> None:
        first, second = dbapi_connection_after(postgresql_url, LARGE_VALUE_BYTES + 1)
        assert second is not first

    def test_other_connections_are_reused(self, postgresql_url: str) -> None:
        first, second = dbapi_connection_after(postgresql_url, LARGE_VALUE_BYTES)
        assert second is first


class TestServerRestart:
    """A connection whose server end died while it sat in the pool (a restart, an idle
    timeout) is pinged and replaced unseen; one back within IDLE_PING_SECONDS is trusted, so
    one request fails (a 503 or 451 the sender retries) and the pool then starts afresh."""

    @pytest.fixture
    def dead_pooled(self, postgresql_url: str) -> Iterator[sa.Engine]:
        """An engine whose one pooled connection's server end was terminated while idle."""
        engine = make_engine(postgresql_url, pool_size=1, max_overflow=0)
        with engine.connect() as connection:
            pid = connection.scalar(sa.text("SELECT pg_backend_pid()"))
        admin = sa.create_engine(engine.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        admin.dispose()
        yield engine
        engine.dispose()

    def test_a_dead_connection_idle_past_the_window_is_replaced_unseen(
        self, dead_pooled: sa.Engine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(db_module, "IDLE_PING_SECONDS", 0.0)
        with dead_pooled.connect() as connection:
            assert connection.scalar(sa.text("SELECT 1")) == 1

    def test_within_the_window_one_use_fails_and_the_next_reconnects(
        self, dead_pooled: sa.Engine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(db_module, "IDLE_PING_SECONDS", 3600.0)
        with pytest.raises(sa.exc.OperationalError), dead_pooled.connect() as connection:
            connection.scalar(sa.text("SELECT 1"))
        with dead_pooled.connect() as connection:
            assert connection.scalar(sa.text("SELECT 1")) == 1


BLOBS = sa.Table("blobs", sa.MetaData(), sa.Column("v", sa.LargeBinary), prefixes=["TEMPORARY"])


class TestLargeValue:
    def test_large_values_are_stored_byte_for_byte(self, db: Session) -> None:
        BLOBS.create(db.connection())  # bytea on PostgreSQL, blob on SQLite
        values: list[bytes | bytearray] = [
            os.urandom(LARGE_VALUE_BYTES + 1),
            bytearray(os.urandom(2 * LARGE_VALUE_BYTES)),
            b"small",
        ]
        for value in values:  # one after another in one transaction
            db.execute(sa.insert(BLOBS).values(v=large_value(db, value)))
        assert list(db.scalars(sa.select(BLOBS.c.v))) == [bytes(v) for v in values]

    def test_on_postgresql_a_large_value_is_streamed_not_bound(self, db: Session) -> None:
        value = large_value(db, os.urandom(LARGE_VALUE_BYTES + 1))
        assert isinstance(value, (bytes, bytearray)) is not backend(db).streams_large_values


class TestBackend:
    def test_a_claimed_row_is_passed_over_by_the_next_claim(
        self, postgresql_url: str, clean: Context, make_user: MakeUser
    ) -> None:
        first, second = make_user().id, make_user().id
        oldest = sa.select(User.id).order_by(User.id).limit(1)
        with clean.sessions() as one, clean.sessions() as other:
            assert one.scalar(backend(one).skip_locked(oldest)) == first
            assert other.scalar(backend(other).skip_locked(oldest)) == second


@pytest.mark.timing
class TestWriterGate:
    def test_a_write_closed_without_commit_lets_the_next_writer_in(self, tmp_path: Path) -> None:
        engine = make_engine(f"sqlite:///{tmp_path}/gate.db")
        sessions = make_sessionmaker(engine)
        try:
            with sessions() as db:
                db.execute(sa.text("CREATE TABLE t (a INTEGER)"))
                db.commit()
            with sessions() as db:  # the pool rolls this back; the gate must open with it
                db.execute(sa.text("INSERT INTO t VALUES (1)"))
            started = time.monotonic()
            with sessions() as db:
                db.execute(sa.text("INSERT INTO t VALUES (2)"))
                db.commit()
            assert time.monotonic() - started < 5
            with sessions() as db:
                assert db.scalars(sa.text("SELECT a FROM t")).all() == [2]
        finally:
            engine.dispose()

    def test_an_urgent_writer_goes_before_writers_that_waited_longer(self, tmp_path: Path) -> None:
        engine = make_engine(f"sqlite:///{tmp_path}/gate.db")
        sessions = make_sessionmaker(engine)
        order: list[str] = []

        def write(name: str, options: dict[str, bool]) -> None:
            with sessions() as db:
                db.connection(execution_options=options)
                db.execute(sa.text("INSERT INTO t VALUES (:a)"), {"a": name})
                order.append(name)
                db.commit()

        try:
            with sessions() as db:
                db.execute(sa.text("CREATE TABLE t (a TEXT)"))
                db.commit()
            with sessions() as holder:  # holds the gate while the others line up
                holder.execute(sa.text("INSERT INTO t VALUES ('holder')"))
                waiting = [
                    threading.Thread(target=write, args=(f"plain {n}", {})) for n in range(3)
                ]
                for thread in waiting:
                    thread.start()
                time.sleep(0.2)
                urgent = threading.Thread(target=write, args=("urgent", {URGENT_WRITE: True}))
                urgent.start()
                time.sleep(0.2)
                holder.commit()
            for thread in [*waiting, urgent]:
                thread.join(10)
            assert order[0] == "urgent" and sorted(order[1:]) == [f"plain {n}" for n in range(3)]
        finally:
            engine.dispose()


class TestParametersStayOutOfErrors:
    def test_a_failed_statement_names_no_parameter(
        self, database_url: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        engine = make_engine(database_url)
        try:
            with pytest.raises(sa.exc.DBAPIError) as failed, engine.connect() as connection:
                statement = sa.text("SELECT CAST(:body AS INTEGER) / 0 FROM no_such_table")
                connection.execute(statement, {"body": "the customer's secret text"})
        finally:
            engine.dispose()
        assert "secret" not in str(failed.value) and "secret" not in caplog.text
