"""Mail built to hurt: every message costs bounded time and memory, and never stalls the next."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import resource
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import select

from doxa.core.context import Context
from doxa.core.db import LARGE_VALUE_BYTES, transaction
from doxa.core.enums import Channel, IntakeStatus
from doxa.core.intake.inbound import InboundMessage
from doxa.core.intake.models import IntakeEvent
from doxa.core.intake.pipeline import Submission, message_id_of
from doxa.core.intake.processing import process_event
from doxa.core.intake.text import MAX_HTML_DEPTH, flatten_deep, html_to_text, sanitize_html
from doxa.core.tickets.models import Attachment
from doxa.gateway.mime.linear import decode_header
from doxa.gateway.pipeline import build_pipeline
from doxa.gateway.smtp import (
    READ_LIMIT,
    RESERVED_DESCRIPTORS,
    SPOOL_BYTES,
    LoopErrorLog,
    Spool,
    read_data,
    session_limit,
)
from tests.conftest import make_settings
from tests.gateway.conftest import Smtp, StartSmtp, message

Parse = Callable[..., InboundMessage]
WORD = "=?utf-8?q?caf=C3=A9?="  # 21 bytes: 3 MB of them is 140,000 words


def encoded_subject(words: int) -> bytes:
    """A message whose subject is `words` encoded words, folded as a client would."""
    subject = "\r\n ".join(" ".join([WORD] * 40) for _ in range(words // 40))
    return message(subject, "the body survives").encode()


def many_parts(count: int) -> bytes:
    head = (
        "From: a@example.org\r\nTo: support@example.com\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    )
    first = "--b\r\nContent-Type: text/plain\r\n\r\nthe text part\r\n"
    part = "--b\r\nContent-Type: application/octet-stream\r\n\r\nx\r\n"
    return (head + first + part * count + "--b--\r\n").encode()


def html_only(html: str) -> bytes:
    return message("html", html).replace("text/plain", "text/html").encode()


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


@pytest.mark.timing
class TestEncodedWords:
    def test_decoding_time_grows_linearly_with_the_number_of_words(self) -> None:
        small = " ".join([WORD] * 20_000)
        large = " ".join([WORD] * 160_000)
        decode_header(small)  # warm up
        # Quadratic would be 64 times slower; allow generous noise on a shared machine.
        assert timed(lambda: decode_header(large)) < 20 * timed(lambda: decode_header(small)) + 0.5

    def test_a_3_mb_subject_without_the_header_limit_parses_in_seconds(self, parse: Parse) -> None:
        raw = encoded_subject(140_000)
        assert len(raw) > 3_000_000
        elapsed = timed(lambda: parse(raw, max_header_bytes=len(raw) * 2))
        assert elapsed < 20  # was minutes: the stdlib decoder mail-parser uses is quadratic

    def test_a_3_mb_subject_is_cut_at_the_header_limit_and_noted(self, parse: Parse) -> None:
        raw = encoded_subject(140_000)
        started = time.perf_counter()
        msg = parse(raw)
        assert time.perf_counter() - started < 5
        assert msg.subject.startswith("cafécafé")  # adjacent encoded words join
        assert msg.text == "the body survives"
        assert any("header block" in note and "262144" in note for note in msg.notes)


class TestHeaderBlockLimit:
    def test_fields_after_the_limit_are_not_processed(self, parse: Parse) -> None:
        filler = "".join(f"X-Filler-{i}: {'y' * 60}\r\n" for i in range(100))
        raw = f"From: a@example.org\r\n{filler}Subject: late\r\n\r\nbody\r\n"
        msg = parse(raw, max_header_bytes=2048)
        assert msg.subject == "(no subject)"
        assert msg.sender_email == "a@example.org" and msg.text == "body"
        assert any("header block" in note for note in msg.notes)

    def test_a_header_block_under_the_limit_is_untouched(self, parse: Parse) -> None:
        msg = parse(message("fine", "body"))
        assert msg.subject == "fine" and not any("header block" in n for n in msg.notes)


class TestMimePartLimit:
    @pytest.mark.timing
    def test_150000_one_byte_parts_stop_at_the_limit_with_a_note(self, parse: Parse) -> None:
        raw = many_parts(150_000)
        started = time.perf_counter()
        msg = parse(raw)
        assert time.perf_counter() - started < 10
        assert msg.text == "the text part"
        assert 990 <= len(msg.attachments) < 1000
        assert any("more than 1000 MIME parts" in note for note in msg.notes)

    def test_a_smaller_limit_is_honoured(self, parse: Parse) -> None:
        msg = parse(many_parts(50), max_mime_parts=10)
        assert len(msg.attachments) < 10
        assert any("more than 10 MIME parts" in note for note in msg.notes)

    def test_lines_that_only_look_like_delimiters_do_not_count(self, parse: Parse) -> None:
        body = "\r\n".join(["-- ", "--- a/file", "--not-a-boundary"] * 500)
        msg = parse(message("patch", body), max_mime_parts=10)
        assert not any("MIME parts" in note for note in msg.notes)
        assert "--- a/file" in msg.text


class TestNestedHtml:
    @pytest.mark.timing
    @pytest.mark.parametrize("tag", ["div", "blockquote", "span", "table"])
    def test_deep_nesting_is_flattened_and_the_text_kept(self, parse: Parse, tag: str) -> None:
        depth = 100_000  # 1.2 MB of <blockquote>: under the 2 MB read of HTML bodies
        html = f"<{tag}>" * depth + "deep text" + f"</{tag}>" * depth
        started = time.perf_counter()
        msg = parse(html_only(html))
        assert time.perf_counter() - started < 10
        assert "deep text" in msg.text
        assert msg.html is not None and "deep text" in msg.html

    @pytest.mark.timing
    @pytest.mark.parametrize("piece", ["<div ", "<a", '<a href="', "&#", "&&", "&amp;", "&notin"])
    def test_malformed_markup_and_runs_of_ampersands_cost_linear_time(
        self, parse: Parse, piece: str
    ) -> None:
        small = html_only(piece * 20_000 + " end")
        large = html_only(piece * 160_000 + " end")  # up to 1.4 MB
        parse(small)  # warm up
        # Quadratic would be 64 times slower; allow generous noise on a shared machine.
        assert timed(lambda: parse(large)) < 20 * timed(lambda: parse(small)) + 1

    def test_ampersands_survive_the_placeholder_escaped_once(self) -> None:
        html = '<p>Q&amp;A &#38; x&y <a href="https://e.example/?a=1&amp;b=2&c=3">l</a></p>'
        assert sanitize_html(html) == (
            "<p>Q&amp;A &amp; x&amp;y "
            '<a href="https://e.example/?a=1&amp;b=2&amp;c=3" rel="noopener noreferrer nofollow">'
            "l</a></p>"
        )
        assert html_to_text(html) == "Q&A & x&y [l](https://e.example/?a=1&b=2&c=3)"

    def test_ordinary_nesting_is_left_alone(self) -> None:
        html = "<div>" * 10 + "<p>one<p>two" + "</div>" * 10
        assert flatten_deep(html) == html

    def test_tags_past_the_depth_are_dropped_both_ways(self) -> None:
        depth = MAX_HTML_DEPTH + 5
        flat = flatten_deep("<b>" * depth + "x" + "</b>" * depth)
        assert flat == "<b>" * MAX_HTML_DEPTH + "x" + "</b>" * MAX_HTML_DEPTH


@pytest.mark.timing
class TestCharsetsThatAreNotMail:
    @pytest.mark.parametrize("charset", ["punycode", "idna", "unicode-escape"])
    def test_a_body_labelled_with_a_non_mail_codec_is_read_as_text_quickly(
        self, parse: Parse, charset: str
    ) -> None:
        raw = message("label", "a" * 1_000_000 + " done").replace("utf-8", charset)
        started = time.perf_counter()
        msg = parse(raw)
        assert time.perf_counter() - started < 5
        assert msg.text.endswith(" done")


@pytest.mark.timing
class TestSlowMessageDoesNotStallOthers:
    """One worker process, a tiny PROCESSING_TIMEOUT_SECONDS, and a message that needs longer."""

    def test_the_slow_event_fails_with_reason_timeout_and_the_next_gets_its_ticket(
        self, start_smtp: StartSmtp
    ) -> None:
        smtp = start_smtp(worker_processes=1, processing_timeout_seconds=1)
        # 20 MB of short lines: mail-parser's load alone needs 3-6 s for it (linear, but
        # slow; bench/README.md, mime_cost.py). HTML that was slow is bounded now.
        smtp.send(message("slow", "-- \r\nx\r\n" * 2_500_000))
        sent = time.monotonic()
        smtp.send(message("Ordinary", "Just a question."))
        while not [t for t in smtp.tickets() if t.subject == "Ordinary"]:
            # The deadline, a new process's start-up, then the message: seconds, not minutes.
            assert time.monotonic() - sent < 30, "the ordinary message waited behind the slow one"
            time.sleep(0.1)
        slow, ordinary = smtp.settle()
        assert (slow.status, slow.reason) == (IntakeStatus.FAILED, "timeout")
        assert slow.error is not None and "replaced" in slow.error
        assert ordinary.status is IntakeStatus.TICKET_CREATED

    def test_hostile_shapes_are_processed_in_bounded_time_and_the_next_flows_on(
        self, start_smtp: StartSmtp
    ) -> None:
        smtp = start_smtp(parser_processes=1, processing_timeout_seconds=30)
        for raw in (encoded_subject(140_000), many_parts(150_000)):
            smtp.send(raw)
        sent = time.monotonic()
        smtp.send(message("Ordinary", "Just a question."))
        events = smtp.settle(timeout=60)
        assert time.monotonic() - sent < 30
        assert [e.status for e in events] == [IntakeStatus.TICKET_CREATED] * 3


def banner(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    return sock.recv(100)


@contextmanager
def idle_sessions(port: int, count: int) -> Iterator[list[socket.socket]]:
    opened = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    try:
        yield opened
    finally:
        for sock in opened:
            sock.close()


class TestConnectionPressure:
    def test_sessions_over_the_per_client_limit_get_421_and_are_closed(
        self, start_smtp: StartSmtp
    ) -> None:
        smtp = start_smtp(smtp_max_connections_per_client=2)
        with idle_sessions(smtp.port, 2) as held:
            assert [banner(s)[:3] for s in held] == [b"220", b"220"]
            with idle_sessions(smtp.port, 1) as [refused]:
                assert banner(refused) == b"421 4.7.0 Too many connections, try again later\r\n"
                assert refused.recv(100) == b""  # closed by the server
            held[0].close()
            deadline = time.monotonic() + 5
            while True:  # the released place is free again
                with idle_sessions(smtp.port, 1) as [again]:
                    if banner(again).startswith(b"220"):
                        break
                assert time.monotonic() < deadline
                time.sleep(0.05)

    def test_a_flood_of_idle_connections_leaves_the_api_and_other_mail_working(
        self, start_smtp: StartSmtp
    ) -> None:
        smtp = start_smtp(smtp_max_connections=40, smtp_max_connections_per_client=1000)
        with idle_sessions(smtp.port, 300) as flood:
            answers = Counter(banner(s)[:3] for s in flood)
            assert answers == {b"220": 40, b"421": 260}
            assert smtp.http.get("/healthz").status_code == 200
            assert smtp.http.get("/readyz").status_code == 200
        smtp.send(message("After the flood"))
        assert [e.status for e in smtp.settle()] == [IntakeStatus.TICKET_CREATED]

    def test_data_beyond_1_mib_is_spooled_to_disk_while_it_arrives(self) -> None:
        async def unfinished() -> tuple[bool, int]:
            reader = asyncio.StreamReader(limit=READ_LIMIT)
            reader.feed_data(b"x" * 3 * SPOOL_BYTES)  # no end of data yet
            spool = Spool()
            reading = asyncio.create_task(read_data(reader, 0, spool))
            await asyncio.sleep(0.2)
            try:
                return spool.on_disk, spool.size
            finally:
                reading.cancel()
                spool.close()

        on_disk, size = asyncio.run(unfinished())
        assert on_disk and size > 2 * SPOOL_BYTES  # the reader keeps a few bytes back

    def test_a_small_message_stays_in_memory(self) -> None:
        spool = Spool()
        spool.write(b"small")
        assert not spool.on_disk and spool.read() == b"small"
        spool.close()

    def test_a_spooled_message_over_the_copy_threshold_is_stored_byte_exact(
        self, smtp: Smtp
    ) -> None:
        noise = bytes(range(256)).replace(b"\n", b"").replace(b"\r", b"")
        lines = [b"." + noise[i % 200 :] + b"\r" for i in range(30_000)]  # dots, bare CRs
        raw = b"Subject: spooled\r\n\r\n" + b"\r\n".join(lines) + b"\r\n"
        assert len(raw) > LARGE_VALUE_BYTES
        smtp.send(raw)
        [event] = smtp.settle()
        with smtp.context.sessions() as db:
            assert db.get_one(IntakeEvent, event.id).raw == raw

    def test_the_descriptor_limit_keeps_a_reserve_for_the_api(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 1024))
        assert session_limit(200) == 200
        assert session_limit(5000) == 1024 - RESERVED_DESCRIPTORS


class TestLoopErrorLog:
    def test_a_storm_of_accept_errors_logs_one_line_per_period(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        handler = LoopErrorLog(period=60)
        loop = asyncio.new_event_loop()
        error = {"message": "socket.accept() out of system resource", "exception": OSError(24)}
        with caplog.at_level(logging.ERROR, logger="doxa.gateway.smtp"):
            for _ in range(10_000):
                handler(loop, error)
        loop.close()
        assert len(caplog.records) == 1
        handler.period = 0
        with caplog.at_level(logging.ERROR, logger="doxa.gateway.smtp"):
            handler(loop, error)
        assert "9999 more like it" in caplog.records[-1].getMessage()


def _flat(value: bytes) -> bytes:
    return value.replace(b"\r", b" ").replace(b"\n", b" ")


def _encoded_word(charset: str, encoding: str, data: bytes) -> bytes:
    if encoding == "b":
        return b"=?%s?B?%s?=" % (charset.encode(), base64.b64encode(data))
    return b"=?%s?Q?%s?=" % (charset.encode(), binascii.b2a_qp(data, header=True))


header_values = st.one_of(
    st.text(max_size=400).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.binary(max_size=400),
    st.builds(
        _encoded_word,
        st.sampled_from(["utf-7", "utf-8", "utf-16", "iso-8859-1", "gb2312", "bogus"]),
        st.sampled_from(["q", "b"]),
        st.binary(max_size=300),
    ),
).map(_flat)
local_parts = st.text(st.sampled_from("abcxyz.+-_"), min_size=1, max_size=400)


def hostile_headers(
    name: bytes, address: str, subject: bytes, ctype: bytes, filename: bytes, message_id: bytes
) -> bytes:
    return (
        b"From: " + name + b" <" + address.encode() + b">\r\nTo: support@example.com\r\n"
        b"Subject: " + subject + b"\r\nMessage-ID: <" + message_id + b">\r\n"
        b"In-Reply-To: " + message_id + b"\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbody\r\n"
        b"--b\r\nContent-Type: " + ctype + b'; name="' + filename + b'"\r\n'
        b"Content-ID: <" + message_id + b">\r\n\r\nzz\r\n--b--\r\n"
    )


def store(clean: Context, raw: bytes, *, envelope_from: str | None = None) -> IntakeEvent:
    settings = make_settings(clean.settings.database_url, sender_hourly_limit=100_000)
    pipeline = build_pipeline(settings)
    item = Submission(
        Channel.EMAIL, raw, ["support@example.com"], envelope_from, message_id_of(raw)
    )
    with transaction(clean.sessions) as db:
        event_id = pipeline.accept(db, item).id
    process_event(clean.sessions, pipeline, event_id)
    with clean.sessions() as db:
        return db.get_one(IntakeEvent, event_id)


class TestEveryValueStores:
    @pytest.mark.parametrize(
        "raw",
        [
            hostile_headers(b"N" * 300, "a@example.org", b"s", b"text/plain", b"f", b"i@x"),
            hostile_headers(b"A", "a" * 400 + "@example.org", b"s", b"text/plain", b"f", b"i@x"),
            hostile_headers(b"A", "a@example.org", b"s", b"application/" + b"y" * 300, b"f", b"i"),
            hostile_headers(
                b"=?utf-7?q?+2D0-?=",
                "a@example.org",
                b"=?utf-7?q?x+3gA-y?=",
                b"text/plain",
                b"=?utf-7?q?+2D0-.txt?=",
                b"i@x",
            ),
            hostile_headers(b"A", "a@example.org", b"s", b"text/plain", b"f", b"i" * 3000),
        ],
        ids=["display-name-300", "address-400", "content-type-300", "utf7-surrogate", "id-3000"],
    )
    def test_hostile_header_values_store_on_every_backend(self, clean: Context, raw: bytes) -> None:
        event = store(clean, raw)
        assert event.status in (IntakeStatus.TICKET_CREATED, IntakeStatus.HELD), event.error

    def test_a_400_character_envelope_sender_is_accepted_not_451_forever(self, smtp: Smtp) -> None:
        assert smtp.send(message("long sender"), sender="s" * 390 + "@example.org") == {}
        [event] = smtp.settle()
        assert event.status is IntakeStatus.TICKET_CREATED and event.envelope_from is None

    @given(
        name=header_values,
        local=local_parts,
        subject=header_values,
        ctype=header_values,
        filename=header_values,
        message_id=header_values,
    )
    @hsettings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    def test_generated_header_values_parse_and_store(
        self,
        clean: Context,
        name: bytes,
        local: str,
        subject: bytes,
        ctype: bytes,
        filename: bytes,
        message_id: bytes,
    ) -> None:
        raw = hostile_headers(name, f"{local}@example.org", subject, ctype, filename, message_id)
        event = store(clean, raw)
        assert event.status is not IntakeStatus.FAILED, event.error


# A compound file; ending in CRLF, as whatever SMTP carries does.
OUTLOOK_MSG = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(range(256)) * 40 + b"\r\n"


class TestNoHeaderBlock:
    """Data without headers is never `failed`: a ticket from the envelope sender, or rejected."""

    def test_a_bare_body_over_smtp_is_a_ticket_from_the_envelope_sender_with_a_note(
        self, smtp: Smtp
    ) -> None:
        smtp.send("Hello,\r\n\r\nmy printer is broken again.\r\n", sender="Bob@Example.org")
        [event] = smtp.settle()
        assert event.status is IntakeStatus.TICKET_CREATED and event.sender == "bob@example.org"
        [ticket] = smtp.tickets()
        assert ticket.requester.email == "bob@example.org" and ticket.subject == "(no subject)"
        [msg] = [m for m in smtp.messages(ticket.id) if m.direction == "in"]
        assert "printer is broken" in msg.body
        assert any("no header block" in note for note in msg.notes)

    def test_an_outlook_msg_file_sent_as_data_becomes_an_attachment(self, smtp: Smtp) -> None:
        smtp.send(OUTLOOK_MSG, sender="carol@example.org")
        [event] = smtp.settle()
        assert event.status is IntakeStatus.TICKET_CREATED
        [ticket] = smtp.tickets()
        [msg] = [m for m in smtp.messages(ticket.id) if m.direction == "in"]
        with smtp.context.sessions() as db:
            [part] = db.scalars(select(Attachment).where(Attachment.message_id == msg.id))
            assert (part.filename, part.size) == ("message.msg", len(OUTLOOK_MSG))
            assert part.content == OUTLOOK_MSG

    @pytest.mark.parametrize(
        ("raw", "reason"),
        [(b"just some words\r\n", "no_headers"), (OUTLOOK_MSG, "no_headers"), (b"\r\n", "empty")],
    )
    def test_without_an_envelope_sender_it_is_rejected_with_the_reason(
        self, clean: Context, raw: bytes, reason: str
    ) -> None:
        event = store(clean, raw)
        assert (event.status, event.reason) == (IntakeStatus.REJECTED, reason)
        assert event.error

    @pytest.mark.parametrize("sender", ["", "not an address", "x" * 400 + "@example.org"])
    def test_an_unusable_envelope_sender_is_no_author(self, clean: Context, sender: str) -> None:
        event = store(clean, b"just some words\r\n", envelope_from=sender)
        assert event.status is IntakeStatus.REJECTED

    def test_the_null_sender_of_a_bounce_without_headers_makes_no_ticket(self, smtp: Smtp) -> None:
        smtp.send(b"Delivery failed\r\n", sender="")
        [event] = smtp.settle()
        assert event.status is IntakeStatus.REJECTED and not smtp.tickets()
