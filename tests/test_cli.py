"""The `doxa` command, as a user runs it."""

from __future__ import annotations

import io
import mailbox
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from doxa.cli import main
from doxa.core.config import Settings
from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.enums import Channel, DeliveryState, Direction, IntakeStatus, Role
from doxa.core.intake.inbound import InboundMessage
from doxa.core.intake.models import IntakeEvent
from doxa.core.intake.pipeline import Pipeline, RawEvent, Submission
from doxa.core.models import Message, Ticket, User
from doxa.core.triage.models import ClassifierModel
from doxa.gateway.pipeline import build_pipeline
from tests.conftest import MakeUser
from tests.gateway.conftest import message, relayed
from tests.probes import imported

DOXA = str(Path(sys.executable).with_name("doxa"))


@pytest.fixture
def env(clean: Context, monkeypatch: pytest.MonkeyPatch) -> Context:
    for name, value in {
        "DATABASE_URL": clean.settings.database_url,
        "DOXA_ENV": "dev",
        "SUPPORT_ADDRESSES": "support@example.com",
        "BCRYPT_ROUNDS": "4",
    }.items():
        monkeypatch.setenv(name, value)
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

    def test_dry_run_stores_nothing(
        self, env: Context, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["ingest", "--dry-run", *map(str, _mail_files(tmp_path))]) == 0
        assert "would hold: auto_reply" in capsys.readouterr().out
        with env.sessions() as db:
            assert db.scalar(select(IntakeEvent.id)) is None
            assert db.scalar(select(ClassifierModel.id)) is None  # not even the seed model

    def test_dry_run_shows_the_category_each_message_would_get(
        self, env: Context, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        refund = "My card was charged twice for invoice 2231. Please refund one of the payments."
        (tmp_path / "invoice.eml").write_text(message("Invoice 2231 charged twice", refund))
        (tmp_path / "vague.eml").write_text(
            message("Help", "Something is wrong since this morning, can you look?")
        )
        (tmp_path / "empty.eml").write_bytes(b"")
        assert main(["ingest", "--dry-run", str(tmp_path)]) == 0
        out = capsys.readouterr().out
        filed = (
            rf"{tmp_path}/invoice.eml: would be filed as billing: priority \w+, confidence [.\d]+"
        )
        assert re.search(filed, out)
        assert f"{tmp_path}/vague.eml: would go to triage: best guess " in out
        assert f"{tmp_path}/empty.eml: skipped_empty" in out
        assert re.search(r"\n  would be filed as billing +1\n", out)  # the summary counts it

    def test_dry_run_to_a_pinned_mailbox_shows_the_mailboxs_category(
        self,
        env: Context,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("SUPPORT_ADDRESSES", "support@example.com,billing@example.com=billing")
        broken = "Since the update the VPN client fails with error 809 and cannot connect."
        (tmp_path / "vpn.eml").write_text(message("VPN fails after update", broken))
        command = ["ingest", "--dry-run", "--to", "billing@example.com", str(tmp_path)]
        assert main(command) == 0
        out = capsys.readouterr().out
        assert "vpn.eml: would be filed as billing: the mailbox's category (the model says " in out

    def test_summary_names_rejected_and_held_files_and_empty_files_are_skipped(
        self, env: Context, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (tmp_path / "good.eml").write_text(message("Fine", message_id="good@example.org"))
        (tmp_path / "junk.eml").write_bytes(b"\x00\x01 not mail at all")
        (tmp_path / "ooo.eml").write_text(message("Away", Auto_Submitted="auto-replied"))
        (tmp_path / "empty.eml").write_bytes(b"")
        assert main(["ingest", str(tmp_path)]) == 0
        out = capsys.readouterr().out
        assert f"{tmp_path}/junk.eml: rejected: no_headers" in out
        assert f"{tmp_path}/ooo.eml: held: auto_reply" in out
        assert f"{tmp_path}/empty.eml: skipped_empty" in out and "good.eml" not in out
        with env.sessions() as db:
            statuses = sorted(db.scalars(select(IntakeEvent.status)))
        assert statuses == [IntakeStatus.HELD, IntakeStatus.REJECTED, IntakeStatus.TICKET_CREATED]

    def test_summary_names_a_file_whose_processing_failed_with_its_error(
        self,
        env: Context,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        normalize = Pipeline.normalize

        def failing(self: Pipeline, raw: RawEvent) -> InboundMessage:
            message = normalize(self, raw)
            if message.subject == "Boom":
                raise RuntimeError("the parser broke on this one")
            return message

        monkeypatch.setattr(Pipeline, "normalize", failing)
        (tmp_path / "boom.eml").write_text(message("Boom", message_id="boom@example.org"))
        (tmp_path / "fine.eml").write_text(message("Fine", message_id="fine@example.org"))
        assert main(["ingest", str(tmp_path)]) == 0
        out = capsys.readouterr().out
        assert f"{tmp_path}/boom.eml: failed: " in out and "the parser broke" in out
        assert "fine.eml" not in out.split("to look at:")[1]

    def test_an_archive_is_not_acknowledged_unless_asked(
        self, env: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("OUTBOUND_SMTP_URL", "smtp://127.0.0.1:1")  # queued acks would go
        archive = mailbox.mbox(tmp_path / "old-inbox.mbox")
        for n in range(3):
            archive.add(message(f"Old {n}", sender=f"customer{n}@example.org"))
        archive.close()
        assert main(["ingest", str(tmp_path / "old-inbox.mbox")]) == 0
        assert _acknowledgments(env) == []
        (tmp_path / "new.eml").write_text(message("Recent", sender="recent@example.org"))
        assert main(["ingest", "--acknowledge", str(tmp_path / "new.eml")]) == 0
        assert _acknowledgments(env) == [("recent@example.org", DeliveryState.QUEUED)]

    def test_a_bad_template_folder_stops_the_command_in_one_line(
        self,
        env: Context,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.setenv("ACK_TEMPLATES", str(tmp_path / "missing"))
        assert main(["ingest", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert (
            err.splitlines()[-1]
            == f"configuration error: ACK_TEMPLATES: {tmp_path}/missing is not a folder"
        )

    def test_missing_path_is_a_one_line_error(
        self, env: Context, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["ingest", "/nonexistent/file.eml"]) == 1
        err = capsys.readouterr().err  # a dev run's warning about its random JWT key may precede
        assert err.splitlines()[-1].startswith("error: /nonexistent/file.eml")
        assert "Traceback" not in err


class TestReprocess:
    def test_failed_events_run_again_and_are_reported(
        self, env: Context, capsys: pytest.CaptureFixture[str]
    ) -> None:
        pipeline = build_pipeline(env.settings)
        item = Submission(
            Channel.EMAIL, message("Timed out once").encode(), ["support@example.com"]
        )
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
        monkeypatch.setattr("sys.stdin", io.StringIO("a good password\n"))
        assert (
            main(
                [
                    "create-user",
                    "--email",
                    "Boss@Example.com",
                    "--role",
                    "admin",
                    "--password-stdin",
                ]
            )
            == 0
        )
        with env.sessions() as db:
            user = db.scalars(select(User)).one()
        assert user.email == "boss@example.com" and user.role == "ADMIN"
        assert env.passwords.verify("a good password", user.password_hash)

    def test_a_staff_address_at_localhost_is_accepted(
        self, env: Context, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr("sys.stdin", io.StringIO("a good password\n"))
        command = ["create-user", "--email", "support@localhost", "--role", "agent"]
        assert main([*command, "--password-stdin"]) == 0
        with env.sessions() as db:
            assert db.scalars(select(User.email)).one() == "support@localhost"

    def test_without_a_terminal_it_says_to_use_password_stdin_in_one_line(
        self, env: Context, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("JWT_SECRET", "k" * 48)  # no warning about a random key
        monkeypatch.setattr(
            "sys.stdin", io.StringIO("")
        )  # as under cron or `docker exec` without -t
        assert main(["create-user", "--email", "boss@example.com", "--role", "admin"]) == 2
        out, err = capsys.readouterr()
        assert out == "" and len(err.splitlines()) == 1 and "--password-stdin" in err
        with env.sessions() as db:
            assert db.scalar(select(User.id)) is None

    @pytest.mark.parametrize("password", ["short", "password123"])
    def test_a_short_or_common_password_says_what_to_choose_in_one_line(
        self,
        env: Context,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        password: str,
    ) -> None:
        monkeypatch.setenv("JWT_SECRET", "k" * 48)
        monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
        command = ["create-user", "--email", "boss@example.com", "--role", "admin"]
        assert main([*command, "--password-stdin"]) == 2
        err = capsys.readouterr().err
        assert (
            err.splitlines() == [err.strip()]
            and "at least 10 characters that is not a commonly used password" in err
        )


class TestServe:
    def test_host_and_ports_on_the_command_line_win_over_the_environment(
        self, env: Context, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        seen: list[Settings] = []

        def serve(_args: object, settings: Settings) -> int:
            seen.append(settings)
            return 0

        monkeypatch.setenv("HTTP_PORT", "8123")
        monkeypatch.setattr("doxa.cli.serve", serve)
        assert main(["serve", "--host", "127.0.0.2", "--port", "9001", "--smtp-port", "2601"]) == 0
        assert (seen[0].http_host, seen[0].http_port, seen[0].smtp_port) == (
            "127.0.0.2",
            9001,
            2601,
        )

    def test_a_bad_port_is_a_configuration_error(
        self, env: Context, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["serve", "--port", "70000"]) == 2
        assert capsys.readouterr().err.startswith("configuration error: HTTP_PORT")


class TestInstalledCommand:
    def test_version(self) -> None:
        result = subprocess.run([DOXA, "--version"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and result.stdout.strip() == "doxa 0.1.0"

    def test_help_imports_neither_the_web_app_nor_scikit_learn(self) -> None:
        code = "from doxa.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
        heavy = ("sklearn", "fastapi", "starlette", "uvicorn", "doxa.main", "doxa.api")
        output, loaded = imported(code, heavy)
        assert "usage: doxa" in output
        assert loaded == []

    def test_migrate_works_from_any_directory(self, tmp_path: Path) -> None:
        environment = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
            "DOXA_ENV": "dev",
        }
        result = subprocess.run(
            [DOXA, "migrate"],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "x.db").is_file()

    def test_bad_setting_stops_with_one_line_naming_it(self, tmp_path: Path) -> None:
        environment = {**os.environ, "DOXA_ENV": "prod", "JWT_SECRET": "short"}
        result = subprocess.run(
            [DOXA, "migrate"],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            "configuration error: JWT_SECRET: must be a random value of at least 32 characters"
        ]


def _acknowledgments(context: Context) -> list[tuple[str, DeliveryState | None]]:
    """(recipient, delivery state) of every recorded acknowledgment."""
    with context.sessions() as db:
        query = (
            select(User.email, Message.delivery_state)
            .join(Ticket, Ticket.id == Message.ticket_id)
            .join(User, User.id == Ticket.requester_id)
            .where(Message.direction == Direction.OUT, Message.author_id.is_(None))
        )
        return [(email, state) for email, state in db.execute(query)]


def _pipe(
    env: dict[str, str],
    raw: bytes,
    *,
    sender: str = "alice@example.org",
    recipient: str = "support@example.com",
) -> subprocess.CompletedProcess[bytes]:
    """What Postfix's pipe transport does: the message on stdin, the envelope as arguments."""
    command = [DOXA, "ingest", "-", "--sender", sender, "--recipient", recipient]
    return subprocess.run(command, input=raw, env=env, capture_output=True, timeout=120)


class TestIngestPipe:
    @pytest.fixture
    def environment(self, clean: Context) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": clean.settings.database_url,
            "DOXA_ENV": "dev",
            "SUPPORT_ADDRESSES": "support@example.com,billing@example.com=billing",
            "MAX_MESSAGE_BYTES": "4096",
            # Every `doxa ingest -` hashes a dummy password as it builds its context: 12 rounds
            # were ~0.4 s of each ~1.5 s process.
            "BCRYPT_ROUNDS": "4",
        }

    def test_piped_message_becomes_a_ticket_and_a_plus_address_follows_up(
        self, clean: Context, environment: dict[str, str]
    ) -> None:
        first = _pipe(environment, message("VPN down", message_id="pipe-1@example.org").encode())
        assert first.returncode == 0, first.stderr
        with clean.sessions() as db:
            ticket = db.scalars(select(Ticket)).one()
        follow_up = message(f"Re: {ticket.subject}", "Still down.", message_id="pipe-2@example.org")
        second = _pipe(
            environment, follow_up.encode(), recipient=f"support+{ticket.id}@example.com"
        )
        assert second.returncode == 0, second.stderr
        with clean.sessions() as db:
            events = list(db.scalars(select(IntakeEvent).order_by(IntakeEvent.id)))
            assert len(list(db.scalars(select(Ticket.id)))) == 1
        assert [e.status for e in events] == [IntakeStatus.TICKET_CREATED, IntakeStatus.FOLLOWUP]
        assert events[1].ticket_id == ticket.id

    def test_pinned_mailbox_and_a_repeated_delivery(
        self, clean: Context, environment: dict[str, str]
    ) -> None:
        raw = message("Invoice twice", message_id="pipe-3@example.org").encode()
        assert _pipe(environment, raw, recipient="billing@example.com").returncode == 0
        assert _pipe(environment, raw, recipient="billing@example.com").returncode == 0
        with clean.sessions() as db:
            ticket = db.scalars(select(Ticket)).one()
            statuses = sorted(db.scalars(select(IntakeEvent.status)))
        assert ticket.mailbox == "billing@example.com" and ticket.pinned_category == "billing"
        assert statuses == [IntakeStatus.DUPLICATE, IntakeStatus.TICKET_CREATED]

    def test_null_sender_is_held_as_a_bounce(
        self, clean: Context, environment: dict[str, str]
    ) -> None:
        raw = message("Question about my order")  # only the empty envelope sender says bounce
        result = _pipe(environment, raw.encode(), sender="")
        assert result.returncode == 0, result.stderr
        with clean.sessions() as db:
            event = db.scalars(select(IntakeEvent)).one()
            assert db.scalar(select(Ticket.id)) is None
        assert event.status is IntakeStatus.HELD and event.reason == "bounce"

    def test_piped_mail_is_acknowledged_as_smtp_mail_is(
        self, clean: Context, environment: dict[str, str]
    ) -> None:
        environment["OUTBOUND_SMTP_URL"] = "smtp://127.0.0.1:1"
        assert _pipe(environment, message("Printer").encode()).returncode == 0
        assert _acknowledgments(clean) == [("alice@example.org", DeliveryState.QUEUED)]

    def test_foreign_recipient_and_oversized_message_exit_65(
        self, clean: Context, environment: dict[str, str]
    ) -> None:
        foreign = _pipe(environment, message().encode(), recipient="someone@elsewhere.example")
        too_big = _pipe(environment, message(body="x" * 8000).encode())
        assert (foreign.returncode, too_big.returncode) == (65, 65)
        assert b"no such mailbox" in foreign.stderr and b"too big" in too_big.stderr
        with clean.sessions() as db:
            assert db.scalar(select(IntakeEvent.id)) is None

    def test_a_stored_message_prints_nothing_for_the_mtas_status_text(
        self, environment: dict[str, str]
    ) -> None:
        result = _pipe(environment, message("Quiet", message_id="pipe-q@example.org").encode())
        assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")

    def test_a_refusal_prints_one_short_line(self, environment: dict[str, str]) -> None:
        result = _pipe(environment, message().encode(), recipient="someone@elsewhere.example")
        assert (result.returncode, result.stdout) == (65, b"")
        [line] = result.stderr.decode().splitlines()
        assert "no such mailbox" in line and len(line) <= 200

    def test_staff_mail_is_believed_only_with_trusted_pipe(
        self, clean: Context, environment: dict[str, str], make_user: MakeUser
    ) -> None:
        agent = make_user(Role.AGENT)
        trusting = {**environment, "TRUSTED_AUTHSERV_IDS": "mx.ours.test"}
        trusting["TRUSTED_RELAYS"] = "127.0.0.1"  # loopback is not the pipe
        verdict = "mx.ours.test; dmarc=pass header.from=example.com"
        for flag, message_id in (("false", "pipe-s1@example.org"), ("true", "pipe-s2@example.org")):
            raw = relayed(message("Note", sender=agent.email, message_id=message_id), verdict)
            assert _pipe({**trusting, "TRUSTED_PIPE": flag}, raw.encode()).returncode == 0
        with clean.sessions() as db:
            events = list(db.scalars(select(IntakeEvent).order_by(IntakeEvent.id)))
        assert [(e.status, e.reason) for e in events] == [
            (IntakeStatus.HELD, "spoofed"),
            (IntakeStatus.TICKET_CREATED, None),
        ]

    def test_database_away_exits_75_so_the_mta_retries(self, tmp_path: Path) -> None:
        closed = {
            **os.environ,
            "DOXA_ENV": "dev",
            "SUPPORT_ADDRESSES": "support@example.com",
            "BCRYPT_ROUNDS": "4",
            "DATABASE_URL": "postgresql+psycopg://doxa@127.0.0.1:9/doxa",
        }
        assert _pipe(closed, message().encode()).returncode == 75
        missing = {**closed, "DATABASE_URL": f"sqlite:///{tmp_path}/no/such/dir/doxa.db"}
        result = _pipe(missing, message().encode())
        assert result.returncode == 75 and len(result.stderr.splitlines()) == 1
