"""Passwords (bcrypt through passlib) and access tokens (HS256 JWT through python-jose)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from jose import JWTError, jwt
from passlib.context import CryptContext

from doxa.core.db import utcnow
from doxa.core.errors import Unauthenticated

ALGORITHM = "HS256"
# bcrypt reads 72 bytes at most; longer passwords are refused rather than silently cut.
MAX_PASSWORD_BYTES = 72


class Passwords:
    def __init__(self, rounds: int = 12) -> None:
        self._context = CryptContext(schemes=["bcrypt"], bcrypt__rounds=rounds)
        # Verified when the user is unknown, so timing does not reveal which emails exist.
        self._dummy = self._context.hash("not-a-real-password")

    def hash(self, password: str) -> str:
        return self._context.hash(password)

    def verify(self, password: str, password_hash: str | None) -> bool:
        if len(password.encode()) > MAX_PASSWORD_BYTES or "\x00" in password:
            return False  # bcrypt cannot hash these; no stored password matches them
        if password_hash is None:
            self._context.verify(password, self._dummy)
            return False
        return self._context.verify(password, password_hash)


@dataclass(frozen=True, slots=True)
class Tokens:
    secret: str
    lifetime: timedelta

    def issue(self, user_id: int) -> str:
        now = utcnow()
        claims = {"sub": str(user_id), "iat": now, "exp": now + self.lifetime, "typ": "access"}
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)

    def subject(self, token: str) -> int:
        """The user id a valid token names; Unauthenticated for anything else."""
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[ALGORITHM],
                options={"require_exp": True, "require_iat": True, "require_sub": True},
            )
        except JWTError as exc:
            raise Unauthenticated("invalid or expired token") from exc
        subject = claims.get("sub")
        if claims.get("typ") != "access" or not isinstance(subject, str) or not subject.isdigit():
            raise Unauthenticated("invalid token")
        return int(subject)
