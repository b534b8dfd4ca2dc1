from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from doxa.core.models import Base
from doxa.migrations import alembic_config, check, upgrade
from tests.conftest import BACKENDS, _fresh_postgres
from tests.relays import free_port


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


DOXA = str(Path(sys.executable).with_name("doxa"))


@pytest.fixture(params=BACKENDS)
def migrated_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own, made by the migration, on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/doxa.db"
        upgrade(url)
        yield url
        return
    server = os.environ.get("TEST_DATABASE_URL")
    if not server:
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL run skipped")
    with _fresh_postgres(server, f"schema_{tmp_path.name}") as url:
        upgrade(url)
        yield url


def _serve(url: str, tmp_path: Path) -> tuple[int | None, list[str]]:
    """`doxa serve` on `url`: its exit code and stderr lines, or None and its output once the
    banner showed it serving (then killed: tests/test_server.py checks the stop by Ctrl-C,
    which takes seconds: worker processes still importing, then the interpreter's exit)."""
    environment = {
        **os.environ,
        "DATABASE_URL": url,
        "DOXA_ENV": "dev",
        "JWT_SECRET": secrets.token_urlsafe(48),
        "BCRYPT_ROUNDS": "4",
    }
    ports = ["--port", str(free_port()), "--smtp-port", str(free_port())]
    out, err = tmp_path / "out.log", tmp_path / "err.log"
    with out.open("w") as stdout, err.open("w") as stderr:
        server = subprocess.Popen(
            [DOXA, "serve", *ports],
            env=environment,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while server.poll() is None and "DOXA HTTP on" not in out.read_text():
            assert time.monotonic() < deadline, err.read_text()
            time.sleep(0.05)
        if server.poll() is not None:
            return server.returncode, err.read_text().splitlines()
        return None, out.read_text().splitlines()
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=60)


class TestServeComparesTheSchema:
    def test_a_database_from_an_earlier_edit_stops_serve_in_one_line(
        self, migrated_url: str, tmp_path: Path
    ) -> None:
        # As an earlier edit of the one migration left it: same revision, other tables.
        engine = sa.create_engine(migrated_url)
        with engine.begin() as connection:
            connection.execute(sa.text("ALTER TABLE ticket DROP COLUMN language"))
            connection.execute(sa.text("ALTER TABLE ticket ADD COLUMN leftover integer"))
            connection.execute(sa.text("CREATE TABLE other_software (id integer PRIMARY KEY)"))
        engine.dispose()
        code, lines = _serve(migrated_url, tmp_path)
        assert code == 1
        assert len(lines) == 1, lines
        assert lines[0].startswith("error: the database schema differs from this version's models")
        assert "column ticket.language is missing" in lines[0]
        assert "column ticket.leftover is not in the models" in lines[0]
        assert "other_software" not in lines[0]  # a table that is not ours is left alone
        assert "drop and recreate the database" in lines[0] and "`doxa migrate`" in lines[0]

    def test_an_unchanged_database_serves(self, migrated_url: str, tmp_path: Path) -> None:
        code, output = _serve(migrated_url, tmp_path)
        assert code is None, output
