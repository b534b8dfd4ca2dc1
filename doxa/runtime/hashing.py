"""Password hashing on threads of its own: bcrypt shared fairly between client networks.

`doxa.core.auth.Passwords` takes a pool as its `Hashing`; the composition root builds this one
for the server (the CLI hashes on its own thread).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from doxa.core.errors import TooManyRequests

T = TypeVar("T")


def default_hash_workers() -> int:
    """One core is left to the API: a login flood must not take the CPU that requests need."""
    return max(1, (os.cpu_count() or 2) - 1)


def _yield_cpu() -> None:
    # Linux gives each thread its own nice value: hashing threads lose the CPU to the request
    # threads, so a flood of logins slows logins, not the rest of the API (bench/login_flood.py).
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


@dataclass(slots=True)
class _Turn:
    """A caller waiting for a hashing thread."""

    granted: bool = False
    evicted: bool = False


class HashPool:
    """A few threads of their own for bcrypt, shared fairly between client networks.

    A network holds at most `per_network` places (running or waiting); past that, and when every
    waiting place is taken by a network that has hashed less lately, the caller gets 429 at
    once rather than a queue. A freed thread goes to the waiting network that has hashed least
    lately (every hash counts, a successful login's too, decaying with `half_life`), so however
    many requests one network sends, another's wait is about one hash. Per process.
    """

    def __init__(
        self,
        workers: int,
        *,
        per_network: int | None = None,
        max_waiting: int | None = None,
        max_wait: float = 5.0,
        half_life: float = 60.0,
        max_networks: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._executor = ThreadPoolExecutor(
            workers, thread_name_prefix="bcrypt", initializer=_yield_cpu
        )
        self.per_network = per_network or workers + 1
        self.max_waiting = max_waiting or 4 * (workers + 1)
        self.max_wait, self.half_life, self.max_networks = max_wait, half_life, max_networks
        self._clock = clock
        self._free = workers
        self._held: dict[str, int] = {}
        self._waiting: dict[str, deque[_Turn]] = {}
        self._waiting_count = 0
        self._usage: dict[str, tuple[float, float]] = {}  # network -> (hashes, as of when)
        self._cond = threading.Condition()

    def check(self, network: str = "") -> None:
        """Refuse now if this network could not have a place, before the caller does any work."""
        with self._cond:
            if not self._has_place(network):
                raise _pool_full()

    def run(self, call: Callable[..., T], *args: object, network: str = "") -> T:
        self._acquire(network)
        try:
            return self._executor.submit(call, *args).result()
        finally:
            self._release(network)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _has_place(self, network: str) -> bool:
        if self._held.get(network, 0) >= self.per_network:
            return False
        if self._waiting_count < self.max_waiting or (self._free and not self._waiting_count):
            return True
        return self._usage_of(network) < max(map(self._usage_of, self._waiting))

    def _acquire(self, network: str) -> None:
        with self._cond:
            if not self._has_place(network):
                raise _pool_full()
            self._held[network] = self._held.get(network, 0) + 1
            if self._free and not self._waiting_count:
                self._free -= 1
                self._charge(network)
                return
            if self._waiting_count >= self.max_waiting:
                self._evict_heaviest()
            turn = _Turn()
            self._waiting.setdefault(network, deque()).append(turn)
            self._waiting_count += 1
            deadline = self._clock() + self.max_wait
            while not turn.granted:
                remaining = deadline - self._clock()
                if turn.evicted or remaining <= 0:
                    if not turn.evicted:
                        self._forget(network, turn)
                    self._drop_hold(network)
                    raise _pool_full()
                self._cond.wait(remaining)

    def _release(self, network: str) -> None:
        with self._cond:
            self._drop_hold(network)
            if not self._waiting_count:
                self._free += 1
                return
            lightest = min(self._waiting, key=self._usage_of)
            turn = self._waiting[lightest][0]
            self._forget(lightest, turn)
            turn.granted = True
            self._charge(lightest)
            self._cond.notify_all()

    def _evict_heaviest(self) -> None:
        heaviest = max(self._waiting, key=self._usage_of)
        turn = self._waiting[heaviest][-1]
        self._forget(heaviest, turn)
        turn.evicted = True
        self._cond.notify_all()

    def _forget(self, network: str, turn: _Turn) -> None:
        queue = self._waiting[network]
        queue.remove(turn)
        self._waiting_count -= 1
        if not queue:
            del self._waiting[network]

    def _drop_hold(self, network: str) -> None:
        self._held[network] -= 1
        if not self._held[network]:
            del self._held[network]

    def _usage_of(self, network: str) -> float:
        hashes, when = self._usage.get(network, (0.0, 0.0))
        return hashes * math.exp2((when - self._clock()) / self.half_life)

    def _charge(self, network: str) -> None:
        if network not in self._usage and len(self._usage) >= self.max_networks:
            # Bounded memory: the networks that have hashed least lately are forgotten first.
            for key in sorted(self._usage, key=self._usage_of)[: self.max_networks // 2]:
                del self._usage[key]
        self._usage[network] = (self._usage_of(network) + 1, self._clock())


def _pool_full() -> TooManyRequests:
    return TooManyRequests("too many password checks at once; retry shortly", retry_after=1)
