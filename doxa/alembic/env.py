"""Alembic environment: core's metadata only, the URL from the Config the caller built."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import pool

from doxa.core.db import make_engine
from doxa.core.models import Base

# Full-text search lives outside the ORM: SQLite's FTS5 table (and its shadow tables) and
# PostgreSQL's generated search_vector and search_pairs columns with their GIN indexes, made by
# the first migration.
_UNMANAGED_PREFIXES = ("ticket_fts", "ix_ticket_search", "search_vector", "search_pairs")


def _include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    return not (name is not None and name.startswith(_UNMANAGED_PREFIXES))


def run_migrations() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("sqlalchemy.url must be set by doxa.migrations.alembic_config")
    engine = make_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            include_object=_include,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations()
