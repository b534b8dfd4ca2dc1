from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from doxa.core.models import Base
from doxa.migrations import alembic_config, check


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


class TestMigrations:
    def test_upgrade_head_builds_every_table(self, database_url: str) -> None:
        assert set(Base.metadata.tables) <= _tables(database_url)

    def test_models_and_migrations_do_not_drift(self, database_url: str) -> None:
        check(database_url)  # raises alembic.util.CommandError on any difference

    def test_downgrade_and_upgrade_again_round_trip(self, tmp_path: object) -> None:
        url = f"sqlite:///{tmp_path}/roundtrip.db"
        config = alembic_config(url)
        command.upgrade(config, "head")
        command.downgrade(config, "base")
        assert _tables(url) == {"alembic_version"}
        command.upgrade(config, "head")
