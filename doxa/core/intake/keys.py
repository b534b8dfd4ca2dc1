"""Keys a webhook sender may use once: Idempotency-Keys, form signatures, Mailgun tokens;
and the Message-IDs that made tickets (for a day: after that `_seen` in the pipeline holds).

Each is claimed with one INSERT .. ON CONFLICT DO NOTHING in the transaction that stores the
event, so of two racing requests with the same key one inserts and the other waits for its
commit (PostgreSQL) or its turn at the writer gate (SQLite), then reads the first request's
answer and rolls back what it stored. Keys are kept `KEEP`; an older one is claimed afresh.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, NamedTuple

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from doxa.core.db import utcnow
from doxa.core.errors import Conflict
from doxa.core.intake.models import IntakeKey

KEEP = timedelta(hours=24)
IDEMPOTENCY, SIGNATURE, MAILGUN_TOKEN = "idempotency", "signature", "mailgun_token"
# A Message-ID that made a ticket: two copies processed at once make one (intake.pipeline).
MESSAGE_ID = "message_id"


class Claim(NamedTuple):
    """A key a request may use once, and the digest of the body that used it."""

    scope: str
    key: str
    body_sha256: str


def claim(db: Session, claimed: Claim, *, event_id: int) -> int | None:
    """Claim the key for `event_id`: None when it is new (or expired), else the event its
    first use stored, whose answer a repeat gets. The same key with another body is a
    Conflict. Claim after storing the event, and roll back when this returns an id."""
    new_id = db.connection().execute(_claim_statement(db), _row(claimed, event_id)).scalar()
    if new_id is not None:
        return None
    scope, key, body_sha256 = claimed
    old = db.execute(
        select(IntakeKey).where(IntakeKey.scope == scope, IntakeKey.key == key)
    ).scalar_one()
    if old.created_at < utcnow() - KEEP or old.intake_event_id is None:  # this use is the first
        old.body_sha256, old.created_at, old.intake_event_id = body_sha256, utcnow(), event_id
        db.flush()
        return None
    if old.body_sha256 != body_sha256:
        raise Conflict(f"{scope} key already used with another body")
    return old.intake_event_id


def claim_all(db: Session, claims: list[tuple[Claim, int]]) -> bool:
    """Claim each key for its event in one statement; False when any was taken (then roll
    back and `claim` each alone, which tells a retry from a conflict or an expired key)."""
    rows = [_row(claimed, event_id) for claimed, event_id in claims]
    return len(db.connection().execute(_claim_statement(db), rows).all()) == len(rows)


def _row(claimed: Claim, event_id: int) -> dict[str, Any]:
    return {"scope": claimed.scope, "key": claimed.key, "body_sha256": claimed.body_sha256,
            "created_at": utcnow(), "intake_event_id": event_id}  # fmt: skip


_CLAIM: dict[str, Any] = {}


def _claim_statement(db: Session) -> Any:
    """Built once per dialect, parameters bound at execution (cheaper than values() per call)."""
    dialect = db.get_bind().dialect.name
    if dialect not in _CLAIM:
        table: Any = IntakeKey.__table__
        insert = (pg_insert if dialect == "postgresql" else sqlite_insert)(table)
        _CLAIM[dialect] = insert.on_conflict_do_nothing(index_elements=["scope", "key"]).returning(
            table.c.id
        )
    return _CLAIM[dialect]


def purge(db: Session) -> int:
    """Forget keys older than `KEEP`."""
    gone = db.execute(delete(IntakeKey).where(IntakeKey.created_at < utcnow() - KEEP))
    return int(getattr(gone, "rowcount", 0) or 0)
