"""Delivery failures that do not look like RFC 3464 reports (issue 19, item 26): a security
gateway's plain-text failure notice from an ordinary address, and an Exchange delay warning
from a malformed postmaster address. Each is held as `bounce` (releasable), never a ticket."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from doxa.core.enums import IntakeStatus
from doxa.core.intake.inbound import InboundMessage
from doxa.core.intake.mail_loops import loop_reason
from tests.gateway.conftest import ParsedCorpus, Smtp

Parse = Callable[..., InboundMessage]

# Paths of the shared corpus that made a ticket (no loop reason) before issue 19, item 26,
# with no envelope sender known (the Return-Path header stands in) as `doxa ingest` has it.
TICKETS_BEFORE = Path(__file__).with_name("corpus_tickets.json")

GATEWAY_BODIES = [
    "The following recipients were undeliverable:\r\n\r\n    bob@customer.test\r\n",
    "Undeliverable recipients:\r\n  bob@customer.test (550 5.1.1 user unknown)\r\n",
    "Your message was not delivered to the following recipients:\r\n  bob@customer.test\r\n",
    "Delivery failed for the following recipients:\r\n\r\nbob@customer.test\r\n",
    "The following addresses could not be reached:\r\n\r\n  bob@customer.test\r\n",
]
EXCHANGE_DELAY = (
    "Delivery is delayed to these recipients or groups:\r\n\r\nbob@customer.test\r\n\r\n"
    "Subject: Invoice\r\n\r\nThis message hasn't been delivered yet. Delivery will continue "
    "to be attempted.\r\n\r\nThe server will keep trying to deliver this message for the next "
    "1 days, 19 hours and 57 minutes.\r\n"
)
MALFORMED_POSTMASTERS = [
    "postmaster@",
    "<postmaster@[192.0.2.1>",
    "=?utf-8?q?Postmaster?= <postmaster@>",
    "MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@corp.test",
]


def _mail(sender: str, subject: str, body: str) -> str:
    return (
        f"From: {sender}\r\nTo: support@example.com\r\nSubject: {subject}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@gateway.test>\r\n"
        "Date: Mon, 07 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=us-ascii\r\n\r\n{body}"
    )


def _held_as_bounce(smtp: Smtp, raw: str) -> None:
    smtp.send(raw, sender="notices@gateway.test")
    [event] = smtp.settle()
    assert (event.status, event.reason, event.ticket_id) == (IntakeStatus.HELD, "bounce", None)
    assert smtp.tickets() == []


class TestSecurityGatewayFailureNotice:
    def test_it_is_held_as_a_bounce(self, smtp: Smtp) -> None:
        sender = "Email Security Gateway <notifications@gateway.test>"
        _held_as_bounce(smtp, _mail(sender, "Delivery failure notification", GATEWAY_BODIES[0]))

    @pytest.mark.parametrize("body", GATEWAY_BODIES)
    @pytest.mark.parametrize(
        "subject", ["Delivery failure notification", "Undeliverable: Invoice", "Mail failed"]
    )
    def test_each_wording_is_a_bounce(self, parse: Parse, body: str, subject: str) -> None:
        msg = parse(_mail("Gateway <noreply@gateway.test>", subject, body))
        assert loop_reason(msg, envelope_from="noreply@gateway.test") == "bounce"


class TestExchangeDelayWarning:
    def test_it_is_held_as_a_bounce(self, smtp: Smtp) -> None:
        _held_as_bounce(smtp, _mail("postmaster@", "Mail Delivery Warning", EXCHANGE_DELAY))

    @pytest.mark.parametrize("sender", MALFORMED_POSTMASTERS)
    @pytest.mark.parametrize("body", [EXCHANGE_DELAY, "This is an advisory only.\r\n"])
    def test_a_malformed_postmaster_sender_is_a_second_sign(
        self, parse: Parse, sender: str, body: str
    ) -> None:
        msg = parse(_mail(sender, "Mail Delivery Warning", body))
        assert loop_reason(msg, envelope_from="someone@corp.test") == "bounce"

    def test_its_body_alone_completes_a_bounce_subject(self, parse: Parse) -> None:
        msg = parse(_mail("Exchange <exchange@corp.test>", "Delivery delayed", EXCHANGE_DELAY))
        assert loop_reason(msg, envelope_from="exchange@corp.test") == "bounce"


class TestCustomersStillWrite:
    @pytest.mark.parametrize(
        ("subject", "body"),
        [
            ("Delivery failure notification", "My parcel has not been delivered yet. Order 42."),
            ("Delivery delayed", "The following items were not delivered to my address: a lamp."),
            ("Question", "The following recipients were undeliverable: is your server down?"),
        ],
    )
    def test_a_customer_writing_about_a_delivery_makes_a_ticket(
        self, parse: Parse, subject: str, body: str
    ) -> None:
        msg = parse(_mail("Alice <alice@example.org>", subject, body))
        assert loop_reason(msg, envelope_from="alice@example.org") is None

    def test_no_corpus_message_that_made_a_ticket_is_held_now(
        self, parsed_corpus: ParsedCorpus
    ) -> None:
        paths = json.loads(TICKETS_BEFORE.read_text())
        assert len(paths) > 400
        held = {
            path: loop_reason(parsed_corpus.messages[path], envelope_from=None)
            for path in paths
            if path in parsed_corpus.messages
        }
        assert {path: reason for path, reason in held.items() if reason} == {}
        assert len(held) == len(paths)
