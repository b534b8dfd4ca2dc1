"""The client networks that signed in to each account, kept 30 days.

Past an account's failure cap (users.throttle), such a network may still try while any other
gets one try a minute: a flood of guesses from elsewhere never locks the owner out. In the
database, so every server process knows the same networks.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from doxa.core.db import backend, utcnow
from doxa.core.users.models import AccountNetwork, User

REMEMBERED = timedelta(days=30)


def signed_in_from(db: Session, user: User | None, network: str) -> bool:
    """Whether `network` signed in to the account within the last 30 days."""
    if user is None:
        return False
    found = select(AccountNetwork.user_id).where(
        AccountNetwork.user_id == user.id,
        AccountNetwork.network == network,
        AccountNetwork.signed_in_at > utcnow() - REMEMBERED,
    )
    return db.scalar(found) is not None


def remember(db: Session, user: User, network: str) -> None:
    """Note a sign-in from `network` (one row per account and network) and forget the stale."""
    now = utcnow()
    db.execute(
        backend(db)
        .insert(AccountNetwork)
        .values(user_id=user.id, network=network, signed_in_at=now)
        .on_conflict_do_update(index_elements=["user_id", "network"], set_={"signed_in_at": now})
    )
    db.execute(
        delete(AccountNetwork).where(
            AccountNetwork.user_id == user.id, AccountNetwork.signed_in_at < now - REMEMBERED
        )
    )
