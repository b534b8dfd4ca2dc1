"""Replies out: acknowledgments and staff replies reach a real relay, threaded for the answer."""

from __future__ import annotations

import time

from doxa.core.enums import IntakeStatus, Role, ThreadedBy
from tests.conftest import MakeUser
from tests.gateway.conftest import Sink, Smtp, StartSmtp, message


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
        assert ack["Subject"] == f"[#{ticket.id}] Printer broken"
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
        assert [m["Subject"] for m in sink.wait_for(1)] == ["[#1] Real question"]


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
