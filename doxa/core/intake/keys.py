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

from sqlalchemy import delete, select, tuple_
from sqlalchemy.orm import Session

from doxa.core.db import backend, utcnow
from doxa.core.errors import Conflict
from doxa.core.intake.models import IntakeKey

KEEP = timedelta(hours=24)
IDEMPOTENCY, SIGNATURE, MAILGUN_TOKEN = "idempotency", "signature", "mailgun_token"
# A Message-ID that made a ticket: two copies processed at once make one (intake.pipeline).
MESSAGE_ID = "message_id"
CONFLICT = "{} key already used with another body"


class Claim(NamedTuple):
    """A key a request may use once, and the digest of the body that used it."""

    scope: str
    key: str
    body_sha256: str


def claim(db: Session, claimed: Claim, *, event_id: int) -> int | None:
    """Claim the key for `event_id`: None when it is new (or expired), else the event its
    first use stored, whose answer a repeat gets. The same key with another body is a
    Conflict. Claim after storing the event, and roll back when this returns an id."""
    inserted = db.connection().execute(_claim_statement(db), _row(claimed, event_id)).first()
    if inserted is not None:
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
        raise Conflict(CONFLICT.format(scope))
    return old.intake_event_id


def claim_all(db: Session, claims: list[tuple[Claim, int]]) -> set[tuple[str, str, int]]:
    """Claim each key for its event in one statement; (scope, key, event id) of the claims that
    found their key taken, by an earlier use or an earlier claim in `claims` (see `owners`)."""
    rows = [_row(claimed, event_id) for claimed, event_id in claims]
    inserted = {tuple(row) for row in db.connection().execute(_claim_statement(db), rows)}
    return {(c.scope, c.key, event_id) for c, event_id in claims} - inserted


class Owner(NamedTuple):
    """Whoever holds a key: its body's digest and the event its first use stored (or None:
    the key may be claimed afresh, as its event is gone or it is older than `KEEP`)."""

    body_sha256: str
    intake_event_id: int | None


def owners(db: Session, taken: set[tuple[str, str]]) -> dict[tuple[str, str], Owner]:
    """The holders of the keys (scope, key) that `claim_all` found taken, in one statement."""
    columns = (IntakeKey.body_sha256, IntakeKey.intake_event_id, IntakeKey.created_at)
    query = select(IntakeKey.scope, IntakeKey.key, *columns).where(
        tuple_(IntakeKey.scope, IntakeKey.key).in_(sorted(taken))
    )
    expired = utcnow() - KEEP
    return {
        (scope, key): Owner(body_sha256, None if created_at < expired else event_id)
        for scope, key, body_sha256, event_id, created_at in db.execute(query)
    }


def _row(claimed: Claim, event_id: int) -> dict[str, Any]:
    return {
        "scope": claimed.scope,
        "key": claimed.key,
        "body_sha256": claimed.body_sha256,
        "created_at": utcnow(),
        "intake_event_id": event_id,
    }


def _claim_statement(db: Session) -> Any:
    return backend(db).insert_or_ignore(
        IntakeKey, unique=("scope", "key"), returning=("scope", "key", "intake_event_id")
    )


def purge(db: Session) -> int:
    """Forget keys older than `KEEP`."""
    gone = db.execute(delete(IntakeKey).where(IntakeKey.created_at < utcnow() - KEEP))
    return int(getattr(gone, "rowcount", 0) or 0)
