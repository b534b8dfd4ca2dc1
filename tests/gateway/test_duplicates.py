"""The same Message-ID through SMTP again, in other bytes: a second MX path's copy carries one
more `Received:` line (issue 19, item 28). It is a duplicate of the first, one ticket."""

from __future__ import annotations

from doxa.core.enums import IntakeStatus
from tests.gateway.conftest import Smtp, message


def test_a_copy_with_another_received_line_is_a_duplicate(smtp: Smtp) -> None:
    raw = message(message_id="two-paths@example.org")
    smtp.send(raw)
    smtp.send("Received: from mx2.example.net by doxa.example.com; Mon, 7 Dec 2026\r\n" + raw)
    first, second = smtp.settle()
    assert first.status is IntakeStatus.TICKET_CREATED
    assert (second.status, second.duplicate_of_id) == (IntakeStatus.DUPLICATE, first.id)
    assert len(smtp.tickets()) == 1
