"""Throttling, played from outside: login floods, sign-up floods, and who may set the address."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from doxa.core.auth import Passwords
from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.enums import Role
from doxa.core.models import User
from doxa.core.users.throttle import Throttle
from doxa.main import create_app
from tests.conftest import PASSWORD, PROXY, MailClient, MakeUser, make_settings

LIMIT = Throttle.FAILED_LOGINS_PER_ADDRESS.count


def _login(http: TestClient, email: str, password: str, **headers: str) -> Any:
    form = {"username": email, "password": password}
    return http.post("/api/v1/auth/login", data=form, headers=headers)


class TestLoginFlood:
    def test_known_and_unknown_addresses_get_the_same_429_with_retry_after(
        self, mail_client: MailClient, make_user: MakeUser
    ) -> None:
        http = mail_client("203.0.113.66")
        answers = {}
        for email in (make_user().email, "nobody@example.com"):
            for _ in range(LIMIT):
                assert _login(http, email, "wrong guess!").status_code == 401
            answers[email] = _login(http, email, "wrong guess!")
        statuses = {a.status_code for a in answers.values()}
        assert statuses == {429}
        for answer in answers.values():
            assert answer.headers["content-type"] == "application/problem+json"
            assert 0 < int(answer.headers["retry-after"]) <= 15 * 60
        assert len({a.json()["detail"] for a in answers.values()}) == 1

    def test_a_throttled_pair_is_refused_even_with_the_right_password(
        self, mail_client: MailClient, make_user: MakeUser
    ) -> None:
        user, http = make_user(), mail_client("203.0.113.66")
        for _ in range(LIMIT):
            _login(http, user.email, "wrong guess!")
        assert _login(http, user.email, PASSWORD).status_code == 429

    def test_a_flood_from_one_network_never_locks_the_user_out_from_another(
        self, mail_client: MailClient, make_user: MakeUser
    ) -> None:
        user, attacker = make_user(), mail_client("203.0.113.66")
        per_network = Throttle.FAILED_LOGINS_PER_NETWORK.count
        statuses = [_login(attacker, user.email, "wrong guess!").status_code for _ in range(20)]
        statuses += [
            _login(attacker, f"someone{i}@example.com", "wrong guess!").status_code
            for i in range(per_network)
        ]
        assert statuses[-1] == 429 and 429 in statuses[:20]
        assert _login(mail_client("198.51.100.20"), user.email, PASSWORD).status_code == 200

    def test_ipv6_clients_of_one_64_are_one_network(
        self, mail_client: MailClient, make_user: MakeUser
    ) -> None:
        user = make_user()
        for i in range(LIMIT):
            _login(mail_client(f"2001:db8:1:2::{i + 1}"), user.email, "wrong guess!")
        assert _login(mail_client("2001:db8:1:2::ff"), user.email, PASSWORD).status_code == 429
        assert _login(mail_client("2001:db8:1:3::1"), user.email, PASSWORD).status_code == 200

    def test_a_refused_login_is_answered_late_so_a_flood_slows_itself(
        self, mail_client: MailClient, make_user: MakeUser
    ) -> None:
        user, http = make_user(), mail_client("203.0.113.66")
        http.app.state.throttle.refusal_delay = 0.2  # type: ignore[attr-defined]
        for _ in range(LIMIT):
            _login(http, user.email, "wrong guess!")
        started = time.monotonic()
        assert _login(http, user.email, "wrong guess!").status_code == 429
        assert time.monotonic() - started >= 0.2


class TestForwardedFor:
    def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(
        self, mail_client: MailClient, make_user: MakeUser
    ) -> None:
        user, http = make_user(), mail_client("203.0.113.66")
        for i in range(LIMIT):  # a new "client address" each time: would dodge the limit
            _login(http, user.email, "wrong guess!", **{"X-Forwarded-For": f"192.0.2.{i}"})
        answer = _login(http, user.email, PASSWORD, **{"X-Forwarded-For": "192.0.2.200"})
        assert answer.status_code == 429

    def test_x_forwarded_for_from_an_allowed_proxy_names_the_client(
        self, mail_client: MailClient, make_user: MakeUser
    ) -> None:
        user, proxy = make_user(), mail_client(PROXY)
        for _ in range(LIMIT):
            _login(proxy, user.email, "wrong guess!", **{"X-Forwarded-For": "192.0.2.1"})
        blocked = _login(proxy, user.email, PASSWORD, **{"X-Forwarded-For": "192.0.2.1"})
        assert blocked.status_code == 429
        # The client prepends a forged hop; the proxy appends the address it saw: the last wins.
        other = _login(proxy, user.email, PASSWORD, **{"X-Forwarded-For": "192.0.2.1, 192.0.2.9"})
        assert other.status_code == 200


class TestMailRequests:
    def test_sign_up_requests_are_throttled_alike_for_known_and_unknown(
        self, mail_client: MailClient, make_user: MakeUser
    ) -> None:
        http = mail_client("203.0.113.66")
        limit = Throttle.MAIL_PER_ADDRESS.count
        for email in (make_user().email, "nobody@example.com"):
            statuses = [
                http.post("/api/v1/auth/register", json={"email": email}).status_code
                for _ in range(limit + 1)
            ]
            assert statuses == [202] * limit + [429]
        reset = http.post("/api/v1/auth/password-reset", json={"email": "nobody@example.com"})
        assert reset.status_code == 429 and "retry-after" in reset.headers
        other = mail_client("198.51.100.20")
        assert (
            other.post("/api/v1/auth/register", json={"email": "nobody@example.com"}).status_code
            == 202
        )


class TestHashingShare:
    """One network's logins, successful ones included, never take the hashing pool from
    another's: a network is an IPv4 /24 or an IPv6 /48 however many addresses it holds."""

    ROUNDS = 8  # ~20 ms a hash here: one thread is saturated by a handful of clients

    @pytest.fixture
    def costly(self, clean: Context) -> Iterator[tuple[FastAPI, str, str]]:
        passwords = Passwords(self.ROUNDS, workers=1)  # one hashing thread, as on two cores
        context = dataclasses.replace(clean, passwords=passwords)
        emails = ("flooder@example.com", "victim@example.com")
        with transaction(clean.sessions) as db:
            for email in emails:
                db.add(User(email=email, role=Role.CLIENT, password_hash=passwords.hash(PASSWORD)))
        yield create_app(make_settings(clean.settings.database_url), context=context), *emails
        passwords.close()

    def _victims_fast_logins(self, app: FastAPI, victim: str, flooders: list[list[str]]) -> int:
        stop = threading.Event()

        def flood(addresses: list[str]) -> None:
            clients = [TestClient(app, client=(a, 40000)) for a in addresses]
            while not stop.is_set():
                for http in clients:
                    if not stop.is_set():
                        _login(http, "flooder@example.com", PASSWORD)

        threads = [threading.Thread(target=flood, args=(a,)) for a in flooders]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1.0)  # the flood holds the pool before the victim comes
            http, fast = TestClient(app, client=("198.51.100.7", 40000)), 0
            for _ in range(20):
                started = time.monotonic()
                answer = _login(http, victim, PASSWORD)
                fast += answer.status_code == 200 and time.monotonic() - started < 1.0
            return fast
        finally:
            stop.set()
            for thread in threads:
                thread.join()

    def test_four_clients_of_one_24_leave_another_networks_logins_fast(
        self, costly: tuple[FastAPI, str, str]
    ) -> None:
        app, _, victim = costly
        flooders = [[f"203.0.113.{i}"] for i in range(1, 5)]
        assert self._victims_fast_logins(app, victim, flooders) >= 19

    def test_256_64s_of_one_48_leave_another_networks_logins_fast(
        self, costly: tuple[FastAPI, str, str]
    ) -> None:
        app, _, victim = costly
        nets = [f"2001:db8:7:{n:x}::1" for n in range(256)]
        flooders = [nets[i::16] for i in range(16)]
        assert self._victims_fast_logins(app, victim, flooders) >= 19
