from __future__ import annotations

from typing import Any

import pytest

from doxa.core.db import RECYCLE_AFTER_BYTES, make_engine, make_sessionmaker, recycle_if_large


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
        first, second = dbapi_connection_after(postgresql_url, RECYCLE_AFTER_BYTES + 1)
        assert second is not first

    def test_other_connections_are_reused(self, postgresql_url: str) -> None:
        first, second = dbapi_connection_after(postgresql_url, RECYCLE_AFTER_BYTES)
        assert second is first
