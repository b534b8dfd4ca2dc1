"""The one outbox, end to end: a real app, a real relay that refuses or hangs, both databases."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from doxa.core.context import Context
from doxa.core.db import transaction, utcnow
from doxa.core.enums import DeliveryState, Role
from doxa.core.models import AccountMail, OutboxItem
from doxa.core.outbox.kinds import build_outbox
from doxa.core.outbox.models import OutboxKind
from doxa.core.users.mail import queue_mail
from doxa.main import create_app
from doxa.runtime.outbox import OutboxRunner
from tests.conftest import MakeTicket, MakeUser, make_settings
from tests.relays import HangingRelay, RefusingRelay, Sink

DEAD_MAILS = 10_000


def _app(context: Context, relay: Sink) -> TestClient:
    """The app sending through `relay`, on the test's database; enter it to start the outbox."""
    settings = make_settings(
        context.settings.database_url,
        outbound_smtp_url=relay.url,
        jwt_secret=context.settings.secret,
    )
    app = create_app(settings, context=replace(context, settings=settings))
    return TestClient(app, raise_server_exceptions=False)


def _bearer(context: Context, user_id: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {context.tokens.issue(user_id)}"}


def _wait(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.02)


@pytest.fixture
def refusing() -> Iterator[RefusingRelay]:
    relay = RefusingRelay("refused@example.org")
    relay.controller.start()
    yield relay
    relay.controller.stop()


class TestPermanentFailure:
    def test_an_account_mail_refused_at_data_fails_and_the_next_one_goes(
        self, clean: Context, refusing: RefusingRelay, caplog: pytest.LogCaptureFixture
    ) -> None:
        with _app(clean, refusing) as http, caplog.at_level(logging.WARNING):
            for email in ("refused@example.org", "ann@example.org"):
                answer = http.post("/api/v1/auth/register", json={"email": email})
                assert answer.status_code == 202
            [mail] = refusing.wait_for(1)
            assert mail["To"] == "ann@example.org"

            def settled() -> list[AccountMail]:
                with clean.sessions() as db:
                    return list(db.scalars(sa.select(AccountMail).order_by(AccountMail.id)))

            _wait(lambda: [m.delivery_state for m in settled()] == ["failed", "sent"])
        refused = settled()[0]
        assert (refused.delivery_error or "").startswith("554 5.7.1")
        assert "token=(sent)" in refused.body  # no usable link stays in the database
        [line] = [r.getMessage() for r in caplog.records if "outbox item" in r.getMessage()]
        assert "account_mail" in line and "example.org" in line and "554 5.7.1" in line

    def test_a_ticket_reply_refused_at_data_fails_the_next_goes_and_staff_see_why(
        self,
        clean: Context,
        refusing: RefusingRelay,
        make_user: MakeUser,
        make_ticket: MakeTicket,
    ) -> None:
        client = make_user(email="refused@example.org")
        tickets = [make_ticket(client), make_ticket(make_user(email="bob@example.org"))]
        agent = _bearer(clean, make_user(Role.AGENT).id)
        with _app(clean, refusing) as http:
            for ticket in tickets:
                path = f"/api/v1/tickets/{ticket.id}/messages"
                assert http.post(path, json={"body": "Reply"}, headers=agent).status_code == 201
            [mail] = refusing.wait_for(1)
            assert mail["To"] == "bob@example.org"
            path = f"/api/v1/tickets/{tickets[0].id}/messages"

            def reply(headers: dict[str, str]) -> dict[str, object]:
                items = http.get(path, headers=headers).json()["items"]
                return dict(items[-1])

            _wait(lambda: reply(agent)["delivery_state"] == "failed")
            assert str(reply(agent)["delivery_error"]).startswith("554 5.7.1")
            seen_by_client = reply(_bearer(clean, client.id))
            assert seen_by_client["delivery_state"] == "failed"
            assert seen_by_client["delivery_error"] is None  # the relay's words are for staff


class TestResend:
    def test_a_failed_reply_goes_again_through_the_api_once_the_relay_takes_it(
        self,
        clean: Context,
        refusing: RefusingRelay,
        make_user: MakeUser,
        make_ticket: MakeTicket,
    ) -> None:
        ticket = make_ticket(make_user(email="refused@example.org"))
        agent = _bearer(clean, make_user(Role.AGENT).id)
        path = f"/api/v1/tickets/{ticket.id}/messages"
        with _app(clean, refusing) as http:
            reply = http.post(path, json={"body": "Try this"}, headers=agent).json()

            def state() -> str:
                return str(http.get(path, headers=agent).json()["items"][-1]["delivery_state"])

            _wait(lambda: state() == "failed")
            refusing.refused.clear()  # the operator has mended the relay
            resent = http.post(f"{path}/{reply['id']}/resend", headers=agent)
            assert resent.status_code == 200 and resent.json()["delivery_state"] == "queued"
            [mail] = refusing.wait_for(1)
            assert mail.get_content().strip() == "Try this"
            _wait(lambda: state() == "sent")


@pytest.mark.timing
class TestFairness:
    def test_a_reset_goes_within_2_s_while_10000_mails_wait_for_a_dead_domain(
        self, clean: Context, make_user: MakeUser
    ) -> None:
        user = make_user(email="ann@example.org")
        now = utcnow()
        with transaction(clean.sessions) as db:
            rows = [
                {"recipient": f"user{i}@dead.example", "subject": "s", "body": "b"}
                for i in range(DEAD_MAILS)
            ]
            for row in rows:
                row["delivery_state"] = DeliveryState.QUEUED
            ids = db.scalars(sa.insert(AccountMail).returning(AccountMail.id), rows).all()
            items = [
                {
                    "kind": OutboxKind.ACCOUNT_MAIL,
                    "ref_id": ref_id,
                    "destination": "dead.example",
                    "state": DeliveryState.QUEUED,
                    "next_attempt_at": now,
                    "give_up_at": now + timedelta(days=1),
                }
                for ref_id in ids
            ]
            db.execute(sa.insert(OutboxItem), items)
        relay = HangingRelay("dead.example")
        relay.controller.start()
        try:
            with _app(clean, relay) as http:
                try:
                    _wait(lambda: relay.hanging == 2)  # the dead domain has its senders
                    started = time.monotonic()
                    answer = http.post("/api/v1/auth/password-reset", json={"email": user.email})
                    assert answer.status_code == 202
                    [mail] = relay.wait_for(1, timeout=2.0)
                    elapsed = time.monotonic() - started
                finally:
                    relay.release()  # the hung sessions end before the app stops
        finally:
            relay.controller.stop()
        print(f"reset mail at the relay {elapsed:.3f} s after the request")
        assert mail["To"] == user.email and elapsed < 2.0
        assert relay.most_hanging == 2  # at most a few sends at a time to one destination


@pytest.mark.timing
class TestNoLockAcrossTheSend:
    def test_a_hung_send_holds_no_row_lock_and_no_transaction(self, clean: Context) -> None:
        with transaction(clean.sessions) as db:
            queue_mail(db, recipient="ann@dead.example", subject="s", body="token=abc")
        relay = HangingRelay("dead.example")
        relay.controller.start()
        try:
            with _app(clean, relay):
                try:
                    _wait(lambda: relay.hanging == 1)
                    started = time.monotonic()
                    with transaction(clean.sessions) as db:  # NOWAIT: a held lock would raise
                        db.scalars(sa.select(OutboxItem).with_for_update(nowait=True)).all()
                        db.scalars(sa.select(AccountMail).with_for_update(nowait=True)).all()
                        db.execute(sa.update(AccountMail).values(subject="s"))  # SQLite's writer
                    assert time.monotonic() - started < 1.0
                finally:
                    relay.release()
        finally:
            relay.controller.stop()


class TestRetryTimer:
    def test_account_mail_due_again_goes_on_the_timer_without_a_kick(
        self, clean: Context, sink: Sink
    ) -> None:
        settings = make_settings(clean.settings.database_url, outbound_smtp_url=sink.url)
        with transaction(clean.sessions) as db:
            mail = queue_mail(db, recipient="ann@example.org", subject="s", body="token=abc")
            item = db.scalars(sa.select(OutboxItem)).one()
            item.attempts, item.last_error = 1, "ConnectionRefusedError: relay down"
            item.next_attempt_at = utcnow() + timedelta(seconds=0.5)
        runner = OutboxRunner(build_outbox(settings, clean.sessions), every=0.1)

        async def run() -> None:
            await runner.start()
            try:
                await asyncio.to_thread(sink.wait_for, 1, 5.0)
            finally:
                await runner.stop()

        asyncio.run(asyncio.wait_for(run(), 5))
        with clean.sessions() as db:
            assert db.get_one(AccountMail, mail.id).delivery_state == "sent"
