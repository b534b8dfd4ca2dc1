"""Mailgun, SendGrid and Postmark endpoints, fed the providers' real posts (shared samples)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from sqlalchemy import select

from doxa.core.enums import Channel, IntakeStatus
from doxa.core.intake.models import IntakeEvent
from doxa.core.tickets.models import Attachment
from tests.gateway.conftest import Smtp, StartSmtp, message
from tests.gateway.webhook_support import (
    POSTMARK,
    SENDGRID,
    basic,
    corpus,
    mailgun_signed,
    start_hooks,
)

MAILGUN, SENDGRID_URL, POSTMARK_URL = (
    f"/api/v1/inbound/{p}" for p in ("mailgun", "sendgrid", "postmark")
)
SENDGRID_TYPE = {"Content-Type": "multipart/form-data; boundary=xYzZY"}


def _fields(path: str) -> dict[str, Any]:
    fields: dict[str, Any] = json.loads(corpus(path).read_text())
    return fields


def _events(hooks: Smtp) -> list[IntakeEvent]:
    with hooks.context.sessions() as db:
        return list(db.scalars(select(IntakeEvent).order_by(IntakeEvent.id)))


def _attachments(hooks: Smtp) -> list[Attachment]:
    with hooks.context.sessions() as db:
        return list(db.scalars(select(Attachment).order_by(Attachment.id)))


class TestMailgun:
    @pytest.mark.parametrize(
        "sample",
        [
            "mailgun/mailgun-documentation/route-message-forward.fields.json",
            "mailgun/mailgun-documentation/route-message-store.fields.json",
            "mailgun/django-inbound-email/mailgun-route-tester.fields.json",
        ],
    )
    def test_a_documented_route_post_gets_200_and_a_ticket(self, hooks: Smtp, sample: str) -> None:
        fields = _fields(sample)
        response = hooks.http.post(MAILGUN, data=mailgun_signed(fields))
        assert response.status_code == 200
        [event] = hooks.settle()
        assert event.id == response.json()["intake_event_id"]
        assert (event.channel, event.status) == (Channel.MAILGUN, IntakeStatus.TICKET_CREATED)
        [ticket] = hooks.tickets()
        assert ticket.channel is Channel.MAILGUN and ticket.subject == fields["subject"]
        msg = hooks.messages(ticket.id)[0]  # then our acknowledgment
        assert msg.message_id == fields["Message-Id"].strip("<>")
        assert fields["body-plain"].split("\n")[0] in msg.full_body

    def test_body_mime_is_parsed_as_the_raw_message(self, hooks: Smtp) -> None:
        raw = message("Raw by Mailgun", "From the MIME field.", message_id="mg1@example.org")
        fields = {
            "recipient": "support@example.com",
            "sender": "alice@example.org",
            "body-mime": raw,
            "subject": "ignored: the MIME wins",
        }
        assert hooks.http.post(MAILGUN, data=mailgun_signed(fields)).status_code == 200
        hooks.settle()
        [ticket] = hooks.tickets()
        assert ticket.subject == "Raw by Mailgun"
        assert hooks.messages(ticket.id)[0].message_id == "mg1@example.org"

    def test_body_mime_is_read_under_the_configured_part_limit(self, start_smtp: StartSmtp) -> None:
        hooks = start_hooks(start_smtp, max_mime_parts=3)
        parts = "".join(
            f"--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; "
            f"filename=f{n}.txt\r\n\r\nfile {n}\r\n"
            for n in range(6)
        )
        raw = (
            "From: alice@example.org\r\nTo: support@example.com\r\nSubject: Many files\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
            f"{parts}--b--\r\n"
        )
        fields = {"recipient": "support@example.com", "sender": "alice@example.org"}
        hooks.http.post(MAILGUN, data=mailgun_signed(fields | {"body-mime": raw}))
        hooks.settle()
        first = hooks.messages(hooks.tickets()[0].id)[0]
        assert len(first.attachments) < 6
        assert any("more than 3 MIME parts" in note for note in first.notes)

    def test_a_wrong_signature_gets_401(self, hooks: Smtp) -> None:
        fields = mailgun_signed(
            _fields("mailgun/mailgun-documentation/route-message-forward.fields.json"), key="wrong"
        )
        assert hooks.http.post(MAILGUN, data=fields).status_code == 401
        assert _events(hooks) == []

    def test_a_stale_timestamp_gets_401(self, hooks: Smtp) -> None:
        fields = _fields("mailgun/mailgun-documentation/route-message-forward.fields.json")
        stale = mailgun_signed(fields, timestamp=int(time.time()) - 302)
        assert hooks.http.post(MAILGUN, data=stale).status_code == 401

    def test_a_timestamp_from_the_future_gets_401(self, hooks: Smtp) -> None:
        fields = _fields("mailgun/mailgun-documentation/route-message-forward.fields.json")
        ahead = mailgun_signed(fields, timestamp=int(time.time()) + 400)  # time only shortens it
        assert hooks.http.post(MAILGUN, data=ahead).status_code == 401
        assert _events(hooks) == []

    def test_the_samples_own_signature_from_2016_gets_401(self, hooks: Smtp) -> None:
        fields = _fields("mailgun/mailgun-documentation/route-message-forward.fields.json")
        assert hooks.http.post(MAILGUN, data=fields).status_code == 401

    def test_a_replayed_token_gets_401_and_stores_nothing_more(self, hooks: Smtp) -> None:
        fields = mailgun_signed(
            _fields("mailgun/mailgun-documentation/route-message-forward.fields.json")
        )
        assert hooks.http.post(MAILGUN, data=fields).status_code == 200
        assert hooks.http.post(MAILGUN, data=fields).status_code == 401
        assert len(_events(hooks)) == 1

    def test_a_recipient_that_is_not_ours_gets_406(self, hooks: Smtp) -> None:
        fields = _fields("mailgun/mailgun-documentation/route-message-forward.fields.json")
        fields["recipient"] = "someone@elsewhere.example"
        response = hooks.http.post(MAILGUN, data=mailgun_signed(fields))
        assert response.status_code == 406
        assert response.headers["content-type"] == "application/problem+json"
        assert _events(hooks) == []

    def test_without_a_signing_key_the_endpoint_answers_503_naming_it(
        self, start_smtp: StartSmtp
    ) -> None:
        hooks = start_hooks(start_smtp, mailgun_signing_key=None)
        response = hooks.http.post(MAILGUN, data={"token": "x"})
        assert response.status_code == 503 and "MAILGUN_SIGNING_KEY" in response.json()["detail"]

    def test_a_delivery_repeated_with_a_new_token_makes_no_second_ticket(self, hooks: Smtp) -> None:
        fields = _fields("mailgun/mailgun-documentation/route-message-forward.fields.json")
        for _ in range(2):
            assert hooks.http.post(MAILGUN, data=mailgun_signed(fields)).status_code == 200
        events = hooks.settle()
        assert [e.status for e in events] == [IntakeStatus.TICKET_CREATED, IntakeStatus.DUPLICATE]
        assert len(hooks.tickets()) == 1


class TestAcrossChannels:
    def test_one_message_by_smtp_and_by_mailgun_makes_one_ticket(self, hooks: Smtp) -> None:
        raw = message("Twice delivered", message_id="twice@example.org")
        hooks.send(raw)
        hooks.settle()
        fields = {
            "recipient": "support@example.com",
            "sender": "alice@example.org",
            "body-mime": raw,
        }
        assert hooks.http.post(MAILGUN, data=mailgun_signed(fields)).status_code == 200
        events = hooks.settle()
        assert [(e.channel, e.status) for e in events] == [
            (Channel.EMAIL, IntakeStatus.TICKET_CREATED),
            (Channel.MAILGUN, IntakeStatus.DUPLICATE),
        ]
        assert len(hooks.tickets()) == 1

    def test_a_reply_by_mailgun_parsed_fields_threads_into_an_email_ticket(
        self, hooks: Smtp
    ) -> None:
        hooks.send(message("Printer jam", message_id="first@example.org"))
        hooks.settle()
        headers = [
            ["From", "Alice <alice@example.org>"],
            ["To", "support@example.com"],
            ["Subject", "Re: Printer jam"],
            ["Message-Id", "<second@example.org>"],
            ["In-Reply-To", "<first@example.org>"],
            ["References", "<first@example.org>"],
        ]
        fields = {
            "recipient": "support@example.com",
            "sender": "alice@example.org",
            "message-headers": json.dumps(headers),
            "subject": "Re: Printer jam",
            "body-plain": "It works again.\n\nOn Fri, Alice wrote:\n> Printer jam",
        }
        assert hooks.http.post(MAILGUN, data=mailgun_signed(fields)).status_code == 200
        events = hooks.settle()
        assert [e.status for e in events] == [IntakeStatus.TICKET_CREATED, IntakeStatus.FOLLOWUP]
        [ticket] = hooks.tickets()
        reply = hooks.messages(ticket.id)[-1]
        assert reply.threaded_by == "references" and reply.body.startswith("It works again.")

    def test_an_auto_reply_by_a_provider_is_held_like_mail(self, hooks: Smtp) -> None:
        raw = message("Out of office", Auto_Submitted="auto-replied")
        post = {
            "From": "alice@example.org",
            "OriginalRecipient": "support@example.com",
            "RawEmail": raw,
        }
        response = hooks.http.post(POSTMARK_URL, json=post, headers=basic(*POSTMARK))
        assert response.status_code == 200
        [event] = hooks.settle()
        assert (event.status, event.reason) == (IntakeStatus.HELD, "auto_reply")


class TestSendGrid:
    @pytest.mark.parametrize(
        ("sample", "subject", "files"),
        [
            ("default_data.txt", "Inbound Parse Test Data", 0),  # its headers' Subject
            ("raw_data.txt", "Inbound Parse Test Raw Data", 0),
            ("raw_data_with_attachments.txt", "Inbound Parse Test Raw Data with Attachment", 1),
        ],
    )
    def test_parsed_and_raw_posts_make_a_ticket(
        self, hooks: Smtp, sample: str, subject: str, files: int
    ) -> None:
        body = corpus(f"sendgrid/sendgrid-python/{sample}").read_bytes()
        headers = SENDGRID_TYPE | basic(*SENDGRID)
        response = hooks.http.post(SENDGRID_URL, content=body, headers=headers)
        assert response.status_code == 200
        [event] = hooks.settle()
        assert (event.channel, event.status) == (Channel.SENDGRID, IntakeStatus.TICKET_CREATED)
        [ticket] = hooks.tickets()
        assert ticket.subject == subject and ticket.requester.email == "test@example.com"
        assert "Hello Twilio SendGrid!" in hooks.messages(ticket.id)[0].full_body
        assert len(_attachments(hooks)) == files

    def test_captured_parsed_fields_with_charsets_make_a_ticket(self, hooks: Smtp) -> None:
        fields = _fields("sendgrid/django-inbound-email/sendgrid-inbound-parse.fields.json")
        fields["envelope"] = json.dumps({"to": ["support@example.com"], "from": "from@example.com"})
        response = hooks.http.post(
            SENDGRID_URL, files={k: (None, v) for k, v in fields.items()}, headers=basic(*SENDGRID)
        )
        assert response.status_code == 200
        hooks.settle()
        [ticket] = hooks.tickets()
        assert ticket.subject == "test" and ticket.requester.email == "from@example.com"

    @pytest.mark.parametrize(
        "odd",
        [
            {"envelope": json.dumps({"to": "support@example.com", "from": "from@example.com"})},
            {"charsets": "[1, 2]"},
            {"envelope": "[]", "to": "support@example.com"},
        ],
    )
    def test_fields_of_an_unexpected_shape_still_make_a_ticket(
        self, hooks: Smtp, odd: dict[str, str]
    ) -> None:
        fields = _fields("sendgrid/django-inbound-email/sendgrid-inbound-parse.fields.json")
        fields["envelope"] = json.dumps({"to": ["support@example.com"], "from": "from@example.com"})
        response = hooks.http.post(SENDGRID_URL, data=fields | odd, headers=basic(*SENDGRID))
        assert response.status_code == 200
        [event] = hooks.settle()
        assert event.status is IntakeStatus.TICKET_CREATED

    @pytest.mark.parametrize(
        "credentials", [("sendgrid-user", "wrong"), ("x", "sendgrid-password")]
    )
    def test_wrong_credentials_get_401(self, hooks: Smtp, credentials: tuple[str, str]) -> None:
        body = corpus("sendgrid/sendgrid-python/raw_data.txt").read_bytes()
        response = hooks.http.post(
            SENDGRID_URL, content=body, headers=SENDGRID_TYPE | basic(*credentials)
        )
        assert response.status_code == 401 and _events(hooks) == []

    def test_a_recipient_that_is_not_ours_is_kept_as_rejected_and_answered_200(
        self, start_smtp: StartSmtp
    ) -> None:
        hooks = start_hooks(start_smtp, support_addresses="support@example.com")
        body = corpus("sendgrid/sendgrid-python/raw_data.txt").read_bytes()
        response = hooks.http.post(
            SENDGRID_URL, content=body, headers=SENDGRID_TYPE | basic(*SENDGRID)
        )
        assert response.status_code == 200
        [event] = hooks.settle()
        assert (event.status, event.reason) == (IntakeStatus.REJECTED, "not_our_recipient")
        assert hooks.tickets() == []

    def test_without_credentials_configured_the_endpoint_answers_503_naming_them(
        self, start_smtp: StartSmtp
    ) -> None:
        hooks = start_hooks(start_smtp, sendgrid_inbound_password=None)
        response = hooks.http.post(SENDGRID_URL, content=b"", headers=basic(*SENDGRID))
        assert response.status_code == 503
        assert "SENDGRID_INBOUND_PASSWORD" in response.json()["detail"]


class TestPostmark:
    @pytest.mark.parametrize(
        ("sample", "subject", "sender", "files"),
        [
            (
                "jjaffeux-postmark-inbound-php/inbound.json",
                "This is an inbound message",
                ("myuser@theirdomain.com", "myusersreplyaddress@theirdomain.com"),
                2,
            ),
            (
                "jpadilla-postmark-inbound-python/valid_http_post.json",
                "Hi There",
                ("bob@bob.com", "new-comment+sometoken@yeah.com"),
                2,
            ),
        ],
    )
    def test_inbound_json_makes_a_ticket_with_its_attachments(
        self, hooks: Smtp, sample: str, subject: str, sender: tuple[str, str], files: int
    ) -> None:
        body = corpus(f"postmark/{sample}").read_bytes()
        headers = {"Content-Type": "application/json"} | basic(*POSTMARK)
        response = hooks.http.post(POSTMARK_URL, content=body, headers=headers)
        assert response.status_code == 200
        [event] = hooks.settle()
        assert (event.channel, event.status) == (Channel.POSTMARK, IntakeStatus.TICKET_CREATED)
        [ticket] = hooks.tickets()
        # From, or Reply-To while the parser still lets it name the requester (the same as SMTP)
        assert ticket.subject == subject and ticket.requester.email in sender
        assert len(_attachments(hooks)) == files

    def test_raw_email_is_preferred_to_the_parsed_fields(self, hooks: Smtp) -> None:
        raw = message("From RawEmail", message_id="pm1@example.org")
        post = {
            "Subject": "parsed",
            "TextBody": "parsed",
            "OriginalRecipient": "support@example.com",
            "FromFull": {"Email": "alice@example.org"},
            "RawEmail": raw,
        }
        assert hooks.http.post(POSTMARK_URL, json=post, headers=basic(*POSTMARK)).status_code == 200
        hooks.settle()
        [ticket] = hooks.tickets()
        assert ticket.subject == "From RawEmail"

    def test_wrong_credentials_get_401(self, hooks: Smtp) -> None:
        response = hooks.http.post(POSTMARK_URL, json={}, headers=basic("postmark-user", "nope"))
        assert response.status_code == 401
        response = hooks.http.post(POSTMARK_URL, json={})
        assert response.status_code == 401

    def test_a_recipient_that_is_not_ours_gets_403(self, hooks: Smtp) -> None:
        post = json.loads(corpus("postmark/jjaffeux-postmark-inbound-php/inbound.json").read_text())
        post["OriginalRecipient"] = "someone@elsewhere.example"
        response = hooks.http.post(POSTMARK_URL, json=post, headers=basic(*POSTMARK))
        assert response.status_code == 403 and _events(hooks) == []

    def test_a_body_that_is_not_json_is_stored_answered_200_and_rejected(self, hooks: Smtp) -> None:
        response = hooks.http.post(POSTMARK_URL, content=b"{not json", headers=basic(*POSTMARK))
        assert response.status_code == 200
        [event] = hooks.settle()
        assert (event.status, event.reason) == (IntakeStatus.REJECTED, "unreadable")
        assert hooks.tickets() == []

    @pytest.mark.parametrize(
        "odd",
        [
            {"Headers": 7},
            {"Headers": "Message-ID: <x@y>"},
            {"Attachments": "x"},
            {"Attachments": [None, 3]},
            {"ToFull": {"Email": "a@b"}},
            {"FromFull": ["bob"]},
            {"RawEmail": ["not", "text"]},
        ],
    )
    def test_fields_of_an_unexpected_shape_still_make_a_ticket(
        self, hooks: Smtp, odd: dict[str, Any]
    ) -> None:
        """A post nobody tested (a field of another JSON type) is read from what is usable."""
        post = json.loads(corpus("postmark/jjaffeux-postmark-inbound-php/inbound.json").read_text())
        response = hooks.http.post(POSTMARK_URL, json=post | odd, headers=basic(*POSTMARK))
        assert response.status_code == 200
        [event] = hooks.settle()
        assert event.status is IntakeStatus.TICKET_CREATED

    def test_the_same_post_twice_makes_one_ticket(self, hooks: Smtp) -> None:
        body = corpus("postmark/jpadilla-postmark-inbound-python/valid_http_post.json").read_bytes()
        for _ in range(2):
            hooks.http.post(POSTMARK_URL, content=body, headers=basic(*POSTMARK))
        assert [e.status for e in hooks.settle()] == [
            IntakeStatus.TICKET_CREATED,
            IntakeStatus.DUPLICATE,
        ]
