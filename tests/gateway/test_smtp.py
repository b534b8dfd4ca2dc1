"""End to end: real smtplib clients against the real listener, on each database."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import smtplib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from email.message import EmailMessage

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from doxa.core.db import LARGE_VALUE_BYTES, transaction
from doxa.core.enums import Channel, ClassificationState, IntakeStatus, Role, Status, ThreadedBy
from doxa.core.intake.models import IntakeEvent
from doxa.core.intake.pipeline import Submission
from doxa.core.tickets.models import Attachment
from doxa.gateway.smtp import COMMAND_CALL_LIMIT, MAX_RECIPIENTS, READ_LIMIT, Spool, read_data
from tests.conftest import MakeUser
from tests.gateway.conftest import Smtp, StartSmtp, message


class TestAccepting:
    def test_new_message_becomes_a_ticket_from_a_new_client(self, smtp: Smtp) -> None:
        assert smtp.send(message("VPN down", "Cannot connect since 9am.")) == {}
        [event] = smtp.settle()
        [ticket] = smtp.tickets()
        assert event.status is IntakeStatus.TICKET_CREATED and event.ticket_id == ticket.id
        assert ticket.subject == "VPN down" and ticket.channel == "email"
        assert ticket.requester.email == "alice@example.org" and ticket.requester.role == "CLIENT"
        first, ack = smtp.messages(ticket.id)
        assert first.body == "Cannot connect since 9am." and first.threaded_by is ThreadedBy.NEW
        assert ack.direction == "out" and ack.delivery_state == "not_sent"
        assert ack.body.count(f"[#{ticket.id}]") == 2

    def test_each_outcome_is_one_log_line_a_repeated_delivery_too(
        self, smtp: Smtp, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="doxa.core.intake.outcomes")
        smtp.send(message("VPN down", message_id="vpn@example.org"))
        smtp.send(message("Away", Auto_Submitted="auto-replied"))
        first, second = smtp.settle()
        smtp.send(message("VPN down", message_id="vpn@example.org"))  # a second MX's copy
        *_, again = smtp.settle()
        lines = [r.getMessage() for r in caplog.records if r.name == "doxa.core.intake.outcomes"]
        assert sorted(lines) == [  # two workers: either may finish first
            f"intake event {first.id} email from alice@example.org: ticket_created "
            f"ticket={first.ticket_id} reason=None",
            f"intake event {second.id} email from alice@example.org: held ticket=None "
            "reason=auto_reply",
            f"intake event {again.id} email from alice@example.org: duplicate "
            f"ticket={first.ticket_id} reason=None duplicate_of={first.id}",
        ]

    def test_unknown_recipient_is_refused_with_550_and_nothing_relays(self, smtp: Smtp) -> None:
        for address in ("sales@example.com", "victim@elsewhere.org"):
            with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                smtp.send(message(), to=address)
            code, text = refused.value.recipients[address]
            assert code == 550 and text.startswith(b"5.1.1")
        assert smtp.settle() == []

    def test_plus_address_of_a_support_mailbox_is_accepted(self, smtp: Smtp) -> None:
        assert smtp.send(message(), to="support+anything@example.com") == {}
        assert smtp.settle()[0].status is IntakeStatus.TICKET_CREATED

    def test_declared_size_over_the_limit_gets_552_5_3_4_at_mail(
        self, start_smtp: StartSmtp
    ) -> None:
        smtp = start_smtp(max_message_bytes=4096)
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            smtp.send(message(body="x" * 8000))
        assert refused.value.smtp_code == 552 and refused.value.smtp_error.startswith(b"5.3.4")

    def test_undeclared_data_over_the_limit_gets_552_5_3_4(self, start_smtp: StartSmtp) -> None:
        smtp = start_smtp(max_message_bytes=4096)
        with smtplib.SMTP("127.0.0.1", smtp.port) as client:
            client.ehlo()
            client.mail("alice@example.org")
            client.rcpt("support@example.com")
            code, text = client.data(message(body="x" * 8000).encode())
        assert code == 552 and text.startswith(b"5.3.4")
        assert smtp.settle() == []

    def test_after_an_oversized_message_the_connection_takes_the_next_one(
        self, start_smtp: StartSmtp
    ) -> None:
        smtp = start_smtp(max_message_bytes=100_000)
        with smtplib.SMTP("127.0.0.1", smtp.port) as client:
            client.ehlo()
            client.mail("alice@example.org")
            client.rcpt("support@example.com")
            code, _ = client.data(message(body="x" * (4 * READ_LIMIT)).encode())
            assert code == 552
            client.sendmail("alice@example.org", ["support@example.com"], message("Small"))
        assert [e.status for e in smtp.settle()] == [IntakeStatus.TICKET_CREATED]

    def test_one_connection_carries_many_messages(self, smtp: Smtp) -> None:
        with smtplib.SMTP("127.0.0.1", smtp.port) as client:
            for n in range(150):  # MTAs reuse connections; limits must not cut them off
                client.sendmail("alice@example.org", ["support@example.com"], message(f"n{n}"))
        assert len(smtp.settle()) == 150

    def test_command_flood_is_cut_off(self, smtp: Smtp) -> None:
        with smtplib.SMTP("127.0.0.1", smtp.port) as client:
            codes = {client.noop()[0] for _ in range(COMMAND_CALL_LIMIT + 1)}
        assert 421 in codes

    def test_too_many_recipients_get_452(self, smtp: Smtp) -> None:
        with smtplib.SMTP("127.0.0.1", smtp.port) as client:
            client.ehlo()
            client.mail("alice@example.org")
            codes = [client.rcpt(f"support+{n}@example.com")[0] for n in range(MAX_RECIPIENTS + 1)]
        assert codes[-1] == 452 and set(codes[:-1]) == {250}

    def test_readyz_reports_the_listener(self, smtp: Smtp) -> None:
        response = smtp.http.get("/readyz")
        assert response.status_code == 200 and response.json()["checks"]["smtp"] == "ok"

    def test_size_is_advertised_in_ehlo(self, smtp: Smtp) -> None:
        with smtplib.SMTP("127.0.0.1", smtp.port) as client:
            client.ehlo()
            assert client.has_extn("size")
            assert int(client.esmtp_features["size"]) == smtp.context.settings.max_message_bytes

    def test_same_message_id_twice_makes_one_ticket(self, smtp: Smtp) -> None:
        raw = message(message_id="once@example.org")
        assert smtp.send(raw) == {} and smtp.send(raw) == {}
        first, second = smtp.settle()
        assert first.status is IntakeStatus.TICKET_CREATED
        assert second.status is IntakeStatus.DUPLICATE and second.duplicate_of_id == first.id
        assert len(smtp.tickets()) == 1

    def test_same_message_delivered_concurrently_makes_one_ticket(self, smtp: Smtp) -> None:
        raw = message(message_id="racing@example.org")
        with ThreadPoolExecutor(6) as pool:
            replies = list(pool.map(lambda _: smtp.send(raw), range(6)))
        assert replies == [{}] * 6
        statuses = sorted(e.status for e in smtp.settle())
        assert statuses == [IntakeStatus.DUPLICATE] * 5 + [IntakeStatus.TICKET_CREATED]
        assert len(smtp.tickets()) == 1

    def test_mail_without_message_id_is_deduplicated_by_its_bytes(self, smtp: Smtp) -> None:
        raw = "From: a@example.org\r\nTo: support@example.com\r\nSubject: hi\r\n\r\nno id\r\n"
        smtp.send(raw)
        smtp.send(raw)
        assert [e.status for e in smtp.settle()] == [
            IntakeStatus.TICKET_CREATED,
            IntakeStatus.DUPLICATE,
        ]


class TestParserProcess:
    def test_messages_go_through_the_worker_processes_as_configured(
        self, start_smtp: StartSmtp
    ) -> None:
        smtp = start_smtp(parser_processes=1)
        smtp.send(message("Parsed elsewhere", "Same result."))
        # A fresh worker process imports the parser and the model first: seconds on a busy machine.
        assert smtp.settle(timeout=60)[0].status is IntakeStatus.TICKET_CREATED
        assert smtp.messages(smtp.tickets()[0].id)[0].body == "Same result."

    def test_new_tickets_are_classified_whichever_process_classifies(
        self, start_smtp: StartSmtp
    ) -> None:
        # On PostgreSQL the worker process classifies; on SQLite the server's own thread does.
        smtp = start_smtp(parser_processes=1, ai_provider="local")
        smtp.send(message("Invoice charged twice", "We were billed twice for March."))
        smtp.settle(timeout=60)  # a fresh worker process imports the parser and the model first
        deadline = time.monotonic() + 60  # a fresh database trains its first model first
        while (ticket := smtp.tickets()[0]).classification_state is ClassificationState.PENDING:
            assert time.monotonic() < deadline, "the new ticket was never classified"
            time.sleep(0.1)
        assert ticket.classification_state is ClassificationState.DONE
        assert ticket.ai_model_version is not None and ticket.category is not None


def read_data_from(
    stream: bytes, *, buffer: int, piece: int, limit: int = 0
) -> tuple[bytes | None, bytes]:
    """What read_data makes of `stream` fed `piece` bytes at a time, and what it left unread."""

    async def run() -> tuple[bytes | None, bytes]:
        reader = asyncio.StreamReader(limit=buffer)

        async def feed() -> None:
            for start in range(0, len(stream), piece):
                reader.feed_data(stream[start : start + piece])
                await asyncio.sleep(0)
            reader.feed_eof()

        feeding = asyncio.create_task(feed())
        spool = Spool()
        try:
            complete = await read_data(reader, limit, spool)
            await feeding
            return (bytes(spool.read()) if complete else None), await reader.read()
        finally:
            spool.close()

    return asyncio.run(run())


class TestReadData:
    @pytest.mark.parametrize(
        ("stream", "body"),
        [
            (b"Subject: a\r\n\r\nbody\r\n.\r\n", b"Subject: a\r\n\r\nbody\r\n"),
            (b".\r\n", b""),
            (b"..x\r\n.\r\n", b".x\r\n"),
            (b"a\r\n..b\r\n.c\r\n...\r\n.\r\n", b"a\r\n.b\r\nc\r\n..\r\n"),
            (b"\r\r\n.\r\n", b"\r\r\n"),
            (b"\r\n\r\n.\r\n", b"\r\n\r\n"),
            (
                b"end with a dot.\r\nbare\n.\r\nstill data\r\n.\r\n",
                b"end with a dot.\r\nbare\n\r\nstill data\r\n",
            ),
        ],
    )
    def test_every_split_of_the_stream_gives_the_same_message(
        self, stream: bytes, body: bytes
    ) -> None:
        # Tiny buffers and pieces put a piece boundary at every position of the stream.
        for buffer in range(4, 12):
            for piece in (1, 2, 3, 7, len(stream)):
                got = read_data_from(stream + b"QUIT\r\n", buffer=buffer, piece=piece)
                assert got == (body, b"QUIT\r\n"), (buffer, piece)

    def test_over_the_limit_is_read_to_its_end_and_dropped(self) -> None:
        stream = b"x" * 100 + b"\r\n.\r\nQUIT\r\n"
        assert read_data_from(stream, buffer=8, piece=5, limit=50) == (None, b"QUIT\r\n")


class TestDataTransparency:
    def test_a_message_read_in_many_pieces_keeps_every_leading_dot(self, smtp: Smtp) -> None:
        # Through the listener, several read pieces long (TestReadData tries every split).
        lines = [b"." * (n % 3 + 1) + b"x" * (n % 97) for n in range(40_000)]
        raw = b"Subject: dots\r\n\r\n" + b"\r\n".join(lines) + b"\r\n"
        assert len(raw) > 4 * READ_LIMIT
        smtp.send(raw)
        [event] = smtp.settle()
        with smtp.context.sessions() as db:
            assert db.get_one(IntakeEvent, event.id).raw == raw

    @pytest.mark.parametrize(
        "raw",
        [
            b"Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\nend\r\n",
            b".starts with a dot\r\n\r\nbody\r\n",
            b"\r\n\r\n.\r\n\r\nblank lines first\r\n",
            b"Subject: no final newline\r\n\r\nlast line",
        ],
    )
    def test_stored_bytes_are_exactly_what_the_client_sent(self, smtp: Smtp, raw: bytes) -> None:
        smtp.send(raw)
        [event] = smtp.settle()
        with smtp.context.sessions() as db:
            stored = db.get_one(IntakeEvent, event.id).raw
        assert stored == raw if raw.endswith(b"\r\n") else stored == raw + b"\r\n"


class TestThreading:
    def test_reply_naming_our_acknowledgment_is_a_followup_with_quote_stripped(
        self, smtp: Smtp
    ) -> None:
        smtp.send(message("Printer", "It is on fire."))
        smtp.settle()
        [ticket] = smtp.tickets()
        ack = smtp.messages(ticket.id)[-1]
        reply = message(
            f"Re: [#{ticket.id}] Printer",
            "Now it is out.\r\n\r\n> It is on fire.",
            In_Reply_To=f"<{ack.message_id}>",
            References=f"<{ack.message_id}>",
        )
        smtp.send(reply)
        assert smtp.settle()[-1].status is IntakeStatus.FOLLOWUP
        last = smtp.messages(ticket.id)[-1]
        assert last.threaded_by is ThreadedBy.REFERENCES and last.body == "Now it is out."
        assert "> It is on fire." in last.full_body

    def test_subject_token_from_a_participant_threads(self, smtp: Smtp) -> None:
        smtp.send(message("Login fails"))
        smtp.settle()
        [ticket] = smtp.tickets()
        smtp.send(message(f"Re: [#{ticket.id}] Login fails", "Also on mobile."))
        smtp.settle()
        assert smtp.messages(ticket.id)[-1].threaded_by is ThreadedBy.SUBJECT_TOKEN

    def test_subject_token_from_a_stranger_opens_a_new_ticket(self, smtp: Smtp) -> None:
        smtp.send(message("Login fails"))
        smtp.settle()
        [ticket] = smtp.tickets()
        smtp.send(
            message(f"[#{ticket.id}] me too", sender="mallory@example.net"),
            sender="mallory@example.net",
        )
        assert smtp.settle()[-1].status is IntakeStatus.TICKET_CREATED
        assert len(smtp.tickets()) == 2

    def test_plus_address_threads_to_the_ticket(self, smtp: Smtp) -> None:
        smtp.send(message("Invoice"))
        smtp.settle()
        [ticket] = smtp.tickets()
        smtp.send(message("another thing", "see attached"), to=f"support+{ticket.id}@example.com")
        smtp.settle()
        assert smtp.messages(ticket.id)[-1].threaded_by is ThreadedBy.PLUS_ADDRESS

    def test_reply_reopens_a_resolved_ticket(self, smtp: Smtp) -> None:
        ticket = self._ticket_with_status(smtp, Status.RESOLVED)
        smtp.send(message(f"Re: [#{ticket}] x", "Still broken"))
        smtp.settle()
        assert smtp.tickets()[0].status is Status.OPEN

    def test_reply_to_a_closed_ticket_opens_a_new_one_linking_it(self, smtp: Smtp) -> None:
        ticket = self._ticket_with_status(smtp, Status.CLOSED)
        smtp.send(message(f"Re: [#{ticket}] x", "It broke again"))
        smtp.settle()
        old, new = smtp.tickets()
        assert old.status is Status.CLOSED and new.previous_ticket_id == old.id

    @staticmethod
    def _ticket_with_status(smtp: Smtp, status: Status) -> int:
        smtp.send(message("Broken"))
        smtp.settle()
        with smtp.context.sessions() as db, db.begin():
            ticket = smtp.tickets()[0]
            db.merge(ticket).status = status
        return ticket.id


class TestLoopProtection:
    @pytest.mark.parametrize(
        ("headers", "reason"),
        [
            ({"Auto_Submitted": "auto-replied"}, "auto_reply"),
            ({"Precedence": "bulk"}, "auto_reply"),
            ({"X_Autoreply": "yes"}, "auto_reply"),
            ({"List_Id": "<users.lists.example.org>"}, "list"),
        ],
    )
    def test_machine_mail_is_held_without_ticket(
        self, smtp: Smtp, headers: dict[str, str], reason: str
    ) -> None:
        smtp.send(message(**headers))
        [event] = smtp.settle()
        assert (event.status, event.reason, event.ticket_id) == (IntakeStatus.HELD, reason, None)
        assert smtp.tickets() == []

    def test_null_reverse_path_is_held_as_a_bounce(self, smtp: Smtp) -> None:
        smtp.send(message(sender="mailer-daemon@example.org"), sender="")
        assert smtp.settle()[0].reason == "bounce"

    def test_auto_submitted_no_is_ordinary_mail(self, smtp: Smtp) -> None:
        smtp.send(message(Auto_Submitted="no"))
        assert smtp.settle()[0].status is IntakeStatus.TICKET_CREATED

    def test_mail_from_our_own_address_is_held_as_a_loop(self, smtp: Smtp) -> None:
        smtp.send(message(sender="support@example.com"))
        assert smtp.settle()[0].reason == "loop"

    def test_sender_over_the_hourly_limit_is_held(self, start_smtp: StartSmtp) -> None:
        smtp = start_smtp(sender_hourly_limit=3)
        for n in range(4):
            smtp.send(message(f"message {n}"))
            smtp.settle()
        assert [e.reason for e in smtp.settle()] == [None, None, None, "rate_limited"]


class TestFaults:
    def test_unreachable_database_answers_451_so_the_sender_retries(
        self, start_smtp: StartSmtp
    ) -> None:
        down = start_smtp(database_url="postgresql://postgres@127.0.0.1:1/doxa")
        with pytest.raises(smtplib.SMTPDataError) as refused:
            down.send(message())
        code, error = refused.value.smtp_code, refused.value.smtp_error
        assert code == 451 and isinstance(error, bytes) and error.startswith(b"4.3.0")

    def test_database_lost_mid_run_gets_451_then_mail_flows_again(self, smtp: Smtp) -> None:
        engine = smtp.context.engine
        if engine.dialect.name != "postgresql":
            pytest.skip("needs a database server to take away")
        assert smtp.send(message("before")) == {}
        with _database_refusing_connections(engine.url):
            with pytest.raises(smtplib.SMTPDataError) as refused:
                smtp.send(message("during"))
            assert refused.value.smtp_code == 451
        assert smtp.send(message("after")) == {}
        smtp.settle()
        assert sorted(t.subject for t in smtp.tickets()) == ["after", "before"]

    def test_a_streamed_message_gets_451_while_the_database_is_gone_and_is_kept_whole_after(
        self, smtp: Smtp
    ) -> None:
        if smtp.context.engine.dialect.name != "postgresql":
            pytest.skip("needs a database server to take away")
        raw = message("large", ("y" * 998 + "\r\n") * 4300).encode()
        assert len(raw) > LARGE_VALUE_BYTES  # stored by COPY, not as a parameter
        with _database_refusing_connections(smtp.context.engine.url):
            with pytest.raises(smtplib.SMTPDataError) as refused:
                smtp.send(raw)
            assert refused.value.smtp_code == 451
        assert smtp.send(raw) == {}
        [event] = smtp.settle()
        with smtp.context.sessions() as db:
            assert db.get_one(IntakeEvent, event.id).raw == raw
        assert [t.subject for t in smtp.tickets()] == ["large"]

    def test_empty_message_is_rejected_for_good_and_not_reprocessed(
        self, smtp: Smtp, make_user: MakeUser
    ) -> None:
        smtp.send(b"\r\n")
        [event] = smtp.settle()
        assert (event.status, event.reason) == (IntakeStatus.REJECTED, "empty")
        assert "empty message" in (event.error or "")
        admin = {"Authorization": f"Bearer {smtp.context.tokens.issue(make_user(Role.ADMIN).id)}"}
        response = smtp.http.post(f"/api/v1/intake/{event.id}/reprocess", headers=admin)
        assert response.status_code == 409

    def test_failed_event_can_be_reprocessed(self, smtp: Smtp, make_user: MakeUser) -> None:
        pipeline = smtp.http.app.state.pipeline  # type: ignore[attr-defined]
        item = Submission(Channel.EMAIL, message("Retry me").encode(), ["support@example.com"])
        with transaction(smtp.context.sessions) as db:  # as a timed-out run leaves it
            event_id = pipeline.accept(db, item).id
            pipeline.fail(db, event_id, TimeoutError("slow"), reason="timeout")
        admin = {"Authorization": f"Bearer {smtp.context.tokens.issue(make_user(Role.ADMIN).id)}"}
        response = smtp.http.post(f"/api/v1/intake/{event_id}/reprocess", headers=admin)
        assert response.status_code == 202 and response.json()["status"] == "received"
        [again] = smtp.settle()
        assert again.status is IntakeStatus.TICKET_CREATED and again.reason is None

    def test_reprocessing_an_event_that_did_not_fail_gets_409(
        self, smtp: Smtp, make_user: MakeUser
    ) -> None:
        smtp.send(message())
        [event] = smtp.settle()
        admin = {"Authorization": f"Bearer {smtp.context.tokens.issue(make_user(Role.ADMIN).id)}"}
        response = smtp.http.post(f"/api/v1/intake/{event.id}/reprocess", headers=admin)
        assert response.status_code == 409


@contextmanager
def _database_refusing_connections(url: URL) -> Iterator[None]:
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = url.database
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            connection.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"
                ),
                {"name": name},
            )
        yield
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()


def _rich_mail(*, big: int = 0) -> bytes:
    mail = EmailMessage()
    mail["From"], mail["To"] = "Zoë <zoe@example.org>", "support@example.com"
    mail["Subject"] = "Café menu"
    mail.set_content("<p>Hello <b>team</b><script>alert(1)</script></p>", subtype="html")
    mail.add_attachment(
        b"%PDF-1.4 invoice", maintype="application", subtype="pdf", filename="facture été.pdf"
    )
    if big:
        mail.add_attachment(b"x" * big, maintype="application", subtype="zip", filename="big.zip")
    return mail.as_bytes()


class TestContent:
    def test_html_only_mail_becomes_text_and_stored_html_is_sanitized(self, smtp: Smtp) -> None:
        smtp.send(_rich_mail())
        smtp.settle()
        ticket = smtp.tickets()[0]
        first = smtp.messages(ticket.id)[0]
        assert ticket.subject == "Café menu" and ticket.requester.full_name == "Zoë"
        assert "Hello **team**" in first.body and "<script" not in (first.html or "")
        assert "<b>team</b>" in (first.html or "")

    def test_attachment_is_stored_with_its_metadata_and_downloads(
        self, smtp: Smtp, make_user: MakeUser
    ) -> None:
        smtp.send(_rich_mail())
        smtp.settle()
        ticket = smtp.tickets()[0]
        [attachment] = smtp.messages(ticket.id)[0].attachments
        assert attachment.filename == "facture été.pdf" and attachment.size == 16
        assert attachment.sha256 == hashlib.sha256(b"%PDF-1.4 invoice").hexdigest()
        agent = {"Authorization": f"Bearer {smtp.context.tokens.issue(make_user(Role.AGENT).id)}"}
        response = smtp.http.get(f"/api/v1/attachments/{attachment.id}", headers=agent)
        assert response.content == b"%PDF-1.4 invoice"
        assert response.headers["content-type"] == "application/pdf"
        assert "facture%20%C3%A9t%C3%A9.pdf" in response.headers["content-disposition"]

    def test_attachment_over_the_limit_keeps_metadata_and_a_note(
        self, start_smtp: StartSmtp
    ) -> None:
        smtp = start_smtp(max_attachment_bytes=1024)
        smtp.send(_rich_mail(big=5000))
        smtp.settle()
        first = smtp.messages(smtp.tickets()[0].id)[0]
        big = next(a for a in first.attachments if a.filename == "big.zip")
        assert big.size == 5000 and any("big.zip" in note for note in first.notes)
        with smtp.context.sessions() as db:
            assert db.get_one(Attachment, big.id).content is None


class TestClassificationOfMail:
    def test_mail_is_classified_and_a_pinned_mailbox_category_wins(
        self, start_smtp: StartSmtp
    ) -> None:
        smtp = start_smtp(ai_provider="local")
        smtp.send(message("App crashes", "The app crashes on start since the update"))
        smtp.send(
            message("App crashes too", "Crashes on start, error 500"), to="billing@example.com"
        )
        smtp.settle()
        deadline = time.monotonic() + 30
        while any(t.classification_state == "pending" for t in smtp.tickets()):
            assert time.monotonic() < deadline, "mail was not classified"
            time.sleep(0.05)
        pinned, general = sorted(smtp.tickets(), key=lambda t: t.mailbox or "")
        assert general.ai_category == pinned.ai_category == "bug"
        assert general.category == "bug" and pinned.category == "billing"
