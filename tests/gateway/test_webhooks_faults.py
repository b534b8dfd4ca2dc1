"""Faults at the webhook edge: a lost database, bodies that fail later, garbage. Never a 500."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from doxa.core.enums import Channel, IntakeStatus, Role
from doxa.core.intake.pipeline import RawEvent
from tests.conftest import MakeUser
from tests.gateway.conftest import Smtp, StartSmtp
from tests.gateway.test_smtp import _database_refusing_connections
from tests.gateway.webhook_support import (
    POSTMARK,
    SENDGRID,
    basic,
    form_json,
    mailgun_signed,
    signed,
    start_hooks,
)

FORM = "/api/v1/inbound/form"


class TestDatabaseOutage:
    def test_an_unreachable_database_gets_503_with_retry_after(self, start_smtp: StartSmtp) -> None:
        down = start_hooks(start_smtp, database_url="postgresql://postgres@127.0.0.1:1/doxa")
        body = form_json()
        response = down.http.post(FORM, content=body, headers=signed(body))
        assert response.status_code == 503 and int(response.headers["retry-after"]) > 0
        assert response.headers["content-type"] == "application/problem+json"
        postmark = down.http.post("/api/v1/inbound/postmark", json={}, headers=basic(*POSTMARK))
        assert postmark.status_code == 503 and "retry-after" in postmark.headers

    def test_posts_refused_while_the_database_is_gone_are_taken_after_and_none_is_lost(
        self, hooks: Smtp
    ) -> None:
        engine = hooks.context.engine
        if engine.dialect.name != "postgresql":
            pytest.skip("needs a database server to take away")
        bodies = [form_json(subject=s) for s in ("before", "during", "after")]
        assert (
            hooks.http.post(FORM, content=bodies[0], headers=signed(bodies[0])).status_code == 202
        )
        with _database_refusing_connections(engine.url):
            refused = hooks.http.post(FORM, content=bodies[1], headers=signed(bodies[1]))
            assert refused.status_code == 503 and "retry-after" in refused.headers
        for body in bodies[1:]:  # the sender retries, with a fresh signature
            assert hooks.http.post(FORM, content=body, headers=signed(body)).status_code == 202
        hooks.settle()
        assert sorted(t.subject for t in hooks.tickets()) == ["after", "before", "during"]


class TestAfterTheRawCommit:
    def test_a_processing_failure_leaves_a_failed_event_that_can_be_reprocessed(
        self, hooks: Smtp, make_user: MakeUser
    ) -> None:
        pipeline = hooks.http.app.state.pipeline  # type: ignore[attr-defined]
        working = pipeline.normalizers[Channel.FORM]

        def broken(event: RawEvent) -> object:
            raise RuntimeError("normalizer bug")

        pipeline.normalizers[Channel.FORM] = broken
        body = form_json()
        try:
            assert hooks.http.post(FORM, content=body, headers=signed(body)).status_code == 202
            [event] = hooks.settle()
        finally:
            pipeline.normalizers[Channel.FORM] = working
        assert event.status is IntakeStatus.FAILED and "normalizer bug" in (event.error or "")
        admin = {"Authorization": f"Bearer {hooks.context.tokens.issue(make_user(Role.ADMIN).id)}"}
        assert (
            hooks.http.post(f"/api/v1/intake/{event.id}/reprocess", headers=admin).status_code
            == 202
        )
        [again] = hooks.settle()
        assert again.status is IntakeStatus.TICKET_CREATED

    def test_raw_mime_that_is_no_email_is_rejected_and_never_retried(self, hooks: Smtp) -> None:
        post = {"OriginalRecipient": "support@example.com", "RawEmail": "\r\n"}
        response = hooks.http.post("/api/v1/inbound/postmark", json=post, headers=basic(*POSTMARK))
        assert response.status_code == 200
        [event] = hooks.settle()
        assert (event.status, event.reason) == (IntakeStatus.REJECTED, "unreadable")


GARBAGE = [
    (b"", None),
    (b"\x00\xff" * 50, "application/octet-stream"),
    (b"--x\r\nContent-Disposition: form-data\r\n\r\nv\r\n--x--", "multipart/form-data; boundary=x"),
    (b"--x\r\n\r\n", "multipart/form-data"),
    (b'{"email": ["a"], "subject": 1, "message": null}', "application/json"),
    (b"a=%ff%fe", "application/x-www-form-urlencoded"),
    (b"[" * 100_000, "application/json"),
]


class TestGarbage:
    @pytest.mark.parametrize(("body", "content_type"), GARBAGE)
    def test_garbage_gets_a_problem_or_is_stored_never_a_500(
        self, hooks: Smtp, body: bytes, content_type: str | None
    ) -> None:
        kind = {"Content-Type": content_type} if content_type else {}
        answers = [
            hooks.http.post(FORM, content=body, headers=signed(body) | kind),
            hooks.http.post(
                "/api/v1/inbound/sendgrid", content=body, headers=basic(*SENDGRID) | kind
            ),
            hooks.http.post(
                "/api/v1/inbound/postmark", content=body, headers=basic(*POSTMARK) | kind
            ),
            hooks.http.post("/api/v1/inbound/mailgun", content=body, headers=kind),
            hooks.http.post(
                "/api/v1/inbound/sendgrid", content=body, headers={"Authorization": "Basic %%%"}
            ),
        ]
        assert all(a.status_code < 500 for a in answers), [a.text for a in answers]
        assert answers[0].status_code == 422 and answers[3].status_code == 401
        assert answers[4].status_code == 401
        for event in hooks.settle():
            assert event.status is IntakeStatus.REJECTED

    def test_mailgun_fields_without_any_message_are_stored_and_rejected(self, hooks: Smtp) -> None:
        fields = mailgun_signed({"recipient": "support@example.com"})
        assert hooks.http.post("/api/v1/inbound/mailgun", data=fields).status_code == 200
        [event] = hooks.settle()
        assert (event.status, event.reason) == (IntakeStatus.REJECTED, "no_message")


class TestSlowClients:
    def test_a_body_trickling_in_does_not_hold_processing_back(self, hooks: Smtp) -> None:
        """Processing gives way to posts being answered; a post still sending its body is not
        one, or a client that never finishes would slow processing for as long as it liked."""
        app: Any = hooks.http.app
        pacer = app.state.webhooks.pacer
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": FORM,
            "raw_path": FORM.encode(),
            "query_string": b"",
            "root_path": "",
            "client": ("127.0.0.1", 1),
            "server": ("testserver", 80),
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"99")],
        }

        async def stall() -> int:
            finished = asyncio.Event()
            sent = [{"type": "http.request", "body": b'{"email": "a@', "more_body": True}]

            async def receive() -> dict[str, Any]:
                if sent:
                    return sent.pop()
                await finished.wait()
                return {"type": "http.disconnect"}

            async def send(_message: dict[str, Any]) -> None:
                return None

            request = asyncio.create_task(app(scope, receive, send))
            await asyncio.sleep(0.3)
            counted: int = pacer.in_flight
            finished.set()
            await asyncio.gather(request, return_exceptions=True)
            return counted

        assert asyncio.run(stall()) == 0
