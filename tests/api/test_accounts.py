"""Accounts are proven by mail: sign-up, verification, password reset and change, from outside."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from doxa.core.context import Context
from doxa.core.db import transaction, utcnow
from doxa.core.enums import Channel, DeliveryState, Role
from doxa.core.intake.pipeline import Submission, message_id_of
from doxa.core.intake.processing import process_event
from doxa.core.models import AccountMail, AccountToken, IntakeEvent, OutboxItem, User
from doxa.gateway.pipeline import build_pipeline
from doxa.main import create_app
from tests.conftest import PASSWORD, MailClient, MakeUser, mailed_token, make_settings
from tests.relays import Sink

NEW = "a fresh long secret"


def _login(http: TestClient, email: str, password: str) -> int:
    form = {"username": email, "password": password}
    return http.post("/api/v1/auth/login", data=form).status_code


def _token(http: TestClient, email: str, password: str) -> str:
    form = {"username": email, "password": password}
    response = http.post("/api/v1/auth/login", data=form)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _mail_in(context: Context, sender: str, subject: str) -> int:
    """Deliver one email through the intake pipeline, as SMTP would; the new ticket's id."""
    raw = (
        f"From: Customer <{sender}>\r\nTo: support@example.com\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@example.org>\r\n\r\nPlease help.\r\n"
    ).encode()
    pipeline = build_pipeline(context.settings)
    item = Submission(Channel.EMAIL, raw, ["support@example.com"], None, message_id_of(raw))
    with transaction(context.sessions) as db:
        event_id = pipeline.accept(db, item).id
    process_event(context.sessions, pipeline, event_id)
    with context.sessions() as db:
        ticket_id = db.get_one(IntakeEvent, event_id).ticket_id
    assert ticket_id is not None
    return ticket_id


def _age_links(context: Context, email: str, age: timedelta) -> None:
    """Move the address's links back in time, as if they had been mailed `age` ago."""
    with transaction(context.sessions) as db:
        for link in db.scalars(sa.select(AccountToken).where(AccountToken.email == email)):
            link.created_at -= age
            link.expires_at -= age


def _mails_once(context: Context, ready: Callable[[list[AccountMail]], bool]) -> list[AccountMail]:
    """The account mail, once the mailer's thread has made it `ready` (5 s at most)."""
    deadline = time.monotonic() + 5
    while True:
        with context.sessions() as db:
            mails = list(db.scalars(sa.select(AccountMail).order_by(AccountMail.id)))
        if (mails and ready(mails)) or time.monotonic() > deadline:
            return mails
        time.sleep(0.02)


def _users(context: Context, email: str) -> list[User]:
    with context.sessions() as db:
        return list(db.scalars(sa.select(User).where(User.email == email)))


class TestSignUp:
    def test_without_a_relay_self_sign_up_answers_503_saying_so(self, client: TestClient) -> None:
        response = client.post("/api/v1/auth/register", json={"email": "a@example.com"})
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert "OUTBOUND_SMTP_URL" in response.json()["detail"]

    def test_answer_is_the_same_for_new_inbound_only_and_existing_addresses(
        self, mail_client: MailClient, make_user: MakeUser, clean: Context
    ) -> None:
        http = mail_client()
        known, inbound = make_user().email, make_user(password=None).email
        answers = [
            http.post("/api/v1/auth/register", json={"email": email})
            for email in ("nobody@example.com", known, inbound)
        ]
        assert {a.status_code for a in answers} == {202}
        assert len({a.text for a in answers}) == 1
        # Similar timing: each address costs the same work, one link and one mail.
        with clean.sessions() as db:
            mails = db.scalars(sa.select(AccountMail.recipient)).all()
            links = db.scalars(sa.select(AccountToken.email)).all()
        assert sorted(mails) == sorted(links) == sorted(["nobody@example.com", known, inbound])

    def test_a_password_in_the_sign_up_body_is_refused(self, mail_client: MailClient) -> None:
        body = {"email": "a@example.com", "password": "attacker chosen pw"}
        assert mail_client().post("/api/v1/auth/register", json=body).status_code == 422

    def test_attacker_registering_a_customers_address_never_gets_in_and_the_owner_does(
        self, mail_client: MailClient, clean: Context
    ) -> None:
        ticket_id = _mail_in(clean, "customer@example.org", "My invoice")  # the only trace
        attacker = mail_client("203.0.113.66")
        signed = attacker.post("/api/v1/auth/register", json={"email": "customer@example.org"})
        assert signed.status_code == 202 and "access_token" not in signed.text
        for guess in ("", PASSWORD, NEW, "attacker chosen pw"):
            assert _login(attacker, "customer@example.org", guess) in (401, 422)
        [account] = _users(clean, "customer@example.org")
        assert account.password_hash is None  # nothing changed before the link came back

        owner = mail_client("198.51.100.20")
        token = mailed_token(clean, "customer@example.org")  # only the mailbox owner reads it
        verified = owner.post("/api/v1/auth/verify", json={"token": token, "password": NEW})
        assert verified.status_code == 200 and verified.json()["id"] == account.id
        bearer = _bearer(_token(owner, "customer@example.org", NEW))
        tickets = owner.get("/api/v1/tickets", headers=bearer)
        assert [t["id"] for t in tickets.json()["items"]] == [ticket_id]

    def test_new_address_has_no_account_until_the_link_comes_back(
        self, mail_client: MailClient, clean: Context
    ) -> None:
        http = mail_client()
        body = {"email": "New@Example.com", "full_name": "New Person"}
        assert http.post("/api/v1/auth/register", json=body).status_code == 202
        assert _users(clean, "new@example.com") == []
        token = mailed_token(clean, "new@example.com")
        created = http.post("/api/v1/auth/verify", json={"token": token, "password": NEW}).json()
        assert created["role"] == "CLIENT" and created["full_name"] == "New Person"
        assert _login(http, "new@example.com", NEW) == 200

    def test_link_points_at_the_public_base_url(
        self, mail_client: MailClient, clean: Context
    ) -> None:
        mail_client().post("/api/v1/auth/register", json={"email": "x@example.com"})
        with clean.sessions() as db:
            mail = db.scalars(sa.select(AccountMail)).one()
        assert "https://help.example.com/account/verify?token=" in mail.body
        assert mail.delivery_state == "queued"  # the test relay refuses: kept for a retry

    def test_tokens_are_stored_hashed(self, mail_client: MailClient, clean: Context) -> None:
        mail_client().post("/api/v1/auth/register", json={"email": "x@example.com"})
        token = mailed_token(clean, "x@example.com")
        with clean.sessions() as db:
            stored = db.scalars(sa.select(AccountToken)).one()
        assert token not in stored.token_hash and len(stored.token_hash) == 64

    def test_replayed_verification_token_is_refused(
        self, mail_client: MailClient, clean: Context
    ) -> None:
        http = mail_client()
        http.post("/api/v1/auth/register", json={"email": "x@example.com"})
        body = {"token": mailed_token(clean, "x@example.com"), "password": NEW}
        assert http.post("/api/v1/auth/verify", json=body).status_code == 200
        replay = http.post("/api/v1/auth/verify", json={**body, "password": "another long pw"})
        assert replay.status_code == 422
        assert replay.headers["content-type"] == "application/problem+json"
        assert _login(http, "x@example.com", "another long pw") == 401

    def test_expired_verification_token_is_refused(
        self, mail_client: MailClient, clean: Context
    ) -> None:
        http = mail_client()
        http.post("/api/v1/auth/register", json={"email": "x@example.com"})
        token = mailed_token(clean, "x@example.com")
        with transaction(clean.sessions) as db:
            db.execute(sa.update(AccountToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        answer = http.post("/api/v1/auth/verify", json={"token": token, "password": NEW})
        assert answer.status_code == 422
        assert _users(clean, "x@example.com") == []

    def test_a_second_request_within_15_minutes_gets_429_and_the_first_link_stays_valid(
        self, mail_client: MailClient, clean: Context
    ) -> None:
        mail_client().post("/api/v1/auth/register", json={"email": "x@example.com"})
        first = mailed_token(clean, "x@example.com")
        again = mail_client("203.0.113.66").post(
            "/api/v1/auth/register", json={"email": "x@example.com"}
        )
        assert again.status_code == 429 and 0 < int(again.headers["retry-after"]) <= 15 * 60
        assert mailed_token(clean, "x@example.com") == first
        verified = mail_client().post("/api/v1/auth/verify", json={"token": first, "password": NEW})
        assert verified.status_code == 200

    def test_an_address_with_a_password_gets_a_reset_link_and_keeps_its_password(
        self, mail_client: MailClient, make_user: MakeUser, clean: Context
    ) -> None:
        user = make_user()
        http = mail_client()
        assert http.post("/api/v1/auth/register", json={"email": user.email}).status_code == 202
        token = mailed_token(clean, user.email)
        assert _login(http, user.email, PASSWORD) == 200
        as_verify = http.post("/api/v1/auth/verify", json={"token": token, "password": NEW})
        assert as_verify.status_code == 422  # a reset token is not a sign-up token
        body = {"token": token, "password": NEW}
        assert http.post("/api/v1/auth/password-reset/confirm", json=body).status_code == 200

    def test_short_and_common_passwords_are_refused(
        self, mail_client: MailClient, clean: Context
    ) -> None:
        http = mail_client()
        http.post("/api/v1/auth/register", json={"email": "x@example.com"})
        token = mailed_token(clean, "x@example.com")
        for weak in ("short pw", "password123", "qwertyuiop"):
            answer = http.post("/api/v1/auth/verify", json={"token": token, "password": weak})
            assert answer.status_code == 422, weak
        ok = http.post("/api/v1/auth/verify", json={"token": token, "password": NEW})
        assert ok.status_code == 200  # a refused password leaves the token usable

    def test_deactivated_account_is_not_revived_by_a_sign_up(
        self, mail_client: MailClient, make_user: MakeUser, clean: Context
    ) -> None:
        user = make_user(password=None, active=False)
        assert (
            mail_client().post("/api/v1/auth/register", json={"email": user.email}).status_code
            == 202
        )
        with clean.sessions() as db:
            states = db.scalars(sa.select(AccountMail.delivery_state)).all()
        assert states == [DeliveryState.NOT_SENT]  # the same work as a real mail, never sent


class TestPasswordReset:
    def test_answers_202_alike_for_known_and_unknown_addresses(
        self, mail_client: MailClient, make_user: MakeUser
    ) -> None:
        http = mail_client()
        answers = [
            http.post("/api/v1/auth/password-reset", json={"email": email})
            for email in (make_user().email, "nobody@example.com")
        ]
        assert [a.status_code for a in answers] == [202, 202]
        assert answers[0].text == answers[1].text

    def test_reset_ends_every_earlier_token(
        self, mail_client: MailClient, make_user: MakeUser, clean: Context
    ) -> None:
        user = make_user(Role.AGENT)
        thief = mail_client("203.0.113.66")
        stolen = _token(thief, user.email, PASSWORD)
        owner = mail_client()
        owner.post("/api/v1/auth/password-reset", json={"email": user.email})
        body = {"token": mailed_token(clean, user.email), "password": NEW}
        assert owner.post("/api/v1/auth/password-reset/confirm", json=body).status_code == 200
        assert thief.get("/api/v1/users/me", headers=_bearer(stolen)).status_code == 401
        assert _login(owner, user.email, PASSWORD) == 401
        assert _login(owner, user.email, NEW) == 200

    def test_reset_token_is_single_use(
        self, mail_client: MailClient, make_user: MakeUser, clean: Context
    ) -> None:
        user, http = make_user(), mail_client()
        http.post("/api/v1/auth/password-reset", json={"email": user.email})
        body = {"token": mailed_token(clean, user.email), "password": NEW}
        assert http.post("/api/v1/auth/password-reset/confirm", json=body).status_code == 200
        again = {**body, "password": "attacker second pw"}
        assert http.post("/api/v1/auth/password-reset/confirm", json=again).status_code == 422

    def test_someone_elses_later_request_never_voids_a_valid_link(
        self, mail_client: MailClient, make_user: MakeUser, clean: Context
    ) -> None:
        user = make_user()
        mail_client().post("/api/v1/auth/password-reset", json={"email": user.email})
        first = mailed_token(clean, user.email)
        _age_links(clean, user.email, timedelta(minutes=16))  # past the one-per-15-min limit
        other = mail_client("203.0.113.66")
        assert (
            other.post("/api/v1/auth/password-reset", json={"email": user.email}).status_code == 202
        )
        assert mailed_token(clean, user.email) != first
        body = {"token": first, "password": NEW}
        assert (
            mail_client().post("/api/v1/auth/password-reset/confirm", json=body).status_code == 200
        )

    def test_without_a_relay_reset_answers_503(self, client: TestClient) -> None:
        answer = client.post("/api/v1/auth/password-reset", json={"email": "a@example.com"})
        assert answer.status_code == 503


class TestPasswordChange:
    def test_change_ends_earlier_tokens_and_returns_a_working_one(
        self, mail_client: MailClient, make_user: MakeUser
    ) -> None:
        user, http = make_user(), mail_client()
        old = _token(http, user.email, PASSWORD)
        body = {"current_password": PASSWORD, "new_password": NEW}
        changed = http.post("/api/v1/users/me/password", json=body, headers=_bearer(old))
        assert changed.status_code == 200
        assert http.get("/api/v1/users/me", headers=_bearer(old)).status_code == 401
        fresh = changed.json()["access_token"]
        assert http.get("/api/v1/users/me", headers=_bearer(fresh)).status_code == 200
        assert _login(http, user.email, NEW) == 200

    def test_wrong_current_password_gets_403_and_changes_nothing(
        self, mail_client: MailClient, make_user: MakeUser
    ) -> None:
        user, http = make_user(), mail_client()
        token = _token(http, user.email, PASSWORD)
        body = {"current_password": "not my password", "new_password": NEW}
        answer = http.post("/api/v1/users/me/password", json=body, headers=_bearer(token))
        assert answer.status_code == 403
        assert http.get("/api/v1/users/me", headers=_bearer(token)).status_code == 200

    def test_common_new_password_gets_422(
        self, mail_client: MailClient, make_user: MakeUser
    ) -> None:
        user, http = make_user(), mail_client()
        token = _token(http, user.email, PASSWORD)
        body = {"current_password": PASSWORD, "new_password": "1234567890"}
        answer = http.post("/api/v1/users/me/password", json=body, headers=_bearer(token))
        assert answer.status_code == 422


def _app_with(context: Context, relay_url: str) -> TestClient:
    """The app sending through `relay_url`; enter it to start its outbox runner."""
    settings = make_settings(context.settings.database_url, outbound_smtp_url=relay_url)
    return TestClient(create_app(settings, context=context), raise_server_exceptions=False)


@pytest.fixture
def relay() -> Iterator[Sink]:
    sink = Sink()
    sink.controller.start()
    yield sink
    sink.controller.stop()


class TestAccountMail:
    def test_link_reaches_a_real_relay_and_is_blanked_from_the_stored_mail(
        self, clean: Context, relay: Sink
    ) -> None:
        with _app_with(clean, relay.url) as http:
            answer = http.post("/api/v1/auth/register", json={"email": "x@example.com"})
            assert answer.status_code == 202
            [mail] = relay.wait_for(1)
            assert mail["To"] == "x@example.com" and mail["Auto-Submitted"] == "auto-generated"
            found = re.search(r"/account/verify\?token=([A-Za-z0-9_-]+)", mail.get_content())
            assert found is not None
            [stored] = _mails_once(clean, lambda mails: mails[0].delivery_state == "sent")
            assert found.group(1) not in stored.body
            body = {"token": found.group(1), "password": NEW}
            assert http.post("/api/v1/auth/verify", json=body).status_code == 200

    def test_relay_down_keeps_mail_queued_with_its_error_for_a_later_try(
        self, mail_client: MailClient, clean: Context
    ) -> None:
        with mail_client() as http:  # the relay at port 1 refuses every connection
            for i in range(3):
                http.post("/api/v1/auth/register", json={"email": f"x{i}@example.com"})
            # Sent on the outbox's threads: the answers do not wait for the relay.
            mails = _mails_once(clean, lambda mails: all(m.delivery_error for m in mails))
        assert [m.delivery_state for m in mails] == ["queued"] * 3
        assert all("ConnectionRefusedError" in (m.delivery_error or "") for m in mails)
        with clean.sessions() as db:
            retries = db.scalars(sa.select(OutboxItem.next_attempt_at)).all()
        assert len(retries) == 3 and all(at > utcnow() for at in retries)  # the retry timer's

    def test_a_unicode_domain_is_mailed_in_punycode_as_ticket_mail_is(
        self, clean: Context, relay: Sink
    ) -> None:
        with _app_with(clean, relay.url) as http:
            answer = http.post("/api/v1/auth/register", json={"email": "ann@xn--exmple-cua.com"})
            assert answer.status_code == 202
            [mail] = relay.wait_for(1)
        assert mail["To"] == "ann@xn--exmple-cua.com"

    def test_a_mailbox_the_relay_cannot_take_fails_and_holds_up_no_later_mail(
        self, clean: Context
    ) -> None:
        relay = Sink(smtputf8=False)  # a non-ASCII mailbox can never go through it
        relay.controller.start()
        try:
            with _app_with(clean, relay.url) as http:
                for email in ("jörg@example.com", "ann@example.com"):
                    answer = http.post("/api/v1/auth/register", json={"email": email})
                    assert answer.status_code == 202
                [mail] = relay.wait_for(1)
                assert mail["To"] == "ann@example.com"
                # Both sent side by side: each outcome is recorded when its own send ends.
                [failed, _] = _mails_once(
                    clean, lambda mails: all(m.delivery_state != "queued" for m in mails)
                )
            assert failed.delivery_state == "failed" and failed.delivery_error
        finally:
            relay.controller.stop()
