"""Passwords (bcrypt through passlib, on a bounded pool) and access tokens (HS256 JWT)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from jose import JWTError, jwt
from passlib.context import CryptContext

from doxa.core.db import utcnow
from doxa.core.errors import TooManyRequests, Unauthenticated

ALGORITHM = "HS256"
# bcrypt reads 72 bytes at most; longer passwords are refused rather than silently cut.
MAX_PASSWORD_BYTES = 72
T = TypeVar("T")


def default_hash_workers() -> int:
    """One core is left to the API: a login flood must not take the CPU that requests need."""
    return max(1, (os.cpu_count() or 2) - 1)


def _yield_cpu() -> None:
    # Linux gives each thread its own nice value: hashing threads lose the CPU to the request
    # threads, so a flood of logins slows logins, not the rest of the API (bench/login_flood.py).
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


class HashPool:
    """A few threads of its own for bcrypt; when all are busy the caller gets 429, not a queue.

    Per process: several server processes each have their own pool.
    """

    def __init__(self, workers: int) -> None:
        self._executor = ThreadPoolExecutor(
            workers, thread_name_prefix="bcrypt", initializer=_yield_cpu
        )
        self._workers, self._busy, self._lock = workers, 0, threading.Lock()

    def check(self) -> None:
        """Refuse now if every worker is busy, before the caller does any other work."""
        if self._busy >= self._workers:
            raise TooManyRequests("too many password checks at once; retry shortly", retry_after=1)

    def run(self, call: Callable[..., T], *args: object) -> T:
        with self._lock:
            self.check()
            self._busy += 1
        try:
            return self._executor.submit(call, *args).result()
        finally:
            with self._lock:
                self._busy -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class Passwords:
    def __init__(self, rounds: int = 12, *, workers: int | None = None) -> None:
        self._context = CryptContext(schemes=["bcrypt"], bcrypt__rounds=rounds)
        self._pool = HashPool(workers or default_hash_workers())
        # Verified when the user is unknown, so timing does not reveal which emails exist.
        self._dummy = self._context.hash("not-a-real-password")

    def check_capacity(self) -> None:
        """TooManyRequests while the hashing pool is full (a cheap refusal before a lookup)."""
        self._pool.check()

    def hash(self, password: str) -> str:
        return self._pool.run(self._context.hash, password)

    def verify(self, password: str, password_hash: str | None) -> bool:
        if len(password.encode()) > MAX_PASSWORD_BYTES or "\x00" in password:
            return False  # bcrypt cannot hash these; no stored password matches them
        if password_hash is None:
            self._pool.run(self._context.verify, password, self._dummy)
            return False
        return self._pool.run(self._context.verify, password, password_hash)

    def close(self) -> None:
        self._pool.close()


@dataclass(frozen=True, slots=True)
class Claims:
    user_id: int
    version: int


@dataclass(frozen=True, slots=True)
class Tokens:
    secret: str
    lifetime: timedelta

    def issue(self, user_id: int, version: int = 0) -> str:
        """A token for the user at their current token version (a password change bumps it)."""
        now = utcnow()
        claims = {
            "sub": str(user_id),
            "ver": version,
            "iat": now,
            "exp": now + self.lifetime,
            "typ": "access",
        }
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)

    def read(self, token: str) -> Claims:
        """The user id and token version a valid token names; Unauthenticated for anything else."""
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[ALGORITHM],
                options={"require_exp": True, "require_iat": True, "require_sub": True},
            )
        except JWTError as exc:
            raise Unauthenticated("invalid or expired token") from exc
        subject, version = claims.get("sub"), claims.get("ver")
        if (
            claims.get("typ") != "access"
            or not isinstance(subject, str)
            or not subject.isdigit()
            or type(version) is not int
        ):
            raise Unauthenticated("invalid token")
        return Claims(int(subject), version)
