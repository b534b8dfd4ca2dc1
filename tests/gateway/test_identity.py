"""Who wrote the mail, played from outside: real smtplib clients against the real listener.

Forged follow-ups, look-alike addresses, mail without a usable From:, and strangers who
already have a user row, each trying to pass as someone else or to write into their ticket.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from doxa.core.enums import IntakeStatus, Role, ThreadedBy
from doxa.core.intake.models import IntakeEvent
from doxa.core.tickets.models import Ticket
from doxa.core.users.models import User
from tests.conftest import MakeUser
from tests.gateway.conftest import Smtp, StartSmtp, message, relayed
from tests.gateway.webhook_support import mailgun_signed, start_hooks
from tests.relays import Sink

CUSTOMER = "alice@example.org"
STRANGER = "mallory@evil.test"
TRUSTED = {"trusted_authserv_ids": "mx.ours.test", "trusted_relays": "127.0.0.1"}
CUSTOMER_PASSES = "mx.ours.test; dmarc=pass header.from=example.org"


def _customer_ticket(smtp: Smtp) -> Ticket:
    smtp.send(message("My invoice", "Please resend it.", sender=CUSTOMER, message_id="a1@x.org"))
    smtp.settle()
    return smtp.tickets()[-1]


def _last(smtp: Smtp) -> IntakeEvent:
    return smtp.settle()[-1]


def _users(smtp: Smtp) -> list[str]:
    with smtp.context.sessions() as db:
        return list(db.scalars(select(User.email).order_by(User.id)))


def _raw(*headers: str, body: str = "Hello") -> str:
    return "\r\n".join([*headers, "To: support@example.com", "", body, ""])


def _assert_linked(smtp: Smtp, victim: Ticket, author: str) -> None:
    event = _last(smtp)
    assert (event.status, event.reason) == (IntakeStatus.TICKET_CREATED, "not_a_participant")
    new = smtp.tickets()[-1]
    assert new.previous_ticket_id == victim.id and new.requester.email == author
    assert len(smtp.messages(victim.id)) == 2  # the customer's message and its acknowledgment


class TestCcOfFollowUps:
    def test_a_forged_follow_ups_cc_makes_no_participant(self, smtp: Smtp) -> None:
        victim = _customer_ticket(smtp)
        smtp.send(message(f"Re: [#{victim.id}] x", sender=CUSTOMER, Cc=STRANGER))
        assert _last(smtp).status is IntakeStatus.FOLLOWUP
        assert smtp.tickets()[0].cc == []
        smtp.send(message(f"Re: [#{victim.id}] refund to my account", sender=STRANGER))
        event = _last(smtp)
        assert (event.status, event.reason) == (IntakeStatus.TICKET_CREATED, "not_a_participant")
        assert len(smtp.messages(victim.id)) == 3

    def test_an_authenticated_follow_ups_cc_becomes_a_participant(
        self, start_smtp: StartSmtp
    ) -> None:
        smtp = start_smtp(**TRUSTED)
        ticket = _customer_ticket(smtp)
        follow_up = message(f"Re: [#{ticket.id}] x", sender=CUSTOMER, Cc="Bob <Bob@Example.org.>")
        smtp.send(relayed(follow_up, CUSTOMER_PASSES))
        smtp.settle()
        assert smtp.tickets()[0].cc == ["bob@example.org"]
        smtp.send(message(f"Re: [#{ticket.id}] y", sender="bob@example.org"))
        assert _last(smtp).status is IntakeStatus.FOLLOWUP

    def test_cc_of_a_staff_follow_up_becomes_a_participant(
        self, start_smtp: StartSmtp, make_user: MakeUser
    ) -> None:
        smtp = start_smtp(**TRUSTED)
        agent = make_user(Role.AGENT)
        ticket = _customer_ticket(smtp)
        verdict = "mx.ours.test; dmarc=pass header.from=example.com"
        follow_up = message(f"Re: [#{ticket.id}]", sender=agent.email, Cc="carol@example.net")
        smtp.send(relayed(follow_up, verdict))
        assert _last(smtp).status is IntakeStatus.FOLLOWUP
        assert smtp.tickets()[0].cc == ["carol@example.net"]


class TestSenderRateLimit:
    def test_forged_mail_does_not_hold_the_customers_authenticated_mail(
        self, start_smtp: StartSmtp
    ) -> None:
        smtp = start_smtp(sender_hourly_limit=3, **TRUSTED)
        for n in range(4):
            smtp.send(message(f"forged {n}", sender=CUSTOMER))
            smtp.settle()
        assert _last(smtp).reason == "rate_limited"  # the forger is held
        smtp.send(relayed(message("mine", sender=CUSTOMER), CUSTOMER_PASSES))
        assert (_last(smtp).status, _last(smtp).reason) == (IntakeStatus.TICKET_CREATED, None)

    def test_authenticated_mail_over_the_limit_is_still_held(self, start_smtp: StartSmtp) -> None:
        smtp = start_smtp(sender_hourly_limit=2, **TRUSTED)
        for n in range(3):
            smtp.send(relayed(message(f"{n}", sender=CUSTOMER), CUSTOMER_PASSES))
            smtp.settle()
        assert [e.reason for e in smtp.settle()] == [None, None, "rate_limited"]

    def test_spellings_of_one_address_share_one_allowance(self, start_smtp: StartSmtp) -> None:
        smtp = start_smtp(sender_hourly_limit=2)
        for sender in ("alice@example.org", "ALICE@Example.ORG.", '"alice"@example.org'):
            smtp.send(message("x", sender=sender))
            smtp.settle()
        assert [e.reason for e in smtp.settle()] == [None, None, "rate_limited"]


LOOK_ALIKES = [
    "{local}@{domain}.",  # the root's trailing dot
    "{LOCAL}@{DOMAIN}",
    '"{local}"@{domain}',
    "{local}@{fullwidth}",
    "{local}@{ideographic}",
]


class TestLookAlikeAddresses:
    @pytest.mark.parametrize("shape", LOOK_ALIKES)
    def test_a_look_alike_of_a_staff_address_is_held_as_spoofed(
        self, smtp: Smtp, make_user: MakeUser, shape: str
    ) -> None:
        agent = make_user(Role.AGENT, email="agent@staff.example")
        smtp.send(message("Refund approved", sender=_spell(shape, agent.email)))
        assert (_last(smtp).status, _last(smtp).reason) == (IntakeStatus.HELD, "spoofed")
        assert _users(smtp) == ["agent@staff.example"]  # no client account that looks like it

    def test_a_mixed_script_domain_is_stored_in_punycode(self, smtp: Smtp) -> None:
        smtp.send(message("x", sender="agent@st\u0430ff.example"))  # a Cyrillic a
        smtp.settle()
        assert smtp.tickets()[0].requester.email == "agent@xn--stff-63d.example"

    def test_the_customer_in_another_spelling_threads_as_herself(self, smtp: Smtp) -> None:
        ticket = _customer_ticket(smtp)
        smtp.send(message(f"Re: [#{ticket.id}]", sender="Alice@EXAMPLE.org."))
        assert _last(smtp).status is IntakeStatus.FOLLOWUP
        assert _users(smtp) == [CUSTOMER]

    def test_an_idn_domain_in_punycode_and_in_unicode_is_one_user(self, smtp: Smtp) -> None:
        smtp.send(message("a", sender="jo@xn--bcher-kva.example"))
        smtp.send(message("b", sender="jo@B\u00fccher.example"))
        smtp.settle()
        assert _users(smtp) == ["jo@b\u00fccher.example"]

    def test_a_customer_stored_with_a_unicode_domain_is_mailed_in_punycode(
        self, start_smtp: StartSmtp, sink: Sink
    ) -> None:
        smtp = start_smtp(outbound_smtp_url=sink.url)
        smtp.send(message("Hallo", sender="jo@xn--bcher-kva.example"), sender="jo@x.example")
        [ack] = sink.wait_for(1)
        assert ack["To"] == "jo@xn--bcher-kva.example"
        assert [envelope[1] for envelope in sink.envelopes] == [["jo@xn--bcher-kva.example"]]


def _spell(shape: str, address: str) -> str:
    local, domain = address.split("@")
    wide = "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in domain)
    return shape.format(
        local=local,
        domain=domain,
        LOCAL=local.upper(),
        DOMAIN=domain.upper(),
        fullwidth=wide,
        ideographic=domain.replace(".", "\u3002"),
    )


class TestAuthorOfSeveralFromAddresses:
    def test_sender_is_the_author_when_from_lists_several(self, smtp: Smtp) -> None:
        smtp.send(
            _raw(
                "From: Ann <ann@example.org>, Bob <bob@example.org>",
                "Sender: Bob <bob@example.org>",
                "Subject: joint letter",
            )
        )
        smtp.settle()
        assert smtp.tickets()[0].requester.email == "bob@example.org"


NO_USABLE_FROM = [
    "Subject: no From at all",
    "From: Alice Only\r\nSubject: a name only",
    "From: =?utf-8?q?Alice_Example?=\r\nSubject: an encoded word only",
    "From: <<<@>>>\r\nSubject: unparsable",
    f"From: <{'x' * 380}@example.org>\r\nSubject: a 380-character local part",
]


class TestNoUsableFrom:
    @pytest.mark.parametrize("headers", NO_USABLE_FROM)
    def test_the_envelope_sender_writes_a_new_ticket(self, smtp: Smtp, headers: str) -> None:
        smtp.send(_raw(headers), sender="carol@example.net")
        assert _last(smtp).status is IntakeStatus.TICKET_CREATED
        [ticket] = smtp.tickets()
        assert ticket.requester.email == "carol@example.net"
        assert "from_envelope" in smtp.messages(ticket.id)[0].notes

    def test_it_never_threads_into_the_envelope_senders_ticket(self, smtp: Smtp) -> None:
        ticket = _customer_ticket(smtp)
        smtp.send(_raw(f"Subject: Re: [#{ticket.id}]", "In-Reply-To: <a1@x.org>"), sender=CUSTOMER)
        assert _last(smtp).status is IntakeStatus.TICKET_CREATED
        assert smtp.tickets()[-1].id != ticket.id and len(smtp.messages(ticket.id)) == 2

    def test_a_staff_envelope_sender_is_held_as_spoofed(
        self, start_smtp: StartSmtp, make_user: MakeUser
    ) -> None:
        smtp = start_smtp(**TRUSTED)
        agent = make_user(Role.AGENT)
        verdict = "mx.ours.test; dmarc=pass header.from=example.com"
        smtp.send(_raw("Subject: x", f"Authentication-Results: {verdict}"), sender=agent.email)
        assert (_last(smtp).status, _last(smtp).reason) == (IntakeStatus.HELD, "spoofed")

    def test_with_an_unusable_envelope_sender_too_it_is_held_no_sender(self, smtp: Smtp) -> None:
        smtp.send(_raw("From: Alice Only", "Subject: x"), sender="carol@[192.0.2.1]")
        assert (_last(smtp).status, _last(smtp).reason) == (IntakeStatus.HELD, "no_sender")

    def test_a_mailgun_post_takes_the_from_field_when_its_headers_lack_from(
        self, start_smtp: StartSmtp
    ) -> None:
        hooks = start_hooks(start_smtp)
        fields = {
            "recipient": "support@example.com",
            "sender": "bounces@mg.example.net",
            "from": "Bob <bob@example.org>",
            "subject": "Hello",
            "body-plain": "Hi",
            "message-headers": json.dumps([["To", "support@example.com"], ["Subject", "Hello"]]),
        }
        response = hooks.http.post("/api/v1/inbound/mailgun", data=mailgun_signed(fields))
        assert response.status_code == 200
        assert _last(hooks).status is IntakeStatus.TICKET_CREATED
        [ticket] = hooks.tickets()
        assert ticket.requester.email == "bob@example.org"
        assert "from_envelope" not in hooks.messages(ticket.id)[0].notes

    def test_a_mailgun_post_with_no_from_at_all_is_its_envelope_senders(
        self, start_smtp: StartSmtp
    ) -> None:
        hooks = start_hooks(start_smtp)
        fields = {
            "recipient": "support@example.com",
            "sender": "Carol@Example.net",
            "subject": "Hello",
            "body-plain": "Hi",
            "message-headers": json.dumps([["To", "support@example.com"], ["Subject", "Hello"]]),
        }
        hooks.http.post("/api/v1/inbound/mailgun", data=mailgun_signed(fields))
        assert _last(hooks).status is IntakeStatus.TICKET_CREATED
        [ticket] = hooks.tickets()
        assert ticket.requester.email == "carol@example.net"
        assert "from_envelope" in hooks.messages(ticket.id)[0].notes


RULES = [ThreadedBy.SUBJECT_TOKEN, ThreadedBy.PLUS_ADDRESS, ThreadedBy.REFERENCES]


class TestStrangersWithAUserRow:
    """Intake makes a user row for anyone who writes once: a stranger is not only an address
    nobody knows."""

    @pytest.mark.parametrize("rule", RULES)
    def test_a_stranger_who_wrote_before_opens_a_linked_ticket(
        self, smtp: Smtp, rule: ThreadedBy
    ) -> None:
        smtp.send(message("my own question", sender=STRANGER))
        smtp.settle()  # the stranger's ticket first: two events at once may finish either way
        victim = _customer_ticket(smtp)
        _name_the_ticket(smtp, victim, rule)
        _assert_linked(smtp, victim, STRANGER)

    @pytest.mark.parametrize("rule", RULES)
    def test_a_stranger_with_an_account_opens_a_linked_ticket(
        self, smtp: Smtp, make_user: MakeUser, rule: ThreadedBy
    ) -> None:
        make_user(Role.CLIENT, email=STRANGER)
        victim = _customer_ticket(smtp)
        _name_the_ticket(smtp, victim, rule)
        _assert_linked(smtp, victim, STRANGER)


def _name_the_ticket(smtp: Smtp, ticket: Ticket, rule: ThreadedBy) -> None:
    if rule is ThreadedBy.SUBJECT_TOKEN:
        smtp.send(message(f"Re: [#{ticket.id}] My invoice", sender=STRANGER))
    elif rule is ThreadedBy.PLUS_ADDRESS:
        smtp.send(message("hi", sender=STRANGER), to=f"support+{ticket.id}@example.com")
    else:
        smtp.send(message("Re: My invoice", sender=STRANGER, In_Reply_To="<a1@x.org>"))
