"""Throttling of failed logins and account mail, per (address, client network) and per network.

The state is in process memory (sliding windows): each server process counts on its own, and a
restart forgets. Keys always include the client's network, so a flood from one network never
locks the same address out from another; known and unknown addresses are counted alike.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from doxa.core.addresses import identity_key
from doxa.core.config import IPNetwork
from doxa.core.errors import TooManyRequests


@dataclass(frozen=True, slots=True)
class Limit:
    count: int
    window: float  # seconds


class SlidingWindow:
    """At most `limit.count` hits per key in any `limit.window` seconds."""

    def __init__(
        self, limit: Limit, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit, self.max_keys, self.clock = limit, max_keys, clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait(self, key: str) -> float:
        """Seconds until `key` may act again; 0 when it may now."""
        with self._lock:
            hits = self._hits.get(key)
            if hits is None or len(hits) < self.limit.count:
                return 0.0
            return max(0.0, hits[0] + self.limit.window - self.clock())

    def hit(self, key: str) -> None:
        now = self.clock()
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                if len(self._hits) >= self.max_keys:
                    self._sweep(now)
                hits = self._hits[key] = deque(maxlen=self.limit.count)
            hits.append(now)

    def _sweep(self, now: float) -> None:
        # Memory stays bounded under a flood of new keys: the expired go first, then the oldest.
        expired = [k for k, hits in self._hits.items() if hits[-1] + self.limit.window <= now]
        for key in expired:
            del self._hits[key]
        for key in list(self._hits)[: max(0, len(self._hits) - self.max_keys // 2)]:
            del self._hits[key]

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()


class Throttle:
    """The limits on failed logins and on sign-up and reset requests.

    Per-process windows; what must hold across processes (which networks signed in to an
    account, when an address was last mailed) is in the database (see users.service and
    users.accounts).
    """

    FAILED_LOGINS_PER_ADDRESS = Limit(5, 15 * 60)
    FAILED_LOGINS_PER_NETWORK = Limit(50, 15 * 60)
    # One account's failures from every network together; past it, a network that has not
    # signed in to the account gets CAPPED_TRIES (SPEC).
    FAILED_LOGINS_PER_ACCOUNT = Limit(10, 15 * 60)
    CAPPED_TRIES = Limit(1, 60)
    MAIL_PER_ADDRESS = Limit(3, 60 * 60)
    MAIL_PER_NETWORK = Limit(20, 60 * 60)

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, *, refusal_delay: float = 0.5
    ) -> None:
        self.refusal_delay = refusal_delay  # how long an edge holds a refused login's answer
        self._login_address = SlidingWindow(self.FAILED_LOGINS_PER_ADDRESS, clock=clock)
        self._login_network = SlidingWindow(self.FAILED_LOGINS_PER_NETWORK, clock=clock)
        self._login_account = SlidingWindow(self.FAILED_LOGINS_PER_ACCOUNT, clock=clock)
        self._capped_tries = SlidingWindow(self.CAPPED_TRIES, clock=clock)
        self._mail_address = SlidingWindow(self.MAIL_PER_ADDRESS, clock=clock)
        self._mail_network = SlidingWindow(self.MAIL_PER_NETWORK, clock=clock)

    def check_login(self, email: str, network: str) -> None:
        """Refuse before any password check while this pair or network has failed too often."""
        refuse(
            max(self._login_address.wait(_pair(email, network)), self._login_network.wait(network)),
            FAILED_LOGINS,
        )

    def account_capped(self, account: str) -> bool:
        """Whether the account (see `account_key`) failed too often from all networks together."""
        return self._login_account.wait(account) > 0

    def capped_try(self, email: str, network: str) -> None:
        """Count a try at a capped account from a network that never signed in to it: one a
        minute, refused past that."""
        pair = _pair(email, network)
        refuse(self._capped_tries.wait(pair), FAILED_LOGINS)
        self._capped_tries.hit(pair)

    def login_failed(self, email: str, network: str, *, account: str) -> None:
        self._login_address.hit(_pair(email, network))
        self._login_network.hit(network)
        self._login_account.hit(account)

    def request_mail(self, email: str, network: str) -> None:
        """Count one sign-up or reset request; refuse it past the limits."""
        pair = _pair(email, network)
        refuse(max(self._mail_address.wait(pair), self._mail_network.wait(network)), MAIL_REQUESTS)
        self._mail_address.hit(pair)
        self._mail_network.hit(network)

    def reset(self) -> None:
        for window in (self._login_address, self._login_network, self._login_account):
            window.reset()
        for window in (self._capped_tries, self._mail_address, self._mail_network):
            window.reset()


# The details say what was refused, never how long for (Retry-After does): one answer for every
# address, known or not.
FAILED_LOGINS = "too many failed logins; retry after the time Retry-After gives"
MAIL_REQUESTS = "too many sign-up or reset requests; retry after the time Retry-After gives"


def account_key(email: str, token_version: int) -> str:
    """The account's key for the cap across networks. It carries the token version: a completed
    password reset bumps it, which lifts the cap in every process at once. An unknown address
    is counted as an account at version 0, alike."""
    return f"{email.strip().lower()}|v{token_version}"


def _pair(email: str, network: str) -> str:
    return f"{identity_key(email)}|{network}"  # every spelling that signs in as one account


def refuse(wait: float, what: str) -> None:
    """TooManyRequests with Retry-After when `wait` (seconds) is positive."""
    if wait > 0:
        raise TooManyRequests(what, retry_after=math.ceil(wait))


def client_network(
    peer: str | None, forwarded_for: str | None, trusted: Sequence[IPNetwork]
) -> str:
    """The client's network: its IPv4 address or IPv6 /64.

    `X-Forwarded-For` counts only when the peer is a trusted proxy; it is read from the right,
    skipping further trusted proxies, so a client cannot choose its address by prepending one.
    """
    address = _ip(peer)
    if address is None:
        return peer or "unknown"  # not an IP (a test client, a Unix socket): itself
    hops = [hop.strip() for hop in (forwarded_for or "").split(",") if hop.strip()]
    while hops and any(address in network for network in trusted):
        earlier = _ip(hops.pop())
        if earlier is None:
            break  # a malformed hop: the last proxy we trust is the best we know
        address = earlier
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def hashing_network(network: str) -> str:
    """The wider network that shares the password-hashing pool: an IPv4 /24, an IPv6 /48.

    One holder of many addresses (a /24, the /64s of a /48) counts once there.
    """
    try:
        wide = ipaddress.ip_network(network, strict=False)
    except ValueError:
        return network  # not an IP (a test client, a Unix socket): itself
    prefix = 24 if wide.version == 4 else 48
    return str(wide.supernet(new_prefix=prefix)) if wide.prefixlen > prefix else str(wide)


def _ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
