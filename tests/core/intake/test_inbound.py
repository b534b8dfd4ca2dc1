from __future__ import annotations

from collections.abc import Callable

import pytest

from doxa.core.intake.inbound import InboundAttachment, InboundMessage, mime_type, sanitized

MakeMessage = Callable[..., InboundMessage]
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
        msg = sanitized(
            make_message(subject=f"a{separator}Bcc: x@y.test", sender_name=f"A{separator}B")
        )
        assert msg.subject == "a Bcc: x@y.test" and msg.sender_name == "A B"

    def test_bidirectional_overrides_leave_attachment_names(
        self, make_message: MakeMessage
    ) -> None:
        msg = sanitized(make_message(attachments=[_attachment("invoice\u202egpj.exe")]))
        assert msg.attachments[0].filename == "invoicegpj.exe"

    def test_a_name_of_only_control_characters_gets_a_neutral_one(
        self, make_message: MakeMessage
    ) -> None:
        msg = sanitized(make_message(attachments=[_attachment("\u200b\u202e\x07")]))
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
