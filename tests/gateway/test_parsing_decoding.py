"""Decoding classes real mail needs (issue 10, item 4): each with our own small messages."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import pytest

from doxa.core.intake.inbound import InboundMessage
from doxa.gateway.mime.charsets import decode_bytes
from tests.gateway.conftest import ParsedCorpus, Smtp, mail

Parse = Callable[..., InboundMessage]

# ①② テスト in ISO-2022-JP with the NEC special characters (row 13), as Outlook writes it.
NEC_ISO2022JP = b'\x1b$B-!-"%F%9%H\x1b(B'
NEC_TEXT = "①②テスト"


def _headers(*lines: bytes, body: bytes = b"body") -> bytes:
    return b"\r\n".join([b"From: Alice <alice@example.com>", *lines, b"", body, b""])


class TestEightBitInsideEncodedWords:
    @pytest.mark.parametrize(
        ("word", "expected"),
        [
            (b"=?iso-8859-1?q?Fr\xf6sche?=", "Frösche"),
            (b"=?ISO-8859-1?Q?Gr\xfc\xdfe_aus_K=F6ln?=", "Grüße aus Köln"),
            (b"=?utf-8?q?Fr\xc3\xb6sche?=", "Frösche"),
            (b"Re: =?windows-1252?q?caf\xe9?= ok", "Re: café ok"),
        ],
    )
    def test_raw_bytes_in_a_word_are_decoded_once(
        self, parse: Parse, word: bytes, expected: str
    ) -> None:
        assert parse(_headers(b"Subject: " + word)).subject == expected

    def test_raw_bytes_in_a_display_name_word_are_decoded_once(self, parse: Parse) -> None:
        raw = b"From: =?iso-8859-1?q?J\xfcrgen?= <j@example.com>\r\nSubject: x\r\n\r\nbody\r\n"
        assert parse(raw).sender_name == "Jürgen"


class TestCharsetsPythonLacks:
    HEBREW = "שלום".encode("iso-8859-8")

    @pytest.mark.parametrize("label", ["iso-8859-8-i", "ISO-8859-8-I", "iso-8859-8-e"])
    def test_hebrew_logical_order_body_and_subject(self, parse: Parse, label: str) -> None:
        word = base64.b64encode(self.HEBREW)
        raw = _headers(
            b"Subject: =?" + label.encode() + b"?b?" + word + b"?=",
            b"Content-Type: text/plain; charset=" + label.encode(),
            body=self.HEBREW,
        )
        msg = parse(raw)
        assert (msg.subject, msg.text) == ("שלום", "שלום")

    @pytest.mark.parametrize("label", ["iso-2022-jp", "ISO-2022-JP", "cp50220", "csISO2022JP"])
    def test_iso_2022_jp_with_nec_extensions_body_and_subject(
        self, parse: Parse, label: str
    ) -> None:
        word = base64.b64encode(NEC_ISO2022JP)
        raw = _headers(
            b"Subject: =?" + label.encode() + b"?B?" + word + b"?=",
            b"Content-Type: text/plain; charset=" + label.encode(),
            body=NEC_ISO2022JP,
        )
        msg = parse(raw)
        assert (msg.subject, msg.text) == (NEC_TEXT, NEC_TEXT)

    def test_half_width_katakana_escape_is_read(self) -> None:
        assert decode_bytes(b"\x1b(I12\x1b(B ok", "iso-2022-jp") == "ｱｲ ok"

    def test_plain_iso_2022_jp_keeps_the_standard_mapping(self) -> None:
        text = "こんにちは〜"
        assert decode_bytes(text.encode("iso2022_jp"), "iso-2022-jp") == text

    @pytest.mark.parametrize(
        ("encoded", "expected"),
        [
            ("iso-8859-8-i''%F9%EC%E5%ED.txt", "שלום.txt"),
            ("iso-2022-jp''%1B%24B-%21%25F%25%39%25H%1B%28B.pdf", "①テスト.pdf"),
        ],
    )
    def test_rfc2231_filenames_in_those_charsets(
        self, parse: Parse, encoded: str, expected: str
    ) -> None:
        part = (
            "Content-Type: application/octet-stream\r\n"
            f"Content-Disposition: attachment; filename*={encoded}\r\n\r\nx"
        )
        body = f"--B\r\n{part}\r\n--B--\r\n"
        raw = mail('Content-Type: multipart/mixed; boundary="B"', body=body)
        assert [a.filename for a in parse(raw).attachments] == [expected]

    def test_rfc2231_bytes_the_charset_cannot_read_are_replaced(self, parse: Parse) -> None:
        part = "Content-Type: application/octet-stream; name*=iso-2022-jp'ja'a%8ab.mp3\r\n\r\nx"
        raw = mail(
            'Content-Type: multipart/mixed; boundary="B"', body=f"--B\r\n{part}\r\n--B--\r\n"
        )
        assert parse(raw).attachments[0].filename == "a\ufffdb.mp3"


class TestInvalidUtf8Byte:
    TEXT = "Grüße aus Köln, schöne Zeit, 日本"

    @pytest.mark.parametrize("charset", ["utf-8", "UTF-8", None])
    def test_one_invalid_byte_costs_one_replacement_character(
        self, parse: Parse, charset: str | None
    ) -> None:
        ctype = f"Content-Type: text/plain; charset={charset}" if charset else "X-No-Type: 1"
        raw = _headers(b"Subject: x", ctype.encode(), body=self.TEXT.encode() + b"\xff!")
        assert parse(raw).text == self.TEXT + "\ufffd!"

    def test_latin1_declared_as_utf8_is_still_read_as_latin1(self, parse: Parse) -> None:
        raw = _headers(b"Content-Type: text/plain; charset=utf-8", body="Grüße".encode("latin-1"))
        assert parse(raw).text == "Grüße"

    def test_raw_utf8_header_with_a_stray_byte_keeps_its_text(self, parse: Parse) -> None:
        raw = _headers("Subject: Größe, schön".encode() + b"\xa0")
        assert parse(raw).subject == "Größe, schön\ufffd"


class TestCharsetOfTheMultipartParent:
    CYRILLIC = "Привет, мир"

    @pytest.mark.parametrize("subtype", ["signed", "mixed", "alternative"])
    def test_text_children_without_charset_inherit_it(self, parse: Parse, subtype: str) -> None:
        body = (
            b"--B\r\nContent-Type: text/plain\r\n\r\n" + self.CYRILLIC.encode("koi8-r") + b"\r\n"
            b"--B\r\nContent-Type: application/pgp-signature\r\n\r\nsig\r\n--B--\r\n"
        )
        raw = _headers(
            b"Content-Type: multipart/" + subtype.encode() + b'; charset=koi8-r; boundary="B"',
            body=body,
        )
        assert parse(raw).text == self.CYRILLIC

    def test_a_childs_own_charset_wins(self, parse: Parse) -> None:
        body = (
            b"--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            + self.CYRILLIC.encode()
            + b"\r\n--B--\r\n"
        )
        raw = _headers(b'Content-Type: multipart/mixed; charset=koi8-r; boundary="B"', body=body)
        assert parse(raw).text == self.CYRILLIC


class TestIllegalHeaderFieldName:
    @pytest.mark.parametrize(
        "bad", [b"X Illegal Name: yes", b"S\xfcbject: nope", b"quite Delivered-To: a@x.test"]
    )
    def test_the_rest_of_the_headers_and_a_base64_body_survive(
        self, parse: Parse, bad: bytes
    ) -> None:
        raw = _headers(
            b"Subject: Printer",
            bad,
            b"Message-ID: <after-bad@x.test>",
            b"Content-Type: text/plain; charset=utf-8",
            b"Content-Transfer-Encoding: base64",
            body=base64.b64encode("Grüße, der Drucker".encode()),
        )
        msg = parse(raw)
        assert (msg.subject, msg.message_id, msg.text) == (
            "Printer",
            "after-bad@x.test",
            "Grüße, der Drucker",
        )

    # Issue 19, item 24: names of any length with spaces, punctuation or 8-bit bytes, each
    # with folded continuation lines, and a colon-less line before well-formed fields.
    SHAPES: ClassVar[list[bytes]] = [
        b"X-Script/function/ !\"#$%&'()*+,-./0123456789;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`"
        b"abcdefghijklmnopqrstuvwxyz{|}~: TEST\r\n\tfunction() {\r\n\t  return 1; }",
        b"X " + b"very long name " * 20 + b": value\r\n folded: line\r\n\tanother",
        b"X-Sp\xe4m Score (local): 5.1\r\n\tdetails: BAYES_99",
        b"Content Type: text/html\r\n charset=latin1",
        b"a line of junk without a colon\r\n\twith a folded line",
    ]

    @pytest.mark.parametrize("bad", SHAPES)
    @pytest.mark.parametrize("from_first", [True, False])
    def test_a_bad_field_is_dropped_with_its_folded_lines(
        self, parse: Parse, bad: bytes, from_first: bool
    ) -> None:
        author = b"From: Alice <alice@example.com>"
        lines = [b"Received: by mx.example.com; Mon, 7 Dec 2026 10:00:00 +0000"]
        lines += [author, bad] if from_first else [bad, author]
        lines += [
            b"Subject: Printer",
            b"Message-ID: <after-bad@x.test>",
            b"Content-Type: text/plain; charset=utf-8",
            b"Content-Transfer-Encoding: base64",
            b"",
            base64.b64encode("Grüße, der Drucker".encode()),
            b"",
        ]
        msg = parse(b"\r\n".join(lines))
        assert (msg.sender_email, msg.subject, msg.message_id, msg.text) == (
            "alice@example.com",
            "Printer",
            "after-bad@x.test",
            "Grüße, der Drucker",
        )

    def test_a_mail_with_one_through_smtp_becomes_its_ticket(self, smtp: Smtp) -> None:
        raw = _headers(
            b"To: support@example.com",
            self.SHAPES[0],
            b"Subject: Printer",
            b"Content-Type: text/plain; charset=utf-8",
            b"Content-Transfer-Encoding: base64",
            body=base64.b64encode("Grüße, der Drucker".encode()),
        )
        smtp.send(raw)
        smtp.settle()
        [ticket] = smtp.tickets()
        assert ticket.subject == "Printer"
        assert smtp.messages(ticket.id)[0].body == "Grüße, der Drucker"

    def test_the_folded_lines_of_a_dropped_field_join_no_other(self, parse: Parse) -> None:
        raw = _headers(b"Subject: Printer", b"X Bad: one\r\n\ttwo", b"Message-ID: <m@x.test>")
        msg = parse(raw)
        assert (msg.subject, msg.message_id) == ("Printer", "m@x.test")

    def test_a_body_without_its_blank_line_stays_the_body(self, parse: Parse) -> None:
        raw = _headers(b"Subject: Printer", b"Dear team, my question: why?\r\nIt jams.")
        msg = parse(raw.replace(b"\r\n\r\nbody", b""))
        assert msg.subject == "Printer"
        assert "It jams." in msg.text


class TestBoundaryFoldedInsideItsQuotes:
    @pytest.mark.parametrize("fold", [b"\r\n\t", b"\r\n "])
    def test_the_boundary_is_reassembled(self, parse: Parse, fold: bytes) -> None:
        boundary = b"----=_NextPart_000_0007_01C2A9A6.2C4F5E60"
        header = b'Content-Type: multipart/mixed; boundary="' + boundary[:24] + fold
        header += boundary[24:] + b'"'
        body = (
            b"--" + boundary + b"\r\nContent-Type: text/plain\r\n\r\nSee the file.\r\n"
            b"--" + boundary + b'\r\nContent-Type: application/pdf; name="a.pdf"\r\n\r\n%PDF\r\n'
            b"--" + boundary + b"--\r\n"
        )
        msg = parse(_headers(b"Subject: x", b"MIME-Version: 1.0", header, body=body))
        assert msg.text == "See the file."
        assert [a.filename for a in msg.attachments] == ["a.pdf"]

    def test_a_boundary_parameter_without_indentation_is_read(self, parse: Parse) -> None:
        inner = (
            b'--A\r\nContent-Type: multipart/alternative;\r\nboundary="I"\r\n\r\n'
            b"--I\r\nContent-Type: text/plain\r\n\r\nNo such user here\r\n--I--\r\n--A--\r\n"
        )
        msg = parse(_headers(b'Content-Type: multipart/mixed; boundary="A"', body=inner))
        assert msg.text == "No such user here"


class TestInlineUuencodedFiles:
    DATA = bytes(range(256)) * 2

    def _uu(self, name: str) -> str:
        lines = [binascii.b2a_uu(self.DATA[i : i + 45]).decode() for i in range(0, 512, 45)]
        return f"begin 644 {name}\n{''.join(lines)}`\nend\n"

    def test_a_uuencoded_file_becomes_an_attachment(self, parse: Parse) -> None:
        msg = parse(mail(body=f"See attached.\n\n{self._uu('report.pdf')}\nThanks"))
        (att,) = msg.attachments
        assert (att.filename, att.content_type, att.size) == ("report.pdf", "application/pdf", 512)
        assert att.sha256 == hashlib.sha256(self.DATA).hexdigest()
        assert "begin 644" not in msg.text and "Thanks" in msg.text

    def test_two_files_in_one_text(self, parse: Parse) -> None:
        msg = parse(mail(body=self._uu("a.bin") + "\n" + self._uu("b.bin")))
        assert [a.filename for a in msg.attachments] == ["a.bin", "b.bin"]

    def test_prose_that_starts_like_a_block_stays_text(self, parse: Parse) -> None:
        text = "begin 644 is the mode we use\nfor files, then\nend"
        msg = parse(mail(body=text))
        assert (msg.text, msg.attachments) == (text, [])


class TestOnCorpus:
    def test_rt_notes_uuencoded_image_is_an_attachment(self, parsed_corpus: ParsedCorpus) -> None:
        msg = parsed_corpus.messages["rt/emails/notes-uuencoded"]
        assert "Naz_Head.jpg" in [a.filename for a in msg.attachments]
        assert "begin 644" not in msg.text

    def test_iso_2022_jp_with_nec_digits_reads_as_japanese(
        self, parsed_corpus: ParsedCorpus, corpus_dir: Path
    ) -> None:
        assert "①" in parsed_corpus.messages["zammad/mail/mail099.box"].text
