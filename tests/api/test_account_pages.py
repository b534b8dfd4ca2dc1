"""The pages mailed links open: plain forms that set the password, escaped, never cached."""

from __future__ import annotations

import logging

from fastapi.testclient import TestClient

from doxa.api.routes.account import keep_tokens_out_of_access_logs
from doxa.core.context import Context
from tests.conftest import MailClient, MakeUser, mailed_token

NEW = "a fresh long secret"


def _signed_up(mail_client: MailClient, clean: Context, email: str) -> tuple[TestClient, str]:
    http = mail_client()
    http.post("/api/v1/auth/register", json={"email": email})
    return http, mailed_token(clean, email)


class TestVerifyPage:
    def test_link_opens_a_form_that_sets_the_password(
        self, mail_client: MailClient, clean: Context
    ) -> None:
        http, token = _signed_up(mail_client, clean, "x@example.com")
        page = http.get(f"/account/verify?token={token}")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert f'value="{token}"' in page.text and "<script" not in page.text
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["referrer-policy"] == "no-referrer"
        form = {"token": token, "password": NEW, "again": NEW}
        done = http.post("/account/verify", data=form)
        assert done.status_code == 200 and "x@example.com" in done.text
        login = {"username": "x@example.com", "password": NEW}
        assert http.post("/api/v1/auth/login", data=login).status_code == 200

    def test_whatever_is_in_the_link_is_escaped(self, mail_client: MailClient) -> None:
        page = mail_client().get('/account/verify?token="><script>alert(1)</script>')
        assert "<script>alert" not in page.text and "&quot;&gt;&lt;script&gt;" in page.text

    def test_differing_passwords_show_the_form_again(
        self, mail_client: MailClient, clean: Context
    ) -> None:
        http, token = _signed_up(mail_client, clean, "x@example.com")
        form = {"token": token, "password": NEW, "again": NEW + "!"}
        answer = http.post("/account/verify", data=form)
        assert answer.status_code == 422 and "differ" in answer.text

    def test_used_link_says_so(self, mail_client: MailClient, clean: Context) -> None:
        http, token = _signed_up(mail_client, clean, "x@example.com")
        form = {"token": token, "password": NEW, "again": NEW}
        http.post("/account/verify", data=form)
        again = http.post("/account/verify", data=form)
        assert again.status_code == 422 and "already used or expired" in again.text

    def test_common_password_is_refused_on_the_page(
        self, mail_client: MailClient, clean: Context
    ) -> None:
        http, token = _signed_up(mail_client, clean, "x@example.com")
        form = {"token": token, "password": "1234567890", "again": "1234567890"}
        answer = http.post("/account/verify", data=form)
        assert answer.status_code == 422 and "commonly used" in answer.text


class TestResetPage:
    def test_link_opens_a_form_that_resets_the_password(
        self, mail_client: MailClient, make_user: MakeUser, clean: Context
    ) -> None:
        user, http = make_user(), mail_client()
        http.post("/api/v1/auth/password-reset", json={"email": user.email})
        token = mailed_token(clean, user.email)
        assert http.get(f"/account/reset?token={token}").status_code == 200
        done = http.post("/account/reset", data={"token": token, "password": NEW, "again": NEW})
        assert done.status_code == 200
        login = {"username": user.email, "password": NEW}
        assert http.post("/api/v1/auth/login", data=login).status_code == 200


class TestAccessLog:
    def test_tokens_in_links_are_blanked_in_access_log_lines(self) -> None:
        keep_tokens_out_of_access_logs()
        logger = logging.getLogger("uvicorn.access")
        record = logger.makeRecord(
            logger.name,
            logging.INFO,
            __file__,
            1,
            '%s - "%s %s HTTP/%s" %d',
            ("1.2.3.4:5", "GET", "/account/reset?token=SECRETSECRET", "1.1", 200),
            None,
        )
        for log_filter in logger.filters:
            assert isinstance(log_filter, logging.Filter) and log_filter.filter(record)
        assert "SECRETSECRET" not in record.getMessage()
