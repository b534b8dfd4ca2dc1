"""Model versions in the database: save, activate, load (cached per process), seed on start-up."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from doxa.core.triage.data import seed_examples
from doxa.core.triage.evaluation import evaluate_out_of_fold
from doxa.core.triage.model import Example, TextClassifier, train_out_of_fold
from doxa.core.triage.models import ClassificationCorrection, ClassifierModel

# Unpickled models by version. A version's blob never changes, so the cache cannot go stale;
# it only needs bounding, as retraining produces new versions over the life of a process.
_CACHE: OrderedDict[str, TextClassifier] = OrderedDict()
_CACHE_SIZE = 2
_LOCK = threading.Lock()


def save_model(
    db: Session,
    model: TextClassifier,
    *,
    training_size: int,
    evaluation: dict[str, Any],
    activate: bool = True,
) -> ClassifierModel:
    """Store a trained model; when activating, the previous active version is deactivated."""
    if activate:
        db.execute(
            update(ClassifierModel)
            .where(ClassifierModel.is_active.is_(True))
            .values(is_active=False)
        )
    row = ClassifierModel(
        version=model.version,
        is_active=activate,
        labels=model.labels,
        training_size=training_size,
        evaluation=evaluation,
        blob=model.to_bytes(),
    )
    db.add(row)
    db.flush()
    _remember(model)
    return row


def active_version(db: Session) -> str | None:
    return db.scalar(select(ClassifierModel.version).where(ClassifierModel.is_active.is_(True)))


def load_active(db: Session) -> TextClassifier | None:
    """The active model, unpickled once per process and version."""
    version = active_version(db)
    if version is None:
        return None
    with _LOCK:
        if version in _CACHE:
            _CACHE.move_to_end(version)
            return _CACHE[version]
    blob = db.scalar(select(ClassifierModel.blob).where(ClassifierModel.version == version))
    if blob is None:
        return None
    model = TextClassifier.from_bytes(blob)
    _remember(model)
    return model


def training_examples(db: Session) -> list[Example]:
    """The shipped seed set plus every staff correction (the corrected label for its field)."""
    examples = seed_examples()
    corrections = db.scalars(select(ClassificationCorrection).order_by(ClassificationCorrection.id))
    for correction in corrections:
        if correction.field == "category":
            examples.append(Example(correction.text, correction.corrected, None))
        elif correction.field == "priority":
            examples.append(Example(correction.text, None, correction.corrected))
    return examples


def ensure_model(db: Session, *, threshold: float = 0.6) -> TextClassifier:
    """The active model; on a fresh install, one trained from the seed set (a few seconds).

    Concurrent first starts may both train; the caller should serialize this (an advisory lock
    on PostgreSQL) or retry load_active after an IntegrityError on commit.
    """
    model = load_active(db)
    if model is not None:
        return model
    examples = seed_examples()
    model, evaluation = train_and_evaluate(examples, threshold=threshold)
    save_model(db, model, training_size=len(examples), evaluation=evaluation)
    return model


def train_and_evaluate(
    examples: list[Example], *, threshold: float, seed: int = 0
) -> tuple[TextClassifier, dict[str, Any]]:
    """Train once on every example; evaluate on the out-of-fold guesses made while training.

    Each guess comes from a fold model that did not see its example, so the evaluation is
    honest about unseen tickets without a second training run on a held-out split.
    """
    trained = train_out_of_fold(examples, seed=seed)
    return trained.model, evaluate_out_of_fold(trained, examples, threshold=threshold)


def _remember(model: TextClassifier) -> None:
    with _LOCK:
        _CACHE[model.version] = model
        _CACHE.move_to_end(model.version)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
