"""Passwords (bcrypt through passlib, on the pool it is given) and access tokens (HS256 JWT)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol, TypeVar

from jose import JWTError, jwt
from passlib.context import CryptContext

from doxa.core.db import utcnow
from doxa.core.errors import Unauthenticated

ALGORITHM = "HS256"
# bcrypt reads 72 bytes at most; longer passwords are refused rather than silently cut.
MAX_PASSWORD_BYTES = 72
# The hashing pool's key for work that no client network asked for (the CLI, start-up).
LOCAL = "local"
T = TypeVar("T")


class Hashing(Protocol):
    """Where bcrypt runs: `doxa.runtime.hashing.HashPool` in the server (threads of its own,
    shared fairly between client networks), `InlineHashing` elsewhere."""

    def check(self, network: str = "") -> None:
        """TooManyRequests now if `network` could not have a place."""
        ...

    def run(self, call: Callable[..., T], *args: object, network: str = "") -> T: ...

    def close(self) -> None: ...


class InlineHashing:
    """Hashing on the caller's thread, never refused: the CLI, start-up, tests."""

    def check(self, network: str = "") -> None:
        pass

    def run(self, call: Callable[..., T], *args: object, network: str = "") -> T:
        return call(*args)

    def close(self) -> None:
        pass


class Passwords:
    def __init__(self, rounds: int = 12, *, pool: Hashing | None = None) -> None:
        self._context = CryptContext(schemes=["bcrypt"], bcrypt__rounds=rounds)
        self._pool = pool or InlineHashing()
        # Verified when the user is unknown, so timing does not reveal which emails exist. Any
        # bcrypt hash at these rounds costs the same to check, so this one is written out rather
        # than computed: hashing took 0.25-0.45 s of every start, in each worker process too.
        self._dummy = f"$2b${rounds:02d}${'.' * 53}"  # a salt and a checksum of zero bits

    def check_capacity(self, network: str = LOCAL) -> None:
        """TooManyRequests while the network has no place in the hashing pool (a cheap refusal
        before a lookup)."""
        self._pool.check(network)

    def hash(self, password: str, *, network: str = LOCAL) -> str:
        return self._pool.run(self._context.hash, password, network=network)

    def verify(self, password: str, password_hash: str | None, *, network: str = LOCAL) -> bool:
        """Whether the password matches; `network` is whose share of the pool it takes."""
        if len(password.encode()) > MAX_PASSWORD_BYTES or "\x00" in password:
            return False  # bcrypt cannot hash these; no stored password matches them
        if password_hash is None:
            self._pool.run(self._context.verify, password, self._dummy, network=network)
            return False
        return self._pool.run(self._context.verify, password, password_hash, network=network)

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
