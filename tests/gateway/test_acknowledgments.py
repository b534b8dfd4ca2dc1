"""Acknowledgments from outside: real smtplib clients, the real listener, a real relay.

What a stranger tries (reach one mailbox many times through `+tag` spellings, have DOXA repeat
his advertising to any address he types) fails; a customer we know gets their own subject back,
in their language where a text exists, from the configured sender name.
"""

from __future__ import annotations

import time
from pathlib import Path

from doxa.core.enums import DeliveryState, Role
from tests.conftest import MakeUser
from tests.gateway.conftest import Smtp, StartSmtp, message
from tests.relays import Sink

SPAM = "CHEAP MEDS at http://pills.spam.example"
TRUSTED = {"trusted_authserv_ids": "mx.ours.test", "trusted_relays": "127.0.0.1"}
GERMAN = "Guten Tag, mein Drucker druckt seit gestern nur noch leere Seiten. Können Sie helfen?"
JAPANESE = "プリンターが昨日から白紙しか印刷しません。どうすればよいでしょうか。"


def _acks(smtp: Smtp) -> list[tuple[str | None, str | None]]:
    """(delivery_state, delivery_error) of each ticket's acknowledgment, by ticket."""
    return [
        (m.delivery_state, m.delivery_error)
        for t in smtp.tickets()
        for m in smtp.messages(t.id)
        if m.author_id is None and m.direction == "out"
    ]


def _quiet(smtp: Smtp, sink: Sink, count: int) -> list[str]:
    """The subjects the relay got, once it has `count` and nothing is left to send: every mail
    is processed and no outgoing message is still queued (so no more can come)."""
    sink.wait_for(count)
    smtp.settle()
    deadline = time.monotonic() + 15
    while any(state == DeliveryState.QUEUED for state, _ in _acks(smtp)):
        assert time.monotonic() < deadline, f"mail still queued: {_acks(smtp)}"
        time.sleep(0.01)
    return [str(m["Subject"]) for m in sink.received]


class TestRecipientCap:
    def test_plus_tags_and_case_of_one_mailbox_share_its_hourly_cap(
        self, start_smtp: StartSmtp, sink: Sink
    ) -> None:
        smtp = start_smtp(outbound_smtp_url=sink.url)
        for n in range(9):
            address = f"alice+{n}@example.org" if n % 2 else f"ALICE+{n}@Example.ORG"
            smtp.send(message(f"Question {n}", sender=address))
        smtp.settle()
        assert len(_quiet(smtp, sink, 3)) == 3  # ACK_HOURLY_LIMIT_PER_RECIPIENT's default
        assert _acks(smtp).count(("not_sent", "cap")) == 6
        assert {rcpt for _, [rcpt] in sink.envelopes} <= {
            f"alice+{n}@example.org" for n in range(9)
        }

    def test_another_person_is_not_counted_with_her(
        self, start_smtp: StartSmtp, sink: Sink
    ) -> None:
        smtp = start_smtp(outbound_smtp_url=sink.url, ack_hourly_limit_per_recipient=1)
        smtp.send(message("One", sender="alice+1@example.org"))
        smtp.send(message("Two", sender="alice+2@example.org"))
        smtp.send(message("Three", sender="alicia@example.org"))
        smtp.settle()
        assert len(_quiet(smtp, sink, 2)) == 2
        assert sorted(rcpt for _, [rcpt] in sink.envelopes)[-1] == "alicia@example.org"


class TestSubjectEcho:
    def test_a_strangers_subject_and_name_are_not_repeated(
        self, start_smtp: StartSmtp, sink: Sink
    ) -> None:
        smtp = start_smtp(outbound_smtp_url=sink.url)
        raw = message(SPAM, "Buy now", sender="victim@example.org")
        smtp.send(raw.replace("From: Alice", "From: Visit pills.spam.example"))
        [ack] = sink.wait_for(1)
        assert ack["Subject"] == "[#1] We received your message"
        assert "spam.example" not in ack.get_content() and "Alice" not in ack.get_content()
        assert "[#1]" in ack.get_content()

    def test_writing_again_does_not_make_a_stranger_known(
        self, start_smtp: StartSmtp, sink: Sink
    ) -> None:
        smtp = start_smtp(outbound_smtp_url=sink.url)
        smtp.send(message("Hello", sender="victim@example.org"))
        smtp.settle()
        smtp.send(message(SPAM, sender="victim@example.org"))
        # the outbox may send the two in either order; neither repeats the subject
        assert sorted(_quiet(smtp, sink, 2)) == [
            "[#1] We received your message",
            "[#2] We received your message",
        ]

    def test_a_staff_answer_does_not_make_the_address_known(
        self, start_smtp: StartSmtp, sink: Sink, make_user: MakeUser
    ) -> None:
        smtp = start_smtp(outbound_smtp_url=sink.url)
        smtp.send(message("Plausible question", sender="victim@example.org"))
        smtp.settle()
        agent = {"Authorization": f"Bearer {smtp.context.tokens.issue(make_user(Role.AGENT).id)}"}
        smtp.http.post("/api/v1/tickets/1/messages", json={"body": "Answer"}, headers=agent)
        sink.wait_for(2)
        smtp.send(message(SPAM, sender="victim@example.org"))
        assert _quiet(smtp, sink, 3)[2] == "[#2] We received your message"

    def test_a_requester_with_an_account_gets_their_subject_and_name(
        self, start_smtp: StartSmtp, sink: Sink, make_user: MakeUser
    ) -> None:
        smtp = start_smtp(outbound_smtp_url=sink.url)
        make_user(email="alice@example.org")
        smtp.send(message("Printer broken", sender="alice@example.org"))
        [ack] = sink.wait_for(1)
        assert ack["Subject"] == "[#1] Printer broken"
        assert ack.get_content().startswith("Hello Alice,")

    def test_a_requester_who_answered_our_mail_is_known_afterwards(
        self, start_smtp: StartSmtp, sink: Sink
    ) -> None:
        smtp = start_smtp(outbound_smtp_url=sink.url)
        smtp.send(message("First", sender="alice@example.org"))
        [ack] = sink.wait_for(1)
        smtp.send(message("Re: First", "Thanks", In_Reply_To=ack["Message-ID"]))
        smtp.settle()
        smtp.send(message("Second question", sender="alice@example.org"))
        assert _quiet(smtp, sink, 2)[1] == "[#2] Second question"

    def test_an_authenticated_sender_gets_their_subject(
        self, start_smtp: StartSmtp, sink: Sink
    ) -> None:
        smtp = start_smtp(outbound_smtp_url=sink.url, **TRUSTED)
        verdict = "mx.ours.test; dmarc=pass header.from=example.org"
        raw = message("Printer broken", sender="newcomer@example.org")
        relay = "Received: from out.example.org by mx.ours.test; Fri, 27 Nov 2026 10:00:00 +0000"
        smtp.send(f"Authentication-Results: {verdict}\r\n{relay}\r\n{raw}")
        [ack] = sink.wait_for(1)
        assert ack["Subject"] == "[#1] Printer broken"

    def test_placeholders_in_a_known_requesters_subject_stay_as_written(
        self, start_smtp: StartSmtp, sink: Sink, make_user: MakeUser
    ) -> None:
        smtp = start_smtp(outbound_smtp_url=sink.url)
        make_user(email="alice@example.org")
        smtp.send(message("{reference} {0.__class__} {{name}}", sender="alice@example.org"))
        [ack] = sink.wait_for(1)
        assert ack["Subject"] == "[#1] {reference} {0.__class__} {{name}}"


class TestLanguage:
    def test_a_german_customer_gets_the_german_text(
        self, start_smtp: StartSmtp, sink: Sink
    ) -> None:
        smtp = start_smtp(outbound_smtp_url=sink.url)
        smtp.send(message("Drucker druckt nicht", GERMAN))
        [ack] = sink.wait_for(1)
        assert ack["Subject"] == "[#1] Wir haben Ihre Nachricht erhalten"
        assert "vielen Dank für Ihre Nachricht" in ack.get_content()

    def test_a_japanese_customer_gets_the_japanese_text(
        self, start_smtp: StartSmtp, sink: Sink
    ) -> None:
        smtp = start_smtp(outbound_smtp_url=sink.url)
        smtp.send(message("印刷できません", JAPANESE))
        [ack] = sink.wait_for(1)
        assert ack["Subject"] == "[#1] お問い合わせを受け付けました"
        assert ack.get_content().startswith("お客様")

    def test_a_language_without_a_text_gets_english(
        self, start_smtp: StartSmtp, sink: Sink
    ) -> None:
        smtp = start_smtp(outbound_smtp_url=sink.url)
        dutch = "Mijn printer drukt sinds gisteren alleen nog lege pagina's af. Kunt u helpen?"
        smtp.send(message("Printer", dutch))
        [ack] = sink.wait_for(1)
        assert ack["Subject"] == "[#1] We received your message"

    def test_a_folder_of_texts_picks_by_mailbox_then_language(
        self, start_smtp: StartSmtp, sink: Sink, tmp_path: Path
    ) -> None:
        (tmp_path / "default.en.txt").write_text("Subject: {reference} Got it\n\nThanks.\n")
        (tmp_path / "billing@example.com.de.txt").write_text(
            "Subject: {reference} Rechnung erhalten\n\nDanke, Buchhaltung.\n"
        )
        smtp = start_smtp(outbound_smtp_url=sink.url, ack_templates=str(tmp_path))
        smtp.send(message("Rechnung", GERMAN), to="billing@example.com")
        smtp.settle()
        smtp.send(message("Drucker", GERMAN))  # support@: no German text in this folder
        # the outbox may send the two in either order
        assert sorted(_quiet(smtp, sink, 2)) == ["[#1] Rechnung erhalten", "[#2] Got it"]
        [billing] = [m for m in sink.received if m["Subject"] == "[#1] Rechnung erhalten"]
        assert billing.get_content().strip() == "Danke, Buchhaltung."


class TestSupportName:
    def test_acknowledgments_and_replies_carry_the_support_name_encoded(
        self, start_smtp: StartSmtp, sink: Sink, make_user: MakeUser
    ) -> None:
        smtp = start_smtp(outbound_smtp_url=sink.url, support_name='Zoë\'s "Hilfe", Team')
        smtp.send(message("Printer"))
        sink.wait_for(1)
        agent = {"Authorization": f"Bearer {smtp.context.tokens.issue(make_user(Role.AGENT).id)}"}
        smtp.http.post("/api/v1/tickets/1/messages", json={"body": "Hi"}, headers=agent)
        for mail in sink.wait_for(2):
            [sender] = mail["From"].addresses
            assert (sender.display_name, sender.addr_spec) == (
                'Zoë\'s "Hilfe", Team',
                "support@example.com",
            )

    def test_support_is_the_default_name(self, start_smtp: StartSmtp, sink: Sink) -> None:
        smtp = start_smtp(outbound_smtp_url=sink.url)
        smtp.send(message("Printer"))
        [ack] = sink.wait_for(1)
        assert ack["From"].addresses[0].display_name == "Support"

    def test_account_mail_carries_the_support_name_too(
        self, start_smtp: StartSmtp, sink: Sink
    ) -> None:
        smtp = start_smtp(outbound_smtp_url=sink.url, support_name="Helpdesk")
        smtp.http.post("/api/v1/auth/register", json={"email": "newcomer@example.org"})
        [mail] = sink.wait_for(1)
        assert mail["From"].addresses[0].display_name == "Helpdesk"
