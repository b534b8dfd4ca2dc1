"""Engine, sessions and the declarative base shared by every table."""

from __future__ import annotations

import sqlite3
import struct
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    LargeBinary,
    MetaData,
    Select,
    create_engine,
    event,
    func,
    literal_column,
    select,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DisconnectionError
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


POOL_SIZE = 20


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine tuned for the backend: WAL and foreign keys on SQLite; on PostgreSQL a pool
    that pings a connection only after it sat idle (see IDLE_PING_SECONDS).

    Parameters never reach a log or an error text: they carry mail bodies and addresses.
    """
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        _WriterGate().install(engine)
        return engine
    if "poolclass" not in kwargs:
        # Kept open: enough for the requests a busy server has in flight. Connections past
        # the pool are closed when returned, and opening one costs the database a process
        # start (measured: under 16 concurrent webhook posts a pool of 10 reconnected for
        # about a third of them).
        kwargs.setdefault("pool_size", POOL_SIZE)
        kwargs.setdefault("max_overflow", 20)
    engine = create_engine(url, connect_args={"connect_timeout": 5}, **kwargs)
    _ping_when_idle(engine)
    return engine


# A pooled connection back within this long has just proven itself; one idle longer is pinged
# before use, since the server may have restarted meanwhile. Pinging every checkout cost each
# webhook post a round trip; a restart now costs the requests already in flight a 503 or 451
# (the sender retries), and the pool replaces its connections at the first failure.
IDLE_PING_SECONDS = 1.0


def _ping_when_idle(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _taken(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("returned_at", 0.0) < IDLE_PING_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the pool discards it and tries another connection
            raise DisconnectionError("the pooled connection is gone") from exc


# An execution option for a transaction that someone waits on (an SMTP client before its 250):
# at SQLite's writer gate it goes before the others waiting (processing, which nobody awaits).
URGENT_WRITE = "doxa_urgent_write"


class _WriterGate:
    """One writing transaction at a time per process, queued in Python.

    SQLite has a single write lock per file and makes waiters poll for it with sleeps of up
    to 100 ms, which turns a busy moment into second-long stalls. Waiting on a Python lock
    wakes the next writer the moment the previous one commits. Reads never wait (WAL).
    Transactions with the `URGENT_WRITE` option go first: with accepted mail committed in
    groups, one accepting writer otherwise waited behind a processing transaction at every turn.
    """

    _WRITES = ("insert", "update", "delete", "replace")

    def __init__(self, timeout: float = 30.0) -> None:
        self._lock = _PriorityLock()
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
        urgent = bool(conn.get_execution_options().get(URGENT_WRITE))
        if not self._lock.acquire(urgent=urgent, timeout=self._timeout):
            raise sqlite3.OperationalError("database is locked (writer gate timed out)")
        conn.info["writer_gate"] = True

    def _release_connection(self, conn: Any) -> None:
        self._release(conn.info)

    def _release_record(self, _dbapi: Any, record: Any, _detail: Any = None) -> None:
        # Three named arguments: SQLAlchemy 2 calls a pool "reset" listener with two as legacy
        # (and warns), "checkin" passes two, "invalidate" and "reset" three.
        if record is not None:
            self._release(record.info)

    def _release(self, info: dict[str, Any]) -> None:
        if info.pop("writer_gate", False):
            self._lock.release()


class _PriorityLock:
    """A lock that waiters marked urgent take before the others."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._held = False
        self._urgent_waiting = 0

    def acquire(self, *, urgent: bool, timeout: float) -> bool:
        with self._changed:
            self._urgent_waiting += urgent
            try:
                free = self._changed.wait_for(
                    lambda: not self._held and (urgent or not self._urgent_waiting), timeout
                )
            finally:
                self._urgent_waiting -= urgent
            if free:
                self._held = True
            elif urgent:
                self._changed.notify_all()  # the others may go now
            return free

    def release(self) -> None:
        with self._changed:
            self._held = False
            self._changed.notify_all()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


# libpq keeps its send and receive buffers as large as the largest value it has moved, for the
# life of the connection. Values up to this size are sent as parameters (and may stay that
# large in a pooled connection); larger ones are streamed, and a connection that read one back
# is replaced rather than pooled.
LARGE_VALUE_BYTES = 4 * 2**20


def recycle_if_large(db: Session, size: int) -> None:
    """Have the pool replace this session's connection at its next use if it moved `size`
    bytes (PostgreSQL; nothing elsewhere)."""
    backend(db).recycle_if_large(db, size)


def large_value(db: Session, data: bytes | bytearray) -> Any:
    """`data` as a value for one INSERT or UPDATE in this transaction (see `Backend`)."""
    return backend(db).large_value(db, data)


class FullText(StrEnum):
    """How a backend searches ticket text (doxa.core.tickets.search has one module for each)."""

    TSVECTOR = "tsvector"  # generated tsvector columns with GIN indexes
    FTS5 = "fts5"  # an FTS5 table beside ticket, kept by triggers


class Backend(ABC):
    """What differs between the databases DOXA runs on, decided here once: the other modules
    ask `backend(db)` rather than the dialect's name."""

    full_text: FullText
    streams_large_values = False  # large_value() gives a subquery, not the value itself
    alters_by_copy = False  # ALTER TABLE is limited: Alembic's batch mode copies the table
    # Whether rows inserted in a later-committing transaction always get higher ids (one writer
    # at a time); if not, readers of events order by transaction (doxa.core.events.feed).
    orders_commits_by_id = True

    def __init__(self) -> None:
        self._ignoring: dict[tuple[Any, ...], Any] = {}

    @abstractmethod
    def insert(self, entity: Any) -> Any:
        """The backend's INSERT for `entity`, with `on_conflict_do_nothing/_do_update`."""

    def insert_or_ignore(
        self, entity: Any, *, unique: tuple[str, ...], returning: tuple[str, ...]
    ) -> Any:
        """INSERT .. ON CONFLICT (`unique`) DO NOTHING RETURNING `returning`, parameters bound
        at execution: built and compiled once (building one per call, values as literals,
        cost more CPU than the webhook edge's request). Run with a list of rows it is one
        multi-row INSERT, and what conflicted returns nothing."""
        key = (entity, unique, returning)
        statement = self._ignoring.get(key)
        if statement is None:
            table: Any = getattr(entity, "__table__", entity)
            statement = self.insert(table).on_conflict_do_nothing(index_elements=list(unique))
            statement = statement.returning(*(table.c[name] for name in returning))
            self._ignoring[key] = statement
        return statement

    def skip_locked(self, query: Select[Any]) -> Select[Any]:
        """`query` for claiming rows: on PostgreSQL each row it returns is locked until the
        commit and rows another transaction holds are passed over (FOR UPDATE SKIP LOCKED);
        SQLite has no row locks: its one writer at a time is the claim."""
        return query

    def lock(self, db: Session, key: int) -> None:
        """Wait for the lock `key`, held by this transaction until it ends, across processes
        (PostgreSQL's advisory lock). SQLite: nothing; writers already take turns."""
        return None

    def try_lock(self, db: Session, key: int) -> bool:
        """Take the lock `key` as `lock` does if no other transaction holds it; False if one
        does (then nothing is taken). SQLite: True."""
        return True

    def large_value(self, db: Session, data: bytes | bytearray) -> Any:
        return data

    def recycle_if_large(self, db: Session, size: int) -> None:
        return None


class PostgreSQL(Backend):
    full_text = FullText.TSVECTOR
    streams_large_values = True
    orders_commits_by_id = False

    def insert(self, entity: Any) -> Any:
        return pg_insert(entity)

    def skip_locked(self, query: Select[Any]) -> Select[Any]:
        return query.with_for_update(skip_locked=True)

    def lock(self, db: Session, key: int) -> None:
        db.execute(select(func.pg_advisory_xact_lock(key)))

    def try_lock(self, db: Session, key: int) -> bool:
        return bool(db.scalar(select(func.pg_try_advisory_xact_lock(key))))

    def recycle_if_large(self, db: Session, size: int) -> None:
        if size > LARGE_VALUE_BYTES:
            db.connection().connection.invalidate(soft=True)

    def large_value(self, db: Session, data: bytes | bytearray) -> Any:
        """A large value is streamed by COPY, in pieces, into a temporary table and given back
        as a subquery on it; as a parameter libpq would copy it whole into its send buffer."""
        if len(data) <= LARGE_VALUE_BYTES:
            return data
        driver = db.connection().connection.driver_connection
        if driver is None:
            return data
        with driver.cursor() as cursor:
            cursor.execute(
                "CREATE TEMP TABLE IF NOT EXISTS doxa_upload (value bytea) ON COMMIT DROP"
            )
            # Stored uncompressed: it is compressed once, where it is copied to.
            cursor.execute("ALTER TABLE doxa_upload ALTER COLUMN value SET STORAGE EXTERNAL")
            cursor.execute("DELETE FROM doxa_upload")
            with cursor.copy("COPY doxa_upload (value) FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(_COPY_SIGNATURE + struct.pack("!hi", 1, len(data)))  # one field
                view = memoryview(data)
                for start in range(0, len(view), _PIECE):
                    copy.write(view[start : start + _PIECE])
                copy.write(struct.pack("!h", -1))  # the trailer
        return literal_column("(SELECT value FROM doxa_upload)", LargeBinary)


class SQLite(Backend):
    full_text = FullText.FTS5
    alters_by_copy = True

    def insert(self, entity: Any) -> Any:
        return sqlite_insert(entity)


_BACKENDS: dict[str, Backend] = {"postgresql": PostgreSQL(), "sqlite": SQLite()}


def backend(db: Session | Connection | Engine) -> Backend:
    """The backend `db` runs on."""
    bind = db.get_bind() if isinstance(db, Session) else db
    return _BACKENDS[bind.dialect.name]


_PIECE = 256 * 1024
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)  # flags, no extension


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
