"""Throttling, played from outside: login floods, sign-up floods, and who may set the address."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator

import httpx2
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
from doxa.runtime.hashing import HashPool
from tests.conftest import PASSWORD, PROXY, MailClient, MakeUser, mailed_token, make_settings

LIMIT = Throttle.FAILED_LOGINS_PER_ADDRESS.count


def _login(http: TestClient, email: str, password: str, **headers: str) -> httpx2.Response:
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
    def test_one_mail_per_address_per_15_minutes_whatever_the_network_known_or_not(
        self, mail_client: MailClient, make_user: MakeUser
    ) -> None:
        refusals = []
        for email in (make_user().email, "nobody@example.com"):
            body = {"email": email}
            assert (
                mail_client("203.0.113.66").post("/api/v1/auth/register", json=body).status_code
                == 202
            )
            for address in ("203.0.113.66", "198.51.100.20", "2001:db8:9::1"):
                http = mail_client(address)
                refusals += [
                    http.post("/api/v1/auth/register", json=body),
                    http.post("/api/v1/auth/password-reset", json=body),
                ]
        assert {r.status_code for r in refusals} == {429}
        assert len({(r.json()["detail"], r.headers["content-type"]) for r in refusals}) == 1
        assert all(0 < int(r.headers["retry-after"]) <= 15 * 60 for r in refusals)

    def test_a_network_asking_for_many_addresses_is_refused_and_others_are_not(
        self, mail_client: MailClient
    ) -> None:
        http = mail_client("203.0.113.66")
        limit = Throttle.MAIL_PER_NETWORK.count
        statuses = [
            http.post("/api/v1/auth/register", json={"email": f"a{i}@example.com"}).status_code
            for i in range(limit + 1)
        ]
        assert statuses == [202] * limit + [429]
        other = mail_client("198.51.100.20")
        assert (
            other.post("/api/v1/auth/register", json={"email": "b@example.com"}).status_code == 202
        )


ACCOUNT_CAP = Throttle.FAILED_LOGINS_PER_ACCOUNT.count
FLOOD = [f"192.0.2.{i}" for i in range(1, 21)]  # twenty networks, one attacker


def _flood(mail_client: MailClient, email: str) -> list[int]:
    """Every network guesses as often as its own limit lets it."""
    return [
        _login(mail_client(address), email, "wrong guess!").status_code
        for address in FLOOD
        for _ in range(LIMIT)
    ]


class TestAccountCap:
    """Failures at one account from all networks together are capped, and the cap never locks
    its owner out: a network that signed in lately may still try, a reset lifts it."""

    def test_twenty_networks_flooding_one_account_are_refused_past_the_cap(
        self, mail_client: MailClient, make_user: MakeUser
    ) -> None:
        statuses = _flood(mail_client, make_user(Role.AGENT).email)
        # Past the cap each network has one try a minute: 20 more at most, not 100.
        assert statuses.count(401) <= ACCOUNT_CAP + len(FLOOD)
        assert statuses.count(429) >= len(statuses) - ACCOUNT_CAP - len(FLOOD)

    def test_the_cap_answers_alike_for_known_and_unknown_addresses(
        self, mail_client: MailClient, make_user: MakeUser
    ) -> None:
        answers = []
        for email in (make_user().email, "nobody@example.com"):
            _flood(mail_client, email)
            http = mail_client("198.51.100.99")
            assert _login(http, email, "wrong guess!").status_code == 401  # its one try
            answers.append(_login(http, email, "wrong guess!"))
        assert {a.status_code for a in answers} == {429}
        assert answers[0].json()["detail"] == answers[1].json()["detail"]
        assert all(0 < int(a.headers["retry-after"]) <= 60 for a in answers)

    def test_its_owner_gets_in_from_a_new_network_through_a_reset(
        self, mail_client: MailClient, make_user: MakeUser, clean: Context
    ) -> None:
        user = make_user(Role.AGENT)
        _flood(mail_client, user.email)
        owner = mail_client("198.51.100.7")
        assert _login(owner, user.email, "half-remembered").status_code == 401  # its one try
        assert _login(owner, user.email, PASSWORD).status_code == 429
        reset = owner.post("/api/v1/auth/password-reset", json={"email": user.email})
        assert reset.status_code == 202
        link = mailed_token(clean, user.email)
        # The attacker asks for reset mail too: refused, and the owner's link stays valid.
        attacker = mail_client(FLOOD[0])
        assert (
            attacker.post("/api/v1/auth/password-reset", json={"email": user.email}).status_code
            == 429
        )
        body = {"token": link, "password": "a brand new secret"}
        assert owner.post("/api/v1/auth/password-reset/confirm", json=body).status_code == 200
        assert _login(owner, user.email, "a brand new secret").status_code == 200

    def test_a_network_that_signed_in_may_still_try_in_every_process(
        self, mail_client: MailClient, make_user: MakeUser, clean: Context
    ) -> None:
        user = make_user(Role.AGENT)
        elsewhere = create_app(make_settings(clean.settings.database_url), context=clean)
        home = TestClient(elsewhere, client=("198.51.100.7", 40000))
        assert _login(home, user.email, PASSWORD).status_code == 200  # another process
        _flood(mail_client, user.email)
        # This process never saw the sign-in; the database remembers it.
        assert _login(mail_client("198.51.100.7"), user.email, PASSWORD).status_code == 200
        assert _login(mail_client("198.51.100.8"), user.email, "wrong guess!").status_code == 401
        assert _login(mail_client("198.51.100.8"), user.email, PASSWORD).status_code == 429


@pytest.mark.timing
class TestHashingShare:
    """One network's logins, successful ones included, never take the hashing pool from
    another's: a network is an IPv4 /24 or an IPv6 /48 however many addresses it holds."""

    ROUNDS = 8  # ~20 ms a hash here: one thread is saturated by a handful of clients

    @pytest.fixture
    def costly(self, clean: Context) -> Iterator[tuple[FastAPI, str, str]]:
        passwords = Passwords(self.ROUNDS, pool=HashPool(1))  # one hashing thread, as on two cores
        context = dataclasses.replace(clean, passwords=passwords)
        emails = ("flooder@example.com", "victim@example.com")
        with transaction(clean.sessions) as db:
            for email in emails:
                db.add(User(email=email, role=Role.CLIENT, password_hash=passwords.hash(PASSWORD)))
        yield create_app(make_settings(clean.settings.database_url), context=context), *emails
        passwords.close()

    def _victims_fast_logins(self, app: FastAPI, victim: str, flooders: list[list[str]]) -> int:
        stop = threading.Event()
        flooding = threading.Semaphore(0)  # released by each thread once it has had an answer

        def flood(addresses: list[str]) -> None:
            clients = [TestClient(app, client=(a, 40000)) for a in addresses]
            answered = False
            while not stop.is_set():
                for http in clients:
                    if not stop.is_set():
                        _login(http, "flooder@example.com", PASSWORD)
                        if not answered:
                            answered = True
                            flooding.release()

        threads = [threading.Thread(target=flood, args=(a,)) for a in flooders]
        for thread in threads:
            thread.start()
        try:
            # The victim comes once every flooding thread is in its loop (it was a sleep of 1 s).
            for _ in threads:
                assert flooding.acquire(timeout=30), "the flood did not start"
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
