"""Attacks by mail, from outside: real smtplib clients against the real listener.

Each test plays what a stranger would try (write into someone's ticket, pass as the customer
or as an agent, get DOXA to mail a third party) and shows it fail, while the customer's own
mail still goes where it belongs.
"""

from __future__ import annotations

import pytest

from doxa.core.enums import IntakeStatus, Role, ThreadedBy
from doxa.core.intake.models import IntakeEvent
from doxa.core.tickets.models import Ticket
from tests.conftest import MakeUser
from tests.gateway.conftest import Smtp, StartSmtp, message, relayed
from tests.gateway.webhook_support import form_json, signed, start_hooks
from tests.relays import Sink

CUSTOMER = "alice@example.org"
STRANGER = "mallory@evil.test"
FORM = "/api/v1/inbound/form"
TRUSTED = {"trusted_authserv_ids": "mx.ours.test", "trusted_relays": "127.0.0.1"}
MILTERS = {**TRUSTED, "trusted_ar_below_received": True}


def _customer_ticket(smtp: Smtp, message_id: str = "alice-1@example.org") -> Ticket:
    smtp.send(message("My invoice", "Please resend it.", sender=CUSTOMER, message_id=message_id))
    smtp.settle()
    return smtp.tickets()[-1]


def _last(smtp: Smtp) -> IntakeEvent:
    return smtp.settle()[-1]


def _assert_stranger_got_a_linked_ticket(smtp: Smtp, victim: Ticket) -> None:
    event = _last(smtp)
    assert event.status is IntakeStatus.TICKET_CREATED and event.reason == "not_a_participant"
    new = smtp.tickets()[-1]
    assert new.id != victim.id and new.previous_ticket_id == victim.id
    assert new.requester.email == STRANGER
    assert len(smtp.messages(victim.id)) == 2  # the customer's message and its acknowledgment


class TestStrangersCannotWriteIntoTickets:
    def test_plus_address_from_a_stranger_opens_a_linked_ticket(self, smtp: Smtp) -> None:
        victim = _customer_ticket(smtp)
        smtp.send(message("hi", sender=STRANGER), to=f"support+{victim.id}@example.com")
        _assert_stranger_got_a_linked_ticket(smtp, victim)

    def test_quoting_the_customers_message_id_opens_a_linked_ticket(self, smtp: Smtp) -> None:
        victim = _customer_ticket(smtp)
        smtp.send(message("Re: My invoice", sender=STRANGER, In_Reply_To="<alice-1@example.org>"))
        _assert_stranger_got_a_linked_ticket(smtp, victim)

    def test_subject_token_from_a_stranger_opens_a_linked_ticket(self, smtp: Smtp) -> None:
        victim = _customer_ticket(smtp)
        smtp.send(message(f"Re: [#{victim.id}] My invoice", sender=STRANGER))
        _assert_stranger_got_a_linked_ticket(smtp, victim)

    def test_the_customer_still_threads_by_each_rule(self, smtp: Smtp) -> None:
        ticket = _customer_ticket(smtp)
        smtp.send(message("a", sender=CUSTOMER, In_Reply_To="<alice-1@example.org>"))
        smtp.settle()  # one at a time: the order of the stored messages is the assertion's
        smtp.send(message(f"[#{ticket.id}] b", sender=CUSTOMER))
        smtp.settle()
        smtp.send(message("c", sender=CUSTOMER), to=f"support+{ticket.id}@example.com")
        assert [e.status for e in smtp.settle()[1:]] == [IntakeStatus.FOLLOWUP] * 3
        rules = [m.threaded_by for m in smtp.messages(ticket.id)[2:]]
        assert rules == [ThreadedBy.REFERENCES, ThreadedBy.SUBJECT_TOKEN, ThreadedBy.PLUS_ADDRESS]

    def test_reference_forged_in_our_message_id_shape_is_not_honoured(self, smtp: Smtp) -> None:
        forged = "doxa.1.0123456789abcdef.0123456789abcdef0123@example.com"
        ticket = _customer_ticket(smtp, message_id=forged)  # stored, but not signed by us
        smtp.send(message("Re: again", sender=CUSTOMER, In_Reply_To=f"<{forged}>"))
        assert _last(smtp).status is IntakeStatus.TICKET_CREATED
        assert smtp.tickets()[-1].id != ticket.id


class TestCcParticipants:
    def test_cc_of_the_opening_message_is_recorded_and_may_write(self, smtp: Smtp) -> None:
        smtp.send(
            message("Order", sender=CUSTOMER, Cc="Bob <BOB@example.org>, support@example.com")
        )
        smtp.settle()
        [ticket] = smtp.tickets()
        assert ticket.cc == ["bob@example.org"]  # our own mailbox is no participant
        smtp.send(message(f"Re: [#{ticket.id}] Order", sender="bob@example.org"))
        assert _last(smtp).status is IntakeStatus.FOLLOWUP

    def test_a_stranger_adding_cc_to_a_linked_ticket_gains_nothing_on_the_first(
        self, smtp: Smtp
    ) -> None:
        victim = _customer_ticket(smtp)
        smtp.send(message(f"[#{victim.id}] x", sender=STRANGER, Cc=f"{STRANGER}, eve@evil.test"))
        _assert_stranger_got_a_linked_ticket(smtp, victim)
        assert smtp.tickets()[0].cc == []


class TestReplyToGrantsNoIdentity:
    def test_stranger_with_the_customers_reply_to_is_still_the_stranger(
        self, start_smtp: StartSmtp, sink: Sink
    ) -> None:
        smtp = start_smtp(outbound_smtp_url=sink.url)
        victim = _customer_ticket(smtp)
        sink.wait_for(1)
        smtp.send(message(f"Re: [#{victim.id}]", sender=STRANGER, Reply_To=CUSTOMER))
        _assert_stranger_got_a_linked_ticket(smtp, victim)
        ack = smtp.messages(smtp.tickets()[-1].id)[-1]
        assert (ack.delivery_state, ack.delivery_error) == ("not_sent", "reply_to_elsewhere")
        assert [envelope[1] for envelope in sink.envelopes] == [[CUSTOMER]]


class TestStaffAddresses:
    def test_spoofed_agent_address_is_held(self, smtp: Smtp, make_user: MakeUser) -> None:
        agent = make_user(Role.AGENT)
        ticket = _customer_ticket(smtp)
        smtp.send(message(f"Re: [#{ticket.id}] Refund approved", sender=agent.email))
        event = _last(smtp)
        assert (event.status, event.reason, event.ticket_id) == (IntakeStatus.HELD, "spoofed", None)
        assert len(smtp.messages(ticket.id)) == 2

    def test_authentication_results_from_an_untrusted_peer_is_ignored(
        self, start_smtp: StartSmtp, make_user: MakeUser
    ) -> None:
        smtp = start_smtp(trusted_authserv_ids="mx.ours.test", trusted_relays="192.0.2.1")
        agent = make_user(Role.AGENT)
        smtp.send(relayed(message("x", sender=agent.email), PASS))
        assert _last(smtp).reason == "spoofed"

    def test_agent_mail_authenticated_by_the_trusted_mta_is_stored_as_the_agents(
        self, start_smtp: StartSmtp, make_user: MakeUser
    ) -> None:
        smtp = start_smtp(**TRUSTED)
        agent = make_user(Role.AGENT)
        ticket = _customer_ticket(smtp)
        verdict = "mx.ours.test; dkim=pass header.d=example.com; dmarc=pass header.from=example.com"
        smtp.send(relayed(message(f"Re: [#{ticket.id}]", sender=agent.email), verdict))
        assert _last(smtp).status is IntakeStatus.FOLLOWUP
        assert smtp.messages(ticket.id)[-1].author_id == agent.id

    def test_dkim_of_another_domain_does_not_authenticate(
        self, start_smtp: StartSmtp, make_user: MakeUser
    ) -> None:
        smtp = start_smtp(**TRUSTED)
        agent = make_user(Role.AGENT)
        smtp.send(
            relayed(message("x", sender=agent.email), "mx.ours.test; dkim=pass header.d=evil.test")
        )
        assert _last(smtp).reason == "spoofed"


PASS = "mx.ours.test; dmarc=pass header.from=example.com"
STAFF = "admin@staff.example"


class TestWhereTheRelayWrites:
    """SPEC "Who wrote it": only the relay's own Authentication-Results headers count."""

    def test_stock_postfix_passes_on_the_senders_own_header_and_it_is_not_believed(
        self, start_smtp: StartSmtp, make_user: MakeUser
    ) -> None:
        smtp = start_smtp(**TRUSTED)  # a relay that neither adds nor strips the header
        admin = make_user(Role.ADMIN)
        ticket = _customer_ticket(smtp)
        forged = message(f"Re: [#{ticket.id}] Refund approved", sender=admin.email)
        smtp.send(relayed(forged, below=PASS))  # the stranger's header, below the relay's line
        event = _last(smtp)
        assert (event.status, event.reason, event.ticket_id) == (IntakeStatus.HELD, "spoofed", None)
        assert len(smtp.messages(ticket.id)) == 2  # nothing new for the customer to read

    def test_a_milters_header_directly_below_is_believed_with_the_flag(
        self, start_smtp: StartSmtp, make_user: MakeUser
    ) -> None:
        smtp = start_smtp(**MILTERS)  # Debian's OpenDMARC inserts below Postfix's Received line
        agent = make_user(Role.AGENT)
        ticket = _customer_ticket(smtp)
        smtp.send(relayed(message(f"Re: [#{ticket.id}]", sender=agent.email), below=PASS))
        assert _last(smtp).status is IntakeStatus.FOLLOWUP
        assert smtp.messages(ticket.id)[-1].author_id == agent.id

    def test_with_the_flag_a_header_further_down_still_counts_for_nothing(
        self, start_smtp: StartSmtp, make_user: MakeUser
    ) -> None:
        smtp = start_smtp(**MILTERS)
        agent = make_user(Role.AGENT)
        senders = message("x", sender=agent.email, Authentication_Results=PASS)
        smtp.send(relayed(senders, below="mx.ours.test; dmarc=none header.from=example.com"))
        assert _last(smtp).reason == "spoofed"

    def test_without_a_received_line_no_header_is_believed(
        self, start_smtp: StartSmtp, make_user: MakeUser
    ) -> None:
        smtp = start_smtp(**MILTERS)
        agent = make_user(Role.AGENT)
        smtp.send(f"Authentication-Results: {PASS}\r\n" + message("x", sender=agent.email))
        assert _last(smtp).reason == "spoofed"

    def test_the_topmost_trusted_header_speaks_past_an_untrusted_one(
        self, start_smtp: StartSmtp, make_user: MakeUser
    ) -> None:
        smtp = start_smtp(**TRUSTED)
        agent = make_user(Role.AGENT)
        smtp.send(relayed(message("x", sender=agent.email), "other.test; dmarc=fail", PASS))
        assert _last(smtp).status is IntakeStatus.TICKET_CREATED

    def test_dmarc_fail_in_any_trusted_header_wins(
        self, start_smtp: StartSmtp, make_user: MakeUser
    ) -> None:
        smtp = start_smtp(**MILTERS)
        agent = make_user(Role.AGENT)
        fail = "mx.ours.test; dmarc=fail header.from=example.com"
        smtp.send(relayed(message("x", sender=agent.email), PASS, below=fail))
        assert _last(smtp).reason == "spoofed"


class TestCraftedHeaders:
    """Values the sender chose, inside the relay's own header, must not read as a verdict."""

    @pytest.mark.parametrize(
        "results",
        [
            'spf=pass smtp.mailfrom="a;dmarc=pass header.from=staff.example;"@evil.test',
            "spf=none (a ;dmarc=pass header.from=staff.example (b (c (d (e (f))))))",  # 6 deep
            "spf=none (a (b (c (d (e (f ;dmarc=pass header.from=staff.example))))))",
            "spf=pass smtp.helo=x;dmarc=pass",
            "spf=pass smtp.helo=x;dmarc=pass(c)header.from=staff.example",
            "spf=pass smtp.helo==?us-ascii?q?x=3B_dmarc=3Dpass_header.from=3Dstaff.example?=",
            "dmarc=pass",
            "dkim=pass header.d=example",
            "dmarc=pass header.from=example",
        ],
    )
    def test_a_crafted_header_does_not_make_a_stranger_staff(
        self, start_smtp: StartSmtp, make_user: MakeUser, results: str
    ) -> None:
        smtp = start_smtp(**TRUSTED)
        make_user(Role.ADMIN, email=STAFF)
        smtp.send(relayed(message("Refund approved", sender=STAFF), f"mx.ours.test; {results}"))
        assert (_last(smtp).status, _last(smtp).reason) == (IntakeStatus.HELD, "spoofed")

    @pytest.mark.parametrize(
        "results",
        [
            "dkim=pass header.d=mail.staff.example",
            "dmarc=pass (p=reject) header.from=Staff.Example.",
            'spf=pass smtp.mailfrom="a;b"@x.test; dmarc=pass header.from=staff.example',
        ],
    )
    def test_the_relays_real_verdict_still_makes_staff(
        self, start_smtp: StartSmtp, make_user: MakeUser, results: str
    ) -> None:
        smtp = start_smtp(**TRUSTED)
        make_user(Role.ADMIN, email=STAFF)
        smtp.send(relayed(message("Note", sender=STAFF), f"mx.ours.test; {results}"))
        assert _last(smtp).status is IntakeStatus.TICKET_CREATED


class TestDmarcFail:
    def test_dmarc_fail_claiming_an_existing_requester_is_held(self, start_smtp: StartSmtp) -> None:
        smtp = start_smtp(**TRUSTED)
        ticket = _customer_ticket(smtp)
        verdict = "mx.ours.test; dmarc=fail header.from=example.org"
        smtp.send(relayed(message(f"[#{ticket.id}]", sender=CUSTOMER), verdict))
        assert (_last(smtp).status, _last(smtp).reason) == (IntakeStatus.HELD, "spoofed")

    def test_dmarc_fail_from_a_new_sender_is_processed_with_a_note(
        self, start_smtp: StartSmtp
    ) -> None:
        smtp = start_smtp(**TRUSTED)
        verdict = "mx.ours.test; dmarc=fail header.from=evil.test"
        smtp.send(relayed(message("help", sender=STRANGER), verdict))
        assert _last(smtp).status is IntakeStatus.TICKET_CREATED
        assert "unverified_sender" in smtp.messages(smtp.tickets()[0].id)[0].notes


class TestHeldAndReleased:
    def test_deactivated_users_mail_is_held(self, smtp: Smtp, make_user: MakeUser) -> None:
        gone = make_user(Role.CLIENT, active=False)
        smtp.send(message("still here?", sender=gone.email))
        assert (_last(smtp).status, _last(smtp).reason) == (IntakeStatus.HELD, "deactivated_user")

    def test_admin_releases_a_held_message_and_it_becomes_a_ticket(
        self, smtp: Smtp, make_user: MakeUser
    ) -> None:
        agent, admin = make_user(Role.AGENT), make_user(Role.ADMIN)
        smtp.send(message("From my phone", sender=agent.email))
        held = _last(smtp)
        auth = {"Authorization": f"Bearer {smtp.context.tokens.issue(admin.id)}"}
        response = smtp.http.post(f"/api/v1/intake/{held.id}/release", headers=auth)
        assert response.status_code == 202 and response.json()["released_by_id"] == admin.id
        assert _last(smtp).status is IntakeStatus.TICKET_CREATED

    def test_only_held_events_are_released(self, smtp: Smtp, make_user: MakeUser) -> None:
        smtp.send(message("ordinary"))
        event = _last(smtp)
        auth = {"Authorization": f"Bearer {smtp.context.tokens.issue(make_user(Role.ADMIN).id)}"}
        response = smtp.http.post(f"/api/v1/intake/{event.id}/release", headers=auth)
        assert response.status_code == 409

    def test_agents_cannot_release(self, smtp: Smtp, make_user: MakeUser) -> None:
        agent = make_user(Role.AGENT)
        smtp.send(message("x", sender=agent.email))
        auth = {"Authorization": f"Bearer {smtp.context.tokens.issue(agent.id)}"}
        response = smtp.http.post(f"/api/v1/intake/{_last(smtp).id}/release", headers=auth)
        assert response.status_code == 403 and _last(smtp).status is IntakeStatus.HELD


class TestHostileAttachments:
    RAW = (
        "From: Alice <alice@example.org>\r\nTo: support@example.com\r\nSubject: invoice\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        "--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        "--b\r\nContent-Type: Image/JPEG;\r\n\tname*=utf-8''invoice%E2%80%AEgpj.exe\r\n"
        "Content-Disposition: attachment; filename*=utf-8''invoice%E2%80%AEgpj.exe\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n--b--\r\n"
    )

    def test_bidi_name_and_folded_type_are_stored_plain_and_download(
        self, smtp: Smtp, make_user: MakeUser
    ) -> None:
        smtp.send(self.RAW)
        smtp.settle()
        [attachment] = smtp.messages(smtp.tickets()[0].id)[0].attachments
        assert (attachment.filename, attachment.content_type) == ("invoicegpj.exe", "image/jpeg")
        agent = {"Authorization": f"Bearer {smtp.context.tokens.issue(make_user(Role.AGENT).id)}"}
        response = smtp.http.get(f"/api/v1/attachments/{attachment.id}", headers=agent)
        assert response.status_code == 200 and response.content.startswith(b"MZ")
        assert "invoicegpj.exe" in response.headers["content-disposition"]


class TestWebForms:
    def test_a_form_naming_a_staff_address_is_held_as_spoofed(
        self, start_smtp: StartSmtp, make_user: MakeUser
    ) -> None:
        hooks = start_hooks(start_smtp)
        agent = make_user(Role.AGENT)
        body = form_json(email=agent.email)
        assert hooks.http.post(FORM, content=body, headers=signed(body)).status_code == 202
        assert (_last(hooks).status, _last(hooks).reason) == (IntakeStatus.HELD, "spoofed")
        assert hooks.tickets() == []

    def test_a_form_never_threads_into_the_customers_ticket(self, start_smtp: StartSmtp) -> None:
        hooks = start_hooks(start_smtp)
        victim = _customer_ticket(hooks)
        body = form_json(email=CUSTOMER, subject=f"Re: [#{victim.id}] My invoice")
        hooks.http.post(FORM, content=body, headers=signed(body))
        assert _last(hooks).status is IntakeStatus.TICKET_CREATED
        assert hooks.tickets()[-1].id != victim.id and len(hooks.messages(victim.id)) == 2
