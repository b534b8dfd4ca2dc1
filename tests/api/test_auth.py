from __future__ import annotations

import base64
import json
from datetime import timedelta

from fastapi.testclient import TestClient

from doxa.core.auth import Tokens
from doxa.core.context import Context
from doxa.core.enums import Role
from tests.conftest import PASSWORD, AsUser, MakeUser


def _login(client: TestClient, email: str, password: str = PASSWORD) -> dict[str, object]:
    response = client.post("/api/v1/auth/login", data={"username": email, "password": password})
    return {"status": response.status_code, **response.json()}


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


class TestLogin:
    def test_right_password_gives_a_bearer_token_that_works(
        self, client: TestClient, make_user: MakeUser
    ) -> None:
        user = make_user(Role.AGENT)
        token = _login(client, user.email.upper())
        assert token["status"] == 200 and token["token_type"] == "bearer"
        assert token["expires_in"] == 3600
        me = client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {token['access_token']}"}
        )
        assert me.json()["email"] == user.email

    def test_wrong_password_gets_401_problem(self, client: TestClient, make_user: MakeUser) -> None:
        response = client.post(
            "/api/v1/auth/login", data={"username": make_user().email, "password": "nope-nope"}
        )
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"

    def test_user_known_only_from_email_cannot_log_in(
        self, client: TestClient, make_user: MakeUser
    ) -> None:
        user = make_user(password=None)
        assert _login(client, user.email, "")["status"] in (401, 422)

    def test_deactivated_user_cannot_log_in(self, client: TestClient, make_user: MakeUser) -> None:
        assert _login(client, make_user(active=False).email)["status"] == 401


class TestTokens:
    def test_missing_token_gets_401_with_bearer_challenge(self, client: TestClient) -> None:
        response = client.get("/api/v1/users/me")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"

    def test_expired_token_gets_401(
        self, client: TestClient, context: Context, make_user: MakeUser
    ) -> None:
        token = Tokens(context.settings.secret, timedelta(minutes=-1)).issue(make_user().id)
        assert (
            client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}).status_code
            == 401
        )

    def test_token_signed_with_another_key_gets_401(
        self, client: TestClient, make_user: MakeUser
    ) -> None:
        token = Tokens("another-secret-" * 4, timedelta(minutes=5)).issue(make_user().id)
        assert (
            client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}).status_code
            == 401
        )

    def test_alg_none_token_gets_401(
        self, client: TestClient, context: Context, make_user: MakeUser
    ) -> None:
        good = context.tokens.issue(make_user(Role.ADMIN).id)
        forged = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{good.split('.')[1]}."
        assert (
            client.get(
                "/api/v1/users/me", headers={"Authorization": f"Bearer {forged}"}
            ).status_code
            == 401
        )

    def test_garbage_token_gets_401(self, client: TestClient) -> None:
        response = client.get("/api/v1/users/me", headers={"Authorization": "Bearer a.b.c"})
        assert response.status_code == 401

    def test_deactivation_stops_existing_tokens_at_once(
        self, as_user: AsUser, make_user: MakeUser
    ) -> None:
        admin, agent = make_user(Role.ADMIN), make_user(Role.AGENT)
        agent_client = as_user(agent)
        assert agent_client.get("/api/v1/users/me").status_code == 200
        as_user(admin).patch(f"/api/v1/users/{agent.id}", json={"is_active": False})
        assert agent_client.get("/api/v1/users/me").status_code == 401

    def test_role_change_applies_to_existing_tokens(
        self, as_user: AsUser, make_user: MakeUser
    ) -> None:
        admin, agent = make_user(Role.ADMIN), make_user(Role.AGENT)
        agent_client = as_user(agent)
        as_user(admin).patch(f"/api/v1/users/{agent.id}", json={"role": "CLIENT"})
        assert agent_client.get("/api/v1/intake").status_code in (403, 404)
        assert agent_client.get("/api/v1/users/me").json()["role"] == "CLIENT"


class TestRegister:
    def test_new_email_registers_as_client(self, client: TestClient) -> None:
        response = client.post(
            "/api/v1/auth/register", json={"email": "New@Example.com", "password": "long enough"}
        )
        assert response.status_code == 201
        assert response.json()["role"] == "CLIENT" and response.json()["email"] == "new@example.com"

    def test_email_seen_in_inbound_mail_takes_over_its_account(
        self, client: TestClient, make_user: MakeUser, make_ticket: object
    ) -> None:
        known = make_user(email="mailer@example.com", password=None)
        response = client.post(
            "/api/v1/auth/register", json={"email": "mailer@example.com", "password": "long enough"}
        )
        assert response.json()["id"] == known.id
        assert _login(client, "mailer@example.com", "long enough")["status"] == 200

    def test_existing_account_gets_409(self, client: TestClient, make_user: MakeUser) -> None:
        user = make_user()
        response = client.post(
            "/api/v1/auth/register", json={"email": user.email, "password": "long enough"}
        )
        assert response.status_code == 409

    def test_password_longer_than_bcrypt_reads_gets_422(self, client: TestClient) -> None:
        response = client.post(
            "/api/v1/auth/register", json={"email": "a@example.com", "password": "é" * 40}
        )
        assert response.status_code == 422
