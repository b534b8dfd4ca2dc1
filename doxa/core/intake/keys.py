"""Keys a webhook sender may use once: Idempotency-Keys, form signatures, Mailgun tokens.

Each is claimed with one INSERT .. ON CONFLICT DO NOTHING, so of two racing requests with the
same key one inserts and the other waits for its commit (PostgreSQL) or its turn at the writer
gate (SQLite), then reads the first request's answer. Keys are kept `KEEP`; an older one is
claimed afresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from doxa.core.db import is_postgresql, utcnow
from doxa.core.errors import Conflict
from doxa.core.intake.models import IntakeKey

KEEP = timedelta(hours=24)
IDEMPOTENCY, SIGNATURE, MAILGUN_TOKEN = "idempotency", "signature", "mailgun_token"


@dataclass(frozen=True, slots=True)
class Claim:
    """A new key (`first` None) or the event the key's first use stored."""

    id: int
    first: int | None


def claim(db: Session, scope: str, key: str, *, body_sha256: str) -> Claim:
    """Claim `key` in `scope`; a key used before with another body is a Conflict."""
    insert: Any = (pg_insert if is_postgresql(db) else sqlite_insert)(IntakeKey)
    row = {"scope": scope, "key": key, "body_sha256": body_sha256, "created_at": utcnow()}
    new_id = db.scalar(
        insert.values(**row)
        .on_conflict_do_nothing(index_elements=["scope", "key"])
        .returning(IntakeKey.id)
    )
    if new_id is not None:
        return Claim(new_id, None)
    old = db.execute(
        select(IntakeKey).where(IntakeKey.scope == scope, IntakeKey.key == key)
    ).scalar_one()
    if old.created_at < utcnow() - KEEP:  # expired: this use is the first again
        old.body_sha256, old.created_at, old.intake_event_id = body_sha256, utcnow(), None
        db.flush()
        return Claim(old.id, None)
    if old.body_sha256 != body_sha256:
        raise Conflict(f"{scope} key already used with another body")
    if old.intake_event_id is None:
        raise Conflict(f"{scope} key is in use by a request that stored nothing")
    return Claim(old.id, old.intake_event_id)


def link(db: Session, claims: list[Claim], event_id: int) -> None:
    """Record the event that answers these keys' later uses."""
    ids = [c.id for c in claims if c.first is None]
    if ids:
        db.execute(
            update(IntakeKey)
            .where(IntakeKey.id.in_(ids))
            .values(intake_event_id=event_id)
            .execution_options(synchronize_session=False)
        )


def purge(db: Session) -> int:
    """Forget keys older than `KEEP`."""
    gone = db.execute(delete(IntakeKey).where(IntakeKey.created_at < utcnow() - KEEP))
    return int(getattr(gone, "rowcount", 0) or 0)
