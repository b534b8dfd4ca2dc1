from __future__ import annotations

import ipaddress

import pytest

from doxa.core.errors import TooManyRequests
from doxa.core.users.throttle import (
    Limit,
    SlidingWindow,
    Throttle,
    account_key,
    client_network,
    hashing_network,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestSlidingWindow:
    def test_allows_the_limit_then_says_how_long_to_wait(self) -> None:
        clock = Clock()
        window = SlidingWindow(Limit(2, 60), clock=clock)
        window.hit("k")
        clock.now += 10
        window.hit("k")
        assert window.wait("k") == pytest.approx(50)
        clock.now += 50
        assert window.wait("k") == 0

    def test_memory_stays_bounded_under_a_flood_of_keys(self) -> None:
        window = SlidingWindow(Limit(1, 60), max_keys=100, clock=Clock())
        for i in range(1000):
            window.hit(f"k{i}")
        assert len(window._hits) <= 100


class TestThrottle:
    def test_failed_logins_are_counted_per_pair_and_per_network(self) -> None:
        throttle = Throttle(Clock())
        for _ in range(Throttle.FAILED_LOGINS_PER_ADDRESS.count):
            throttle.login_failed("a@x.org", "n1", account=account_key("a@x.org", 0))
        with pytest.raises(TooManyRequests) as refused:
            throttle.check_login("A@x.org", "n1")
        assert refused.value.retry_after == 15 * 60
        throttle.check_login("a@x.org", "n2")  # another network is not affected

    def test_past_an_accounts_cap_a_network_gets_one_try_a_minute_until_a_reset(self) -> None:
        clock = Clock()
        throttle = Throttle(clock)
        for i in range(Throttle.FAILED_LOGINS_PER_ACCOUNT.count):
            throttle.login_failed("a@x.org", f"n{i}", account=account_key("a@x.org", 3))
        assert throttle.account_capped(account_key("A@x.org", 3))
        throttle.capped_try("a@x.org", "new")
        with pytest.raises(TooManyRequests):
            throttle.capped_try("a@x.org", "new")
        clock.now += 60
        throttle.capped_try("a@x.org", "new")
        assert not throttle.account_capped(account_key("a@x.org", 4))  # a reset bumps it


TRUSTED = (ipaddress.ip_network("10.0.0.0/8"),)


class TestClientNetwork:
    @pytest.mark.parametrize(
        ("peer", "forwarded", "network"),
        [
            ("198.51.100.7", "192.0.2.1", "198.51.100.7"),  # untrusted peer: header ignored
            ("10.0.0.1", "192.0.2.1", "192.0.2.1"),
            ("10.0.0.1", "6.6.6.6, 192.0.2.1, 10.0.0.2", "192.0.2.1"),  # forged hop on the left
            ("10.0.0.1", "not-an-ip", "10.0.0.1"),
            ("2001:db8:1:2:3:4:5:6", None, "2001:db8:1:2::/64"),
            ("::ffff:192.0.2.1", None, "192.0.2.1"),
            ("testclient", None, "testclient"),
        ],
    )
    def test_names_the_client_address_or_its_64(
        self, peer: str, forwarded: str | None, network: str
    ) -> None:
        assert client_network(peer, forwarded, TRUSTED) == network


class TestHashingNetwork:
    @pytest.mark.parametrize(
        ("network", "wide"),
        [
            ("198.51.100.7", "198.51.100.0/24"),
            ("2001:db8:1:2::/64", "2001:db8:1::/48"),
            ("testclient", "testclient"),
        ],
    )
    def test_widens_a_client_network_to_its_24_or_48(self, network: str, wide: str) -> None:
        assert hashing_network(network) == wide
