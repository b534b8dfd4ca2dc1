"""The active taxonomy: the categories tickets may carry.

The seed model's labels are the cold start. Once a help desk trains on its own data, the active
model knows only that data's labels (and agents' corrections to them), so the seed's disappear.
Admins add categories by name (no training data needed), and pinned mailbox categories join
them at start-up.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from doxa.core.enums import DEFAULT_CATEGORIES
from doxa.core.triage.models import ClassifierCategory, ClassifierModel


def categories(db: Session) -> tuple[str, ...]:
    """The active model's categories plus those added; the defaults before any model."""
    labels = db.scalar(select(ClassifierModel.labels).where(ClassifierModel.is_active.is_(True)))
    known = (labels or {}).get("category") if labels is not None else DEFAULT_CATEGORIES
    return tuple(sorted(set(known or ()) | set(added_categories(db))))


def added_categories(db: Session) -> list[str]:
    return list(db.scalars(select(ClassifierCategory.name).order_by(ClassifierCategory.name)))


def add_categories(db: Session, names: Iterable[str]) -> list[str]:
    """Add categories to the taxonomy (idempotent); returns the names that were new."""
    have = set(added_categories(db))
    new = sorted({name.strip() for name in names if name and name.strip()} - have)
    added = []
    for name in new:
        try:  # another process (a second server starting) may add the same name first
            with db.begin_nested():
                db.add(ClassifierCategory(name=name))
            added.append(name)
        except IntegrityError:
            continue
    return added
