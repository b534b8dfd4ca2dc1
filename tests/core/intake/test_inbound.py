"""What any edge hands the pipeline is cut down to what every database stores."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from doxa.core.intake import inbound
from doxa.core.intake.inbound import InboundAttachment, InboundMessage, mime_type, storable
from doxa.core.intake.models import IntakeEvent
from doxa.core.tickets.models import Attachment, Message, Ticket
from doxa.core.users.models import User

MakeMessage = Callable[..., InboundMessage]


def _length(column: Any) -> int:
    return int(column.type.length)


def _msg(**fields: Any) -> InboundMessage:
    values: dict[str, Any] = {
        "sender_email": "a@example.org",
        "sender_name": "A",
        "subject": "s",
        "text": "t",
        "html": None,
        "message_id": "m@example.org",
    }
    values.update(fields)
    return InboundMessage(**values)


class TestStorable:
    @pytest.mark.parametrize(
        ("limit", "columns"),
        [
            (inbound.ADDRESS_CHARS, [User.email, IntakeEvent.sender, IntakeEvent.envelope_from]),
            (inbound.NAME_CHARS, [User.full_name]),
            (inbound.ID_CHARS, [Message.message_id, Message.in_reply_to, Attachment.content_id]),
            (inbound.SUBJECT_CHARS, [Ticket.subject]),
            (inbound.FILENAME_CHARS, [Attachment.filename]),
            (inbound.TYPE_CHARS, [Attachment.content_type]),
        ],
    )
    def test_limits_are_the_column_lengths(self, limit: int, columns: list[Any]) -> None:
        assert {_length(c) for c in columns} == {limit}

    def test_an_address_longer_than_its_column_is_no_address_and_noted(self) -> None:
        long = "x" * 400 + "@example.org"
        msg = storable(_msg(sender_email=long, reply_to=long, cc=[long, "b@example.org"]))
        assert (msg.sender_email, msg.reply_to, msg.cc) == ("", None, ["b@example.org"])
        assert any("not an address" in note for note in msg.notes)

    def test_names_ids_and_subjects_are_cut_to_their_columns(self) -> None:
        msg = storable(
            _msg(
                sender_name="n" * 300,
                message_id="i" * 2000,
                subject="s" * 5000,
                in_reply_to=["r" * 2000],
                references=["r" * 2000],
            )
        )
        assert len(msg.sender_name or "") == inbound.NAME_CHARS
        assert len(msg.message_id or "") == inbound.ID_CHARS
        assert len(msg.subject) == inbound.SUBJECT_CHARS
        assert {len(msg.in_reply_to[0]), len(msg.references[0])} == {inbound.ID_CHARS}

    def test_nul_is_dropped_and_lone_surrogates_become_replacement_characters(self) -> None:
        msg = storable(_msg(subject="a\x00b\ud83dc", sender_name="\udc80", text="t\ude00"))
        assert (msg.subject, msg.sender_name, msg.text) == ("ab\ufffdc", "\ufffd", "t\ufffd")

    def test_attachment_type_too_long_becomes_octet_stream_and_the_name_keeps_its_extension(
        self,
    ) -> None:
        part = InboundAttachment(
            filename="f" * 400 + ".pdf",
            content_type="application/" + "y" * 300,
            size=1,
            sha256="0" * 64,
            content_id="c" * 2000,
        )
        [stored] = storable(_msg(attachments=[part])).attachments
        assert stored.content_type == "application/octet-stream"
        assert len(stored.filename) == inbound.FILENAME_CHARS and stored.filename.endswith(".pdf")
        assert len(stored.content_id or "") == inbound.ID_CHARS


SEPARATORS = [
    "\n",
    "\r",
    "\r\n",
    "\x0b",
    "\x0c",
    "\x1c",
    "\x1d",
    "\x1e",
    "\x85",
    "\u2028",
    "\u2029",
]


def _attachment(filename: str, content_type: str = "text/plain") -> InboundAttachment:
    return InboundAttachment(filename=filename, content_type=content_type, size=1, sha256="0")


class TestSanitized:
    @pytest.mark.parametrize("separator", SEPARATORS)
    def test_subject_and_name_lose_every_line_separator(
        self, make_message: MakeMessage, separator: str
    ) -> None:
        msg = storable(
            make_message(subject=f"a{separator}Bcc: x@y.test", sender_name=f"A{separator}B")
        )
        assert msg.subject == "a Bcc: x@y.test" and msg.sender_name == "A B"

    def test_bidirectional_overrides_leave_attachment_names(
        self, make_message: MakeMessage
    ) -> None:
        msg = storable(make_message(attachments=[_attachment("invoice\u202egpj.exe")]))
        assert msg.attachments[0].filename == "invoicegpj.exe"

    def test_a_name_of_only_control_characters_gets_a_neutral_one(
        self, make_message: MakeMessage
    ) -> None:
        msg = storable(make_message(attachments=[_attachment("\u200b\u202e\x07")]))
        assert msg.attachments[0].filename == "attachment"


class TestMimeType:
    @pytest.mark.parametrize(
        ("declared", "stored"),
        [
            ("Image/PNG; name=x.png", "image/png"),
            ("application/\r\n pdf", "application/pdf"),
            ("text/plain;\tcharset=utf-8", "text/plain"),
            ("garbage", "application/octet-stream"),
            ("text/html\r\nX-Injected: 1", "text/html"),
        ],
    )
    def test_only_type_and_subtype_are_kept(self, declared: str, stored: str) -> None:
        assert mime_type(declared) == stored
