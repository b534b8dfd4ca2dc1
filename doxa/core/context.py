"""What every edge needs from the domain, built once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from doxa.core.auth import Hashing, Passwords, Tokens
from doxa.core.config import Settings
from doxa.core.db import make_engine, make_sessionmaker


@dataclass(frozen=True, slots=True)
class Context:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    passwords: Passwords
    tokens: Tokens

    @classmethod
    def build(cls, settings: Settings, *, hashing: Hashing | None = None) -> Context:
        """`hashing`: where passwords are hashed (the server's pool), else the caller's thread."""
        engine = make_engine(settings.database_url)
        return cls(
            settings=settings,
            engine=engine,
            sessions=make_sessionmaker(engine),
            passwords=Passwords(settings.bcrypt_rounds, pool=hashing),
            tokens=Tokens(settings.secret, timedelta(minutes=settings.access_token_expire_minutes)),
        )

    def close(self) -> None:
        self.engine.dispose()
        self.passwords.close()
