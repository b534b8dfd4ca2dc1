"""The `doxa` command, as a user runs it."""

from __future__ import annotations

import mailbox
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from doxa.cli import main
from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.enums import Channel, IntakeStatus
from doxa.core.intake.models import IntakeEvent
from doxa.core.intake.pipeline import Delivery
from doxa.core.models import Ticket, User
from doxa.main import build_pipeline
from tests.gateway.conftest import message

DOXA = str(Path(sys.executable).with_name("doxa"))


@pytest.fixture
def env(clean: Context, monkeypatch: pytest.MonkeyPatch) -> Context:
    for name, value in {
        "DATABASE_URL": clean.settings.database_url,
        "DOXA_ENV": "dev",
        "SUPPORT_ADDRESSES": "support@example.com",
        "BCRYPT_ROUNDS": "4",
    }.items():
        monkeypatch.setenv(name, value)  # fmt: skip
    return clean


def _mail_files(tmp_path: Path) -> list[Path]:
    eml = tmp_path / "one.eml"
    eml.write_text(message("From a file", message_id="file@example.org"))
    box = mailbox.mbox(tmp_path / "archive.mbox")
    box.add(message("From an mbox", message_id="mbox@example.org"))
    box.add(message("Out of office", Auto_Submitted="auto-replied"))
    box.close()
    maildir = mailbox.Maildir(tmp_path / "Maildir")
    maildir.add(message("From a maildir", message_id="maildir@example.org"))
    return [eml, tmp_path / "archive.mbox", tmp_path / "Maildir"]


class TestIngest:
    def test_eml_mbox_and_maildir_go_through_the_pipeline_with_a_summary(
        self, env: Context, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["ingest", *map(str, _mail_files(tmp_path))]) == 0
        out = capsys.readouterr().out
        assert "ticket_created                         3" in out and "held" in out
        with env.sessions() as db:
            subjects = sorted(db.scalars(select(Ticket.subject)))
        assert subjects == ["From a file", "From a maildir", "From an mbox"]

    def test_ingesting_twice_makes_no_second_ticket(self, env: Context, tmp_path: Path) -> None:
        files = [str(p) for p in _mail_files(tmp_path)]
        main(["ingest", *files])
        main(["ingest", *files])
        with env.sessions() as db:
            assert len(list(db.scalars(select(Ticket.id)))) == 3

    def test_dry_run_stores_nothing(self, env: Context, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
        assert main(["ingest", "--dry-run", *map(str, _mail_files(tmp_path))]) == 0
        assert "would hold: auto_reply" in capsys.readouterr().out
        with env.sessions() as db:
            assert db.scalar(select(IntakeEvent.id)) is None

    def test_missing_path_is_a_one_line_error(
        self, env: Context, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["ingest", "/nonexistent/file.eml"]) == 1
        assert capsys.readouterr().err.startswith("error: /nonexistent/file.eml")


class TestReprocess:
    def test_failed_events_run_again_and_are_reported(
        self, env: Context, capsys: pytest.CaptureFixture[str]
    ) -> None:
        pipeline = build_pipeline(env.settings)
        item = Delivery(Channel.EMAIL, message("Timed out once").encode(), ["support@example.com"])
        with transaction(env.sessions) as db:  # as a run past PROCESSING_TIMEOUT_SECONDS leaves it
            event_id = pipeline.accept(db, item).id
            pipeline.fail(db, event_id, TimeoutError("slow"), reason="timeout")
        assert main(["reprocess", "--failed"]) == 0
        assert "ticket_created                         1" in capsys.readouterr().out
        with env.sessions() as db:
            event = db.get_one(IntakeEvent, event_id)
        assert event.status is IntakeStatus.TICKET_CREATED and event.attempts == 2

    def test_input_that_is_not_mail_is_rejected_and_never_reprocessed(
        self, env: Context, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        junk = tmp_path / "junk.eml"
        junk.write_bytes(b"\x00\x01 not mail at all")
        main(["ingest", str(junk)])
        assert main(["reprocess", "--failed"]) == 0
        assert "reprocessed 0 failed events" in capsys.readouterr().out
        with env.sessions() as db:
            event = db.scalars(select(IntakeEvent)).one()
        assert (event.status, event.reason) == (IntakeStatus.REJECTED, "no_headers")


class TestCreateUser:
    def test_password_from_stdin_creates_a_user_who_can_log_in(
        self, env: Context, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr("sys.stdin", __import__("io").StringIO("a good password\n"))
        assert main(["create-user", "--email", "Boss@Example.com", "--role", "admin",
                     "--password-stdin"]) == 0  # fmt: skip
        with env.sessions() as db:
            user = db.scalars(select(User)).one()
        assert user.email == "boss@example.com" and user.role == "ADMIN"
        assert env.passwords.verify("a good password", user.password_hash)


class TestInstalledCommand:
    def test_migrate_works_from_any_directory(self, tmp_path: Path) -> None:
        environment = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
            "DOXA_ENV": "dev",
        }
        result = subprocess.run([DOXA, "migrate"], cwd=tmp_path, env=environment,
                                capture_output=True, text=True, timeout=120)  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "x.db").is_file()

    def test_bad_setting_stops_with_one_line_naming_it(self, tmp_path: Path) -> None:
        environment = {**os.environ, "DOXA_ENV": "prod", "JWT_SECRET": "short"}
        result = subprocess.run([DOXA, "migrate"], cwd=tmp_path, env=environment,
                                capture_output=True, text=True, timeout=120)  # fmt: skip
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            "configuration error: JWT_SECRET: must be a random value of at least 32 characters"
        ]
