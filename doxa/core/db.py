"""Engine, sessions and the declarative base shared by every table."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy import Enum as SAEnum
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a timezone-aware column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine tuned for the backend: WAL and foreign keys on SQLite, pre-ping on PostgreSQL."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        _WriterGate().install(engine)
        return engine
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
    return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 5}, **kwargs)


class _WriterGate:
    """One writing transaction at a time per process, queued in Python.

    SQLite has a single write lock per file and makes waiters poll for it with sleeps of up
    to 100 ms, which turns a busy moment into second-long stalls. Waiting on a Python lock
    wakes the next writer the moment the previous one commits. Reads never wait (WAL).
    """

    _WRITES = ("insert", "update", "delete", "replace")

    def __init__(self, timeout: float = 30.0) -> None:
        self._lock = threading.Lock()
        self._timeout = timeout

    def install(self, engine: Engine) -> None:
        event.listen(engine, "before_cursor_execute", self._before)
        for name in ("commit", "rollback"):
            event.listen(engine, name, self._release_connection)
        for name in ("reset", "checkin", "invalidate"):
            event.listen(engine.pool, name, self._release_record)

    def _before(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if conn.info.get("writer_gate") or not statement.lstrip()[:7].lower().startswith(
            self._WRITES
        ):
            return
        if not self._lock.acquire(timeout=self._timeout):
            raise sqlite3.OperationalError("database is locked (writer gate timed out)")
        conn.info["writer_gate"] = True

    def _release_connection(self, conn: Any) -> None:
        self._release(conn.info)

    def _release_record(self, _dbapi: Any, record: Any, *_: Any) -> None:
        if record is not None:
            self._release(record.info)

    def _release(self, info: dict[str, Any]) -> None:
        if info.pop("writer_gate", False):
            self._lock.release()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


# libpq keeps its send and receive buffers as large as the largest value it has moved, for the
# life of the connection: one 25 MiB message would pin 25 MiB in each pooled connection it used.
RECYCLE_AFTER_BYTES = 4 * 2**20


def recycle_if_large(db: Session, size: int) -> None:
    """Have the pool replace this session's PostgreSQL connection at its next use if it moved
    `size` bytes."""
    if size > RECYCLE_AFTER_BYTES and db.get_bind().dialect.name == "postgresql":
        db.connection().connection.invalidate(soft=True)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on error (edges only)."""
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def str_enum(enum: type[StrEnum]) -> SAEnum:
    """A portable enum column storing the member's value (no native PostgreSQL type)."""
    return SAEnum(
        enum,
        native_enum=False,
        length=max(len(member.value) for member in enum) + 8,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )
