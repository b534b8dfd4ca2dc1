"""`POST /api/v1/inbound/form`: signatures, replays, idempotency, bad input, what it makes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from doxa.core.enums import Channel, DeliveryState, Direction, IntakeStatus
from doxa.core.intake.models import IntakeEvent, IntakeKey
from doxa.core.tickets.models import Attachment
from tests.gateway.conftest import Smtp, StartSmtp
from tests.gateway.webhook_support import form_json, signed, start_hooks

FORM = "/api/v1/inbound/form"


def _events(hooks: Smtp) -> list[IntakeEvent]:
    with hooks.context.sessions() as db:
        return list(db.scalars(select(IntakeEvent).order_by(IntakeEvent.id)))


def _keys(hooks: Smtp) -> list[IntakeKey]:
    with hooks.context.sessions() as db:
        return list(db.scalars(select(IntakeKey)))


class TestSignature:
    def test_a_signed_json_post_gets_202_and_opens_a_form_ticket(self, hooks: Smtp) -> None:
        body = form_json(order="ORD-7", plan={"tier": "pro"})
        response = hooks.http.post(FORM, content=body, headers=signed(body))
        assert response.status_code == 202
        event_id = response.json()["intake_event_id"]
        [event] = hooks.settle()
        assert (event.id, event.channel, event.status) == (
            event_id,
            Channel.FORM,
            IntakeStatus.TICKET_CREATED,
        )
        [ticket] = hooks.tickets()
        assert ticket.channel is Channel.FORM and ticket.subject == "Order missing"
        assert ticket.requester.email == "carol@example.org"
        assert ticket.meta == {"order": "ORD-7", "plan": {"tier": "pro"}}
        [message] = hooks.messages(ticket.id)
        assert message.body == "My order ORD-7 never arrived."

    def test_a_wrong_signature_gets_401_problem_and_stores_nothing(self, hooks: Smtp) -> None:
        body = form_json()
        response = hooks.http.post(FORM, content=body, headers=signed(body, secret="guessed"))
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert _events(hooks) == []

    def test_a_signature_over_another_body_gets_401(self, hooks: Smtp) -> None:
        headers = signed(form_json())
        assert (
            hooks.http.post(FORM, content=form_json(subject="x"), headers=headers).status_code
            == 401
        )

    @pytest.mark.parametrize("skew", [-302, 302])  # whole seconds: 301 may round to 300
    def test_a_timestamp_more_than_300_s_away_gets_401(self, hooks: Smtp, skew: int) -> None:
        body = form_json()
        headers = signed(body, timestamp=int(time.time()) + skew)
        assert hooks.http.post(FORM, content=body, headers=headers).status_code == 401

    def test_missing_signature_headers_get_401(self, hooks: Smtp) -> None:
        response = hooks.http.post(
            FORM, content=form_json(), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 401

    def test_without_webhook_secret_the_endpoint_answers_503_naming_it(
        self, start_smtp: StartSmtp
    ) -> None:
        hooks = start_hooks(start_smtp, webhook_secret=None)
        body = form_json()
        response = hooks.http.post(FORM, content=body, headers=signed(body))
        assert response.status_code == 503 and "WEBHOOK_SECRET" in response.json()["detail"]


class TestReplayAndIdempotency:
    def test_a_replayed_signature_gets_the_first_answer_whatever_its_key(self, hooks: Smtp) -> None:
        body = form_json()
        headers = signed(body)
        first = hooks.http.post(FORM, content=body, headers=headers | {"Idempotency-Key": "a"})
        again = hooks.http.post(FORM, content=body, headers=headers | {"Idempotency-Key": "b"})
        assert first.status_code == again.status_code == 202
        assert again.json() == first.json()
        assert len(_events(hooks)) == 1

    def test_a_repeated_key_and_body_gets_the_first_answer_and_creates_nothing(
        self, hooks: Smtp
    ) -> None:
        body = form_json()
        key = {"Idempotency-Key": "k1"}
        first = hooks.http.post(FORM, content=body, headers=signed(body) | key)
        retry = hooks.http.post(
            FORM,
            content=body,
            headers=signed(body, timestamp=int(time.time()) + 1) | {"Idempotency-Key": "k1"},
        )
        assert retry.status_code == 202 and retry.json() == first.json()
        hooks.settle()
        assert len(_events(hooks)) == 1 and len(hooks.tickets()) == 1

    def test_the_same_key_with_another_body_gets_409(self, hooks: Smtp) -> None:
        body, other = form_json(), form_json(message="Something else")
        hooks.http.post(FORM, content=body, headers=signed(body) | {"Idempotency-Key": "k2"})
        response = hooks.http.post(
            FORM, content=other, headers=signed(other) | {"Idempotency-Key": "k2"}
        )
        assert response.status_code == 409
        assert response.headers["content-type"] == "application/problem+json"
        assert len(_events(hooks)) == 1

    def test_two_racing_requests_with_one_key_store_one_event(self, hooks: Smtp) -> None:
        body = form_json()
        answers: list[int] = []
        start = threading.Barrier(2)

        def post(offset: int) -> None:
            headers = signed(body, timestamp=int(time.time()) + offset) | {
                "Idempotency-Key": "race"
            }
            start.wait()
            response = hooks.http.post(FORM, content=body, headers=headers)
            answers.append(response.status_code)
            answers.append(response.json()["intake_event_id"])

        threads = [threading.Thread(target=post, args=(n,)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert answers[0] == answers[2] == 202 and answers[1] == answers[3]
        assert len(_events(hooks)) == 1

    def test_keys_older_than_24_hours_are_claimed_afresh(self, hooks: Smtp) -> None:
        body = form_json()
        hooks.http.post(FORM, content=body, headers=signed(body) | {"Idempotency-Key": "old"})
        with hooks.context.sessions() as db, db.begin():
            for key in db.scalars(select(IntakeKey)):
                key.created_at = key.created_at.replace(year=key.created_at.year - 1)
        other = form_json(message="A new question")
        response = hooks.http.post(
            FORM, content=other, headers=signed(other) | {"Idempotency-Key": "old"}
        )
        assert response.status_code == 202
        assert len(_events(hooks)) == 2

    def test_keys_older_than_24_hours_are_forgotten_in_the_background(self, hooks: Smtp) -> None:
        body = form_json()
        hooks.http.post(FORM, content=body, headers=signed(body) | {"Idempotency-Key": "stale"})
        with hooks.context.sessions() as db, db.begin():
            for key in db.scalars(select(IntakeKey)):
                key.created_at = key.created_at.replace(year=key.created_at.year - 1)
        hooks.http.app.state.webhooks._purge_at = 0.0  # type: ignore[attr-defined]  # an hour on
        other = form_json(message="Another question")
        headers = signed(other)
        assert hooks.http.post(FORM, content=other, headers=headers).status_code == 202
        left = {headers["X-Doxa-Signature"].removeprefix("sha256=")}  # the new post's alone
        deadline = time.monotonic() + 15
        while {k.key for k in _keys(hooks)} != left:
            assert time.monotonic() < deadline, [k.key for k in _keys(hooks)]
            time.sleep(0.05)


class TestBadInput:
    @pytest.mark.parametrize(
        ("body", "content_type", "named"),
        [
            (b'{"email": ', "application/json", "malformed JSON"),
            (b"[1, 2]", "application/json", "object"),
            (b"email=a%40b.org&subject=x", "application/x-www-form-urlencoded", "message"),
            (b"%zz=&&", "application/x-www-form-urlencoded", "malformed form"),
            (b"no parts here", "multipart/form-data; boundary=xyz", "multipart"),
            (b"email: a@b.org", "text/plain", "unsupported content type"),
        ],
    )
    def test_malformed_bodies_get_422_naming_the_problem(
        self, hooks: Smtp, body: bytes, content_type: str, named: str
    ) -> None:
        response = hooks.http.post(
            FORM, content=body, headers=signed(body, content_type=content_type)
        )
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert named in response.json()["detail"]
        assert _events(hooks) == []

    def test_an_invalid_address_gets_422_naming_the_field(self, hooks: Smtp) -> None:
        body = form_json(email="not an address")
        response = hooks.http.post(FORM, content=body, headers=signed(body))
        assert response.status_code == 422 and response.json()["detail"].startswith("email")

    def test_a_body_over_max_message_bytes_gets_413_before_it_is_read(
        self, start_smtp: StartSmtp
    ) -> None:
        hooks = start_hooks(start_smtp, max_message_bytes=4096)
        body = form_json(message="x" * 5000)
        response = hooks.http.post(FORM, content=body, headers=signed(body))
        assert response.status_code == 413

    def test_a_streamed_body_over_the_limit_gets_413(self, start_smtp: StartSmtp) -> None:
        hooks = start_hooks(start_smtp, max_message_bytes=4096)
        body = form_json(message="x" * 5000)

        def chunks() -> Iterator[bytes]:
            yield body[:2000]
            yield body[2000:]

        response = hooks.http.post(FORM, content=chunks(), headers=signed(body))  # no length
        assert response.status_code == 413
        assert _events(hooks) == []


class TestEncodings:
    def test_a_urlencoded_post_keeps_other_fields_as_metadata(self, hooks: Smtp) -> None:
        body = b"email=dan%40example.org&subject=Hello&message=Caf%C3%A9+closed&page=%2Fcontact"
        headers = signed(body, content_type="application/x-www-form-urlencoded")
        assert hooks.http.post(FORM, content=body, headers=headers).status_code == 202
        hooks.settle()
        [ticket] = hooks.tickets()
        assert ticket.meta == {"page": "/contact"} and ticket.requester.email == "dan@example.org"
        assert hooks.messages(ticket.id)[0].body == "Café closed"

    def test_multipart_file_parts_become_attachments(self, hooks: Smtp) -> None:
        pdf = b"%PDF-1.4\r\n\x00\xff binary\r\n--not-a-boundary\r\n"
        parts = [("email", "erin@example.org"), ("subject", "Invoice"), ("message", "See file")]
        body = b"".join(
            b'--BOUNDARY\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
            % (name.encode(), value.encode())
            for name, value in parts
        ) + (
            b'--BOUNDARY\r\nContent-Disposition: form-data; name="file"; filename="inv.pdf"\r\n'
            b"Content-Type: application/pdf\r\n\r\n" + pdf + b"\r\n--BOUNDARY--\r\n"
        )
        headers = signed(body, content_type="multipart/form-data; boundary=BOUNDARY")
        assert hooks.http.post(FORM, content=body, headers=headers).status_code == 202
        hooks.settle()
        assert len(hooks.tickets()) == 1
        with hooks.context.sessions() as db:
            [attachment] = db.scalars(select(Attachment))
            assert (attachment.filename, attachment.content_type) == ("inv.pdf", "application/pdf")
            assert attachment.content == pdf


class TestAcknowledgment:
    def test_form_posts_get_no_acknowledgment_by_default(self, hooks: Smtp) -> None:
        body = form_json()
        hooks.http.post(FORM, content=body, headers=signed(body))
        hooks.settle()
        [ticket] = hooks.tickets()
        assert [m.direction for m in hooks.messages(ticket.id)] == [Direction.IN]

    def test_with_form_acknowledge_the_answer_does_not_repeat_the_posted_subject(
        self, start_smtp: StartSmtp, sink: object
    ) -> None:
        from tests.relays import Sink

        assert isinstance(sink, Sink)
        hooks = start_hooks(start_smtp, form_acknowledge=True, outbound_smtp_url=sink.url)
        body = form_json(subject="Buy cheap pills at spam.example")
        hooks.http.post(FORM, content=body, headers=signed(body))
        hooks.settle()
        [mail] = sink.wait_for(1)
        assert "spam.example" not in str(mail["Subject"]) and "[#" in str(mail["Subject"])
        assert "spam.example" not in mail.get_content()
        [ticket] = hooks.tickets()
        ack = hooks.messages(ticket.id)[-1]
        assert ack.direction is Direction.OUT and ack.delivery_state is not DeliveryState.FAILED


class TestOpenApi:
    def test_every_answer_of_each_endpoint_is_documented(self, hooks: Smtp) -> None:
        paths = hooks.http.get("/openapi.json").json()["paths"]
        codes = {
            p: set(paths[f"/api/v1/inbound/{p}"]["post"]["responses"])
            for p in ("form", "mailgun", "sendgrid", "postmark")
        }
        assert codes["form"] >= {"202", "401", "409", "413", "422", "503"}
        assert codes["mailgun"] >= {"200", "401", "406", "413", "503"}
        assert codes["postmark"] >= {"200", "401", "403", "413", "503"}
        assert codes["sendgrid"] >= {"200", "401", "413", "503"}
