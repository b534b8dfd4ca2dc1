from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from doxa.core.context import Context
from doxa.core.db import transaction, utcnow
from doxa.core.enums import Role
from doxa.core.models import User
from doxa.main import create_app
from tests.conftest import PASSWORD, AsUser, MailClient, MakeTicket, MakeUser, make_settings


def _app_with_admin(clean: Context, password: str) -> TestClient:
    settings = make_settings(
        clean.settings.database_url,
        doxa_admin_email="Boss@Example.com",
        doxa_admin_password=password,
    )
    return TestClient(create_app(settings, context=clean), raise_server_exceptions=False)


class TestFirstAdmin:
    def test_is_created_at_start_and_can_log_in(self, clean: Context) -> None:
        with _app_with_admin(clean, "first password") as http:
            login = {"username": "boss@example.com", "password": "first password"}
            assert http.post("/api/v1/auth/login", data=login).status_code == 200

    def test_is_not_reset_by_a_later_start(self, clean: Context) -> None:
        with _app_with_admin(clean, "first password"):
            pass
        with _app_with_admin(clean, "other password") as http:
            login = {"username": "boss@example.com", "password": "other password"}
            assert http.post("/api/v1/auth/login", data=login).status_code == 401


class TestFirstAdminNeverPromotesATakenAddress:
    def test_an_account_someone_signed_up_and_uses_stays_a_client(
        self, clean: Context, make_user: MakeUser, caplog: pytest.LogCaptureFixture
    ) -> None:
        squatter = make_user(email="boss@example.com")  # signed up before the operator chose it
        with TestClient(create_app(clean.settings, context=clean)) as http:
            login = {"username": squatter.email, "password": PASSWORD}
            token = http.post("/api/v1/auth/login", data=login).json()["access_token"]
        with caplog.at_level(logging.WARNING), _app_with_admin(clean, "first password") as http:
            bearer = {"Authorization": f"Bearer {token}"}
            assert http.get("/api/v1/users/me", headers=bearer).json()["role"] == "CLIENT"
            assert http.get("/api/v1/intake", headers=bearer).status_code == 403
            login = {"username": "boss@example.com", "password": "first password"}
            assert http.post("/api/v1/auth/login", data=login).status_code == 401
        with clean.sessions() as db:
            assert db.scalars(select(User).where(User.role == Role.ADMIN)).all() == []
        taken = [r for r in caplog.records if "DOXA_ADMIN_EMAIL" in r.getMessage()]
        assert len(taken) == 1 and "no admin created" in taken[0].getMessage()

    def test_a_passwordless_account_that_was_issued_a_token_is_taken(
        self, clean: Context, make_user: MakeUser
    ) -> None:
        user = make_user(email="boss@example.com", password=None)
        with transaction(clean.sessions) as db:
            db.get_one(User, user.id).token_issued_at = utcnow()
        with _app_with_admin(clean, "first password"), clean.sessions() as db:
            assert db.get_one(User, user.id).role is Role.CLIENT

    def test_an_account_known_only_from_inbound_mail_becomes_the_admin(
        self, clean: Context, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        inbound = make_user(email="boss@example.com", password=None)
        make_ticket(inbound)
        with _app_with_admin(clean, "first password") as http:
            login = {"username": "boss@example.com", "password": "first password"}
            token = http.post("/api/v1/auth/login", data=login).json()["access_token"]
            me = http.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json()["id"] == inbound.id and me.json()["role"] == "ADMIN"


class TestAdministration:
    def test_admin_lists_and_creates_users_of_any_role(
        self, as_user: AsUser, make_user: MakeUser
    ) -> None:
        admin = as_user(make_user(Role.ADMIN))
        body = {"email": "new@example.com", "password": "long enough", "role": "AGENT"}
        created = admin.post("/api/v1/users", json=body)
        assert created.status_code == 201 and created.json()["role"] == "AGENT"
        emails = [u["email"] for u in admin.get("/api/v1/users").json()["items"]]
        assert "new@example.com" in emails

    def test_duplicate_email_gets_409(self, as_user: AsUser, make_user: MakeUser) -> None:
        admin, existing = as_user(make_user(Role.ADMIN)), make_user()
        body = {"email": existing.email, "password": "long enough", "role": "CLIENT"}
        assert admin.post("/api/v1/users", json=body).status_code == 409

    def test_the_last_active_admin_cannot_demote_or_deactivate_themselves(
        self, as_user: AsUser, make_user: MakeUser
    ) -> None:
        me = make_user(Role.ADMIN)
        admin = as_user(me)
        assert admin.patch(f"/api/v1/users/{me.id}", json={"role": "AGENT"}).status_code == 409
        assert admin.patch(f"/api/v1/users/{me.id}", json={"is_active": False}).status_code == 409

    def test_unknown_user_gets_404(self, as_user: AsUser, make_user: MakeUser) -> None:
        response = as_user(make_user(Role.ADMIN)).patch(
            "/api/v1/users/999999", json={"full_name": "x"}
        )
        assert response.status_code == 404


class TestStaffOnSpecialUseDomains:
    """A closed network's staff live at localhost, .local or .test (support@localhost is the
    default support address): an admin may create them; self sign-up stays strict."""

    @pytest.mark.parametrize("email", ["support@localhost", "agent@staff.test", "it@desk.local"])
    def test_an_admin_creates_one_who_can_log_in(
        self, client: TestClient, as_user: AsUser, make_user: MakeUser, email: str
    ) -> None:
        body = {"email": email, "password": "long enough", "role": "AGENT"}
        created = as_user(make_user(Role.ADMIN)).post("/api/v1/users", json=body)
        assert created.status_code == 201 and created.json()["email"] == email
        login = {"username": email, "password": "long enough"}
        assert client.post("/api/v1/auth/login", data=login).status_code == 200

    def test_doxa_admin_email_at_localhost_is_the_first_admin(self, clean: Context) -> None:
        settings = make_settings(
            clean.settings.database_url,
            doxa_admin_email="admin@localhost",
            doxa_admin_password="first password",
        )
        with TestClient(create_app(settings, context=clean)) as http:
            login = {"username": "admin@localhost", "password": "first password"}
            assert http.post("/api/v1/auth/login", data=login).status_code == 200

    def test_such_staff_may_ask_for_a_reset_but_nobody_signs_up_there(
        self, mail_client: MailClient, make_user: MakeUser
    ) -> None:
        http, staff = mail_client(), make_user(Role.AGENT, email="agent@staff.test")
        reset = http.post("/api/v1/auth/password-reset", json={"email": staff.email})
        assert reset.status_code == 202
        signup = http.post("/api/v1/auth/register", json={"email": "someone@staff.test"})
        assert signup.status_code == 422

    @pytest.mark.parametrize("email", ["x@nowhere.invalid", "x@@localhost", "x@.test"])
    def test_other_reserved_names_and_malformed_addresses_stay_refused(
        self, as_user: AsUser, make_user: MakeUser, email: str
    ) -> None:
        body = {"email": email, "password": "long enough", "role": "AGENT"}
        assert as_user(make_user(Role.ADMIN)).post("/api/v1/users", json=body).status_code == 422


class TestNames:
    def test_line_break_in_a_full_name_gets_422(self, as_user: AsUser, make_user: MakeUser) -> None:
        me = make_user(Role.ADMIN)
        response = as_user(me).patch(
            f"/api/v1/users/{me.id}", json={"full_name": "Eve\u2028Bcc: x@evil.test"}
        )
        assert response.status_code == 422
