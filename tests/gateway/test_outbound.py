"""Replies out: acknowledgments and staff replies reach a real relay, threaded for the answer."""

from __future__ import annotations

import time

from doxa.core.enums import IntakeStatus, Role, ThreadedBy
from doxa.core.tickets.models import Ticket
from tests.conftest import MakeUser
from tests.gateway.conftest import Smtp, StartSmtp, message
from tests.relays import Sink


def _start(start_smtp: StartSmtp, sink: Sink) -> Smtp:
    return start_smtp(outbound_smtp_url=sink.url)


class TestAcknowledgment:
    def test_new_ticket_is_acknowledged_as_an_auto_reply_with_its_reference(
        self, start_smtp: StartSmtp, sink: Sink
    ) -> None:
        smtp = _start(start_smtp, sink)
        smtp.send(message("Printer broken", message_id="first@example.org"))
        [ack] = sink.wait_for(1)
        ticket = smtp.tickets()[0]
        assert ack["Subject"] == f"[#{ticket.id}] We received your message"
        assert ack["To"] == "alice@example.org" and ack["Auto-Submitted"] == "auto-replied"
        assert ack["In-Reply-To"] == "<first@example.org>" and ack["Message-ID"]
        # Recorded after the relay's 250, which may be a moment after the relay has the mail.
        deadline = time.monotonic() + 10
        while smtp.messages(ticket.id)[-1].delivery_state != "sent":
            assert time.monotonic() < deadline, smtp.messages(ticket.id)[-1].delivery_state
            time.sleep(0.05)

    def test_customer_answer_to_the_acknowledgment_threads_back(
        self, start_smtp: StartSmtp, sink: Sink
    ) -> None:
        smtp = _start(start_smtp, sink)
        smtp.send(message("Printer broken"))
        [ack] = sink.wait_for(1)
        smtp.send(message("Re: that", "more detail", In_Reply_To=ack["Message-ID"]))
        assert smtp.settle()[-1].status is IntakeStatus.FOLLOWUP
        ticket = smtp.tickets()[0]
        assert smtp.messages(ticket.id)[-1].threaded_by is ThreadedBy.REFERENCES

    def test_held_mail_gets_no_answer(self, start_smtp: StartSmtp, sink: Sink) -> None:
        smtp = _start(start_smtp, sink)
        smtp.send(message("Out of office", Auto_Submitted="auto-replied"))
        smtp.send(message("Real question"))
        smtp.settle()
        assert [m["Subject"] for m in sink.wait_for(1)] == ["[#1] We received your message"]


class TestStaffReply:
    def test_public_reply_is_mailed_with_references_and_internal_note_is_not(
        self, start_smtp: StartSmtp, sink: Sink, make_user: MakeUser
    ) -> None:
        smtp = _start(start_smtp, sink)
        smtp.send(message("VPN", message_id="vpn@example.org"))
        sink.wait_for(1)
        ticket = smtp.tickets()[0]
        agent = {"Authorization": f"Bearer {smtp.context.tokens.issue(make_user(Role.AGENT).id)}"}
        path = f"/api/v1/tickets/{ticket.id}/messages"
        smtp.http.post(path, json={"body": "internal only", "internal": True}, headers=agent)
        reply = smtp.http.post(path, json={"body": "Try again now."}, headers=agent).json()
        assert reply["delivery_state"] == "queued"
        mail = sink.wait_for(2)[1]
        assert mail["Subject"] == f"Re: [#{ticket.id}] VPN" and "Auto-Submitted" not in mail
        assert mail["In-Reply-To"] == "<vpn@example.org>"
        assert "<vpn@example.org>" in mail["References"]
        assert mail.get_content().strip() == "Try again now."
        assert len(sink.received) == 2

    def test_relay_down_keeps_the_reply_queued(self, start_smtp: StartSmtp) -> None:
        smtp = start_smtp(outbound_smtp_url="smtp://127.0.0.1:1")
        smtp.send(message("Anything"))
        smtp.settle()
        ack = smtp.messages(smtp.tickets()[0].id)[-1]
        assert ack.delivery_state == "queued"


class TestNoSpamRelay:
    def test_acknowledgments_per_recipient_stop_at_the_hourly_cap(
        self, start_smtp: StartSmtp, sink: Sink
    ) -> None:
        smtp = start_smtp(outbound_smtp_url=sink.url, ack_hourly_limit_per_recipient=2)
        for n in range(3):  # processed side by side: the cap holds all the same
            smtp.send(message(f"Question {n}"))
        smtp.settle()
        sink.wait_for(2)
        acks = [smtp.messages(t.id)[-1] for t in smtp.tickets()]
        capped = [a for a in acks if (a.delivery_state, a.delivery_error) == ("not_sent", "cap")]
        assert len(capped) == 1 and len(sink.received) == 2

    def test_acknowledgments_in_all_stop_at_the_hourly_cap(
        self, start_smtp: StartSmtp, sink: Sink
    ) -> None:
        smtp = start_smtp(outbound_smtp_url=sink.url, ack_hourly_limit=2)
        for n in range(3):
            smtp.send(message("Question", sender=f"person{n}@example.org"))
        smtp.settle()
        sink.wait_for(2)
        errors = [smtp.messages(t.id)[-1].delivery_error for t in smtp.tickets()]
        assert errors.count("cap") == 1 and len(sink.received) == 2

    def test_acknowledgment_goes_to_the_from_address_even_with_a_reply_to_there(
        self, start_smtp: StartSmtp, sink: Sink
    ) -> None:
        smtp = start_smtp(outbound_smtp_url=sink.url)
        smtp.send(message("Hello", Reply_To="Alice <ALICE@example.org>"))
        sink.wait_for(1)
        assert sink.envelopes[0][1] == ["alice@example.org"]

    def test_subject_with_another_tickets_token_carries_only_its_own(
        self, start_smtp: StartSmtp, sink: Sink, make_user: MakeUser
    ) -> None:
        smtp = start_smtp(outbound_smtp_url=sink.url)
        make_user(email="bob@example.org")  # an account: a known requester, whose subject is kept
        smtp.send(message("First"))
        sink.wait_for(1)
        smtp.send(message("Re: [#1] First", sender="bob@example.org"))
        second = sink.wait_for(2)[1]
        assert second["Subject"] == "[#2] Re: First"


class TestOneBadMessage:
    def _reply_to_both(self, smtp: Smtp, make_user: MakeUser) -> tuple[Ticket, Ticket]:
        broken, fine = smtp.tickets()
        agent = {"Authorization": f"Bearer {smtp.context.tokens.issue(make_user(Role.AGENT).id)}"}
        for ticket in (broken, fine):
            smtp.http.post(
                f"/api/v1/tickets/{ticket.id}/messages", json={"body": "Reply"}, headers=agent
            )
        return broken, fine

    def test_a_message_that_cannot_be_composed_fails_alone(
        self, start_smtp: StartSmtp, sink: Sink, make_user: MakeUser
    ) -> None:
        smtp = start_smtp(outbound_smtp_url=sink.url)
        smtp.send(message("Broken later", sender="carol@example.org"))
        smtp.settle()  # ticket 1 is the one broken below
        smtp.send(message("Fine"))
        sink.wait_for(2)
        with smtp.context.sessions.begin() as db:  # a row written before addresses were checked
            db.get_one(Ticket, 1).requester.email = "carol@example.org\r\nBcc: x@example.net"
        broken, fine = self._reply_to_both(smtp, make_user)
        assert sink.wait_for(3)[2]["Subject"] == f"Re: [#{fine.id}] Fine"
        failed = smtp.messages(broken.id)[-1]
        assert failed.delivery_state == "failed" and "composed" in (failed.delivery_error or "")

    def test_a_line_break_in_a_stored_subject_never_reaches_a_header(
        self, start_smtp: StartSmtp, sink: Sink, make_user: MakeUser
    ) -> None:
        smtp = start_smtp(outbound_smtp_url=sink.url)
        smtp.send(message("Broken later"))
        smtp.settle()  # ticket 1 is the one broken below
        smtp.send(message("Fine", sender="bob@example.org"))
        sink.wait_for(2)
        with smtp.context.sessions.begin() as db:  # a row written before subjects were checked
            db.get_one(Ticket, 1).subject = "Line\r\nBcc: victim@example.net"
        self._reply_to_both(smtp, make_user)
        # Senders work side by side: the two replies may reach the relay in either order.
        (reply,) = [m for m in sink.wait_for(4)[2:] if m["Subject"].startswith("Re: [#1]")]
        assert reply["Subject"] == "Re: [#1] Line Bcc: victim@example.net"
        assert "Bcc" not in reply and all("victim" not in str(e) for e in sink.envelopes)
