"""The label sets tickets may carry: the active model's, or the defaults before any training."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from doxa.core.enums import DEFAULT_CATEGORIES
from doxa.core.triage.models import ClassifierModel


def categories(db: Session) -> tuple[str, ...]:
    labels = db.scalar(select(ClassifierModel.labels).where(ClassifierModel.is_active.is_(True)))
    known = (labels or {}).get("category") or []
    return tuple(sorted(set(known) | set(DEFAULT_CATEGORIES)))
