"""Alembic environment: core's metadata only, the URL from the Config the caller built."""

from __future__ import annotations

from alembic import context
from sqlalchemy import pool

from doxa.core.db import backend, make_engine
from doxa.core.models import Base
from doxa.migrations import include_object


def run_migrations() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("sqlalchemy.url must be set by doxa.migrations.alembic_config")
    engine = make_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            include_object=include_object,
            render_as_batch=backend(connection).alters_by_copy,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations()
