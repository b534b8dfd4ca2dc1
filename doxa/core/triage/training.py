"""Training a new model version: the help desk's own examples (the seed set until there are
any) + staff corrections, off the request path; the new version becomes active for every
process sharing the database."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from doxa.core.db import transaction
from doxa.core.enums import Role
from doxa.core.errors import NotFound
from doxa.core.triage import labels, store
from doxa.core.triage.data import Example
from doxa.core.triage.models import ClassifierModel, TrainingExample
from doxa.core.users.models import User
from doxa.core.users.service import require_role

if TYPE_CHECKING:  # scikit-learn: imported where a model is trained (store)
    from doxa.core.triage.text_classifier import TextClassifier

Trained = tuple["TextClassifier", dict[str, Any]]
Train = Callable[[list[Example], float], Trained]


def train_here(examples: list[Example], threshold: float) -> Trained:
    """The model and its evaluation, trained in this process."""
    return store.train_and_evaluate(examples, threshold=threshold)


def retrain(
    sessions: sessionmaker[Session],
    *,
    threshold: float,
    extra: Sequence[Example] = (),
    train: Train = train_here,
) -> ClassifierModel:
    """Train once (evaluated out-of-fold), save and activate; returns the new version.

    `train` runs `train_here` here, or (the execution plan) in a worker process, so that
    training does not hold the API's GIL."""
    with transaction(sessions) as db:
        examples = [*store.training_examples(db), *extra]
    model, evaluation = train(examples, threshold)
    with transaction(sessions) as db:
        return store.save_model(db, model, training_size=len(examples), evaluation=evaluation)


def describe(db: Session, *, actor: User) -> dict[str, Any]:
    """The active model: version, taxonomy, labels, training size, last evaluation."""
    require_role(actor, Role.AGENT, Role.ADMIN)
    row = db.scalar(select(ClassifierModel).where(ClassifierModel.is_active.is_(True)))
    if row is None:
        raise NotFound("no classifier has been trained yet")
    own = db.scalar(select(func.count()).select_from(TrainingExample)) or 0
    return {
        "version": row.version,
        "categories": list(labels.categories(db)),
        "labels": row.labels,
        "training_size": row.training_size,
        "trained_on": "own data" if own else "seed set",
        "evaluation": row.evaluation,
        "created_at": row.created_at,
    }


def add_categories(db: Session, names: Sequence[str], *, actor: User) -> list[str]:
    """Add categories to the active taxonomy (admin); agents may file tickets under them at
    once, and the model learns them from their corrections at the next retrain."""
    require_role(actor, Role.ADMIN)
    labels.add_categories(db, names)
    return list(labels.categories(db))
