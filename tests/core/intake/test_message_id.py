from __future__ import annotations

import pytest

from doxa.core.intake.pipeline import message_id_of


class TestMessageIdOf:
    @pytest.mark.parametrize("newline", [b"\r\n", b"\n"])
    def test_reads_the_header_block_whatever_the_line_endings(self, newline: bytes) -> None:
        raw = newline.join([b"Subject: x", b"Message-ID: <abc@example.org>", b"", b"body"])
        assert message_id_of(raw) == "abc@example.org"

    def test_a_message_id_in_the_body_is_not_taken(self) -> None:
        assert message_id_of(b"Subject: x\r\n\r\nMessage-ID: <fake@example.org>\r\n") is None

    def test_missing_or_blank_is_none(self) -> None:
        assert message_id_of(b"Subject: x\r\nMessage-ID: <>\r\n\r\nbody") is None
