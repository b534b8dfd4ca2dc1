from __future__ import annotations

import base64
import json
from datetime import timedelta

import httpx2
from fastapi.testclient import TestClient
from jose import jwt

from doxa.core.auth import Tokens
from doxa.core.context import Context
from doxa.core.enums import Role
from doxa.core.models import User
from doxa.core.users import service as users
from doxa.core.users.schemas import UserUpdate
from doxa.core.users.throttle import Throttle
from tests.conftest import PASSWORD, AsUser, MailClient, MakeUser

LIMIT = Throttle.FAILED_LOGINS_PER_ADDRESS.count


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


class TestTokenVersion:
    """A password change, reset or an admin's password change ends every earlier token."""

    def test_token_from_before_an_admins_password_change_gets_401(
        self, client: TestClient, as_user: AsUser, make_user: MakeUser
    ) -> None:
        admin, agent = make_user(Role.ADMIN), make_user(Role.AGENT)
        stolen = _login(client, agent.email)["access_token"]
        bearer = {"Authorization": f"Bearer {stolen}"}
        assert client.get("/api/v1/users/me", headers=bearer).status_code == 200
        changed = as_user(admin).patch(
            f"/api/v1/users/{agent.id}", json={"password": "a brand new secret"}
        )
        assert changed.status_code == 200
        assert client.get("/api/v1/users/me", headers=bearer).status_code == 401
        assert _login(client, agent.email, "a brand new secret")["status"] == 200

    def test_admin_edit_without_a_password_keeps_tokens(
        self, client: TestClient, as_user: AsUser, make_user: MakeUser
    ) -> None:
        admin, agent = make_user(Role.ADMIN), make_user(Role.AGENT)
        token = _login(client, agent.email)["access_token"]
        as_user(admin).patch(f"/api/v1/users/{agent.id}", json={"full_name": "Renamed"})
        me = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200

    def test_token_without_a_version_claim_gets_401(
        self, client: TestClient, context: Context, make_user: MakeUser
    ) -> None:
        user = make_user()
        claims = {"sub": str(user.id), "iat": 1, "exp": 4_000_000_000, "typ": "access"}
        token = jwt.encode(claims, context.settings.secret, algorithm="HS256")
        me = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 401


VARYING_HEADERS = {"date", "x-request-id"}


def _answer(response: httpx2.Response) -> tuple[int, dict[str, object], dict[str, str]]:
    """What a caller can compare between two answers: all but the per-request id."""
    body = {k: v for k, v in response.json().items() if k != "request_id"}
    headers = {k: v for k, v in response.headers.items() if k not in VARYING_HEADERS}
    return response.status_code, body, headers


class TestDeactivation:
    """A deactivated account is no password oracle, and its tokens end for good."""

    def test_the_right_password_answers_exactly_as_a_wrong_one(
        self, client: TestClient, make_user: MakeUser
    ) -> None:
        gone, other = make_user(active=False), make_user()
        right = client.post(
            "/api/v1/auth/login", data={"username": gone.email, "password": PASSWORD}
        )
        wrong = client.post(
            "/api/v1/auth/login", data={"username": other.email, "password": "wrong guess!"}
        )
        assert _answer(right) == _answer(wrong)
        assert right.status_code == 401

    def test_the_right_password_counts_as_a_failure(
        self, mail_client: MailClient, make_user: MakeUser
    ) -> None:
        gone, http = make_user(active=False), mail_client("203.0.113.66")
        form = {"username": gone.email, "password": PASSWORD}
        statuses = [http.post("/api/v1/auth/login", data=form).status_code for _ in range(LIMIT)]
        assert statuses == [401] * LIMIT
        assert http.post("/api/v1/auth/login", data=form).status_code == 429

    def test_a_token_from_before_deactivation_never_works_after_reactivation(
        self, client: TestClient, as_user: AsUser, make_user: MakeUser
    ) -> None:
        admin, agent = as_user(make_user(Role.ADMIN)), make_user(Role.AGENT)
        bearer = {"Authorization": f"Bearer {_login(client, agent.email)['access_token']}"}
        admin.patch(f"/api/v1/users/{agent.id}", json={"is_active": False})
        admin.patch(f"/api/v1/users/{agent.id}", json={"is_active": True})
        assert client.get("/api/v1/users/me", headers=bearer).status_code == 401
        fresh = _login(client, agent.email)["access_token"]
        me = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {fresh}"})
        assert me.status_code == 200

    def test_a_token_issued_in_the_same_second_as_the_deactivation_ends_too(
        self, client: TestClient, context: Context, make_user: MakeUser
    ) -> None:
        # No clock in the rule: deactivating and reactivating within one second, with a token
        # minted that second, leaves nothing that a timestamp comparison could let through.
        admin, agent = make_user(Role.ADMIN), make_user(Role.AGENT)
        with context.sessions() as db:
            actor = db.get_one(User, admin.id)
            token = users.issue_token(db, context.tokens, db.get_one(User, agent.id))
            for active in (False, True):
                users.update_user(
                    db, context.passwords, agent.id, UserUpdate(is_active=active), actor=actor
                )
            db.commit()
        me = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 401
