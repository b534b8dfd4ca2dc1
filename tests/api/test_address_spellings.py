"""Spellings of one address at the REST edge: one account, one login allowance."""

from __future__ import annotations

import httpx2
from fastapi.testclient import TestClient

from doxa.core.enums import Role
from doxa.core.users.throttle import Throttle
from tests.conftest import PASSWORD, MailClient, MakeUser

LIMIT = Throttle.FAILED_LOGINS_PER_ADDRESS.count


def _login(http: TestClient, email: str, password: str) -> httpx2.Response:
    return http.post("/api/v1/auth/login", data={"username": email, "password": password})


def _spellings(email: str) -> list[str]:
    local, domain = email.split("@")
    return [f"{local}@{domain}.", f'"{local}"@{domain.upper()}', f"{local.upper()}@{domain}"]


class TestLoginSpellings:
    def test_an_account_signs_in_under_another_spelling_of_its_address(
        self, mail_client: MailClient, make_user: MakeUser
    ) -> None:
        user, http = make_user(Role.AGENT), mail_client("203.0.113.66")
        assert _login(http, _spellings(user.email)[0], PASSWORD).status_code == 200

    def test_guesses_spread_over_spellings_share_one_allowance(
        self, mail_client: MailClient, make_user: MakeUser
    ) -> None:
        user, http = make_user(Role.AGENT), mail_client("203.0.113.66")
        spellings = _spellings(user.email)
        for n in range(LIMIT):
            assert _login(http, spellings[n % len(spellings)], "wrong guess!").status_code == 401
        assert _login(http, spellings[0], "wrong guess!").status_code == 429
