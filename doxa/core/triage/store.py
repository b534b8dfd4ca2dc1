"""Model versions in the database: save, activate, load (cached per process), seed on start-up.

The classifier's modules (scikit-learn: 0.8 s to import) are imported by the functions that load
or train a model, so a process that never classifies (`doxa --help`, a parsing worker) never
loads them."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from doxa.core.enums import Priority
from doxa.core.triage import labels
from doxa.core.triage.data import Example, seed_examples
from doxa.core.triage.models import ClassificationCorrection, ClassifierModel, TrainingExample

if TYPE_CHECKING:
    from doxa.core.triage.text_classifier import TextClassifier

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
    from doxa.core.triage.text_classifier import TextClassifier

    model = TextClassifier.from_bytes(blob)
    _remember(model)
    return model


def training_examples(db: Session) -> list[Example]:
    """What a retrain learns from: the help desk's own examples, or the seed set while there are
    none, plus staff corrections.

    On its own data, a correction to a label that is no longer in the taxonomy (a seed label
    corrected before the switch) is left out, and the seed set still teaches priority when the
    help desk's data has none.
    """
    own = [
        Example(row.text, row.category, row.priority)
        for row in db.scalars(select(TrainingExample).order_by(TrainingExample.id))
    ]
    if own:
        examples = own
        allowed: set[str] | None = {e.category for e in own if e.category}.union(
            labels.added_categories(db)
        )
        if not any(example.priority for example in own):
            examples += [Example(e.text, None, e.priority) for e in seed_examples() if e.priority]
    else:
        examples, allowed = seed_examples(), None
    corrections = db.scalars(select(ClassificationCorrection).order_by(ClassificationCorrection.id))
    for correction in corrections:
        if correction.field == "category" and (allowed is None or correction.corrected in allowed):
            examples.append(Example(correction.text, correction.corrected, None))
        elif correction.field == "priority":
            examples.append(Example(correction.text, None, correction.corrected))
    return examples


def replace_own_examples(db: Session, examples: Sequence[Example]) -> int:
    """Store a help desk's labeled export as its training data, replacing any earlier import.

    Priorities outside DOXA's own (low, normal, high, urgent) are dropped: priority is not a
    help desk's taxonomy. Returns how many examples were stored.
    """
    db.execute(delete(TrainingExample))
    known = {priority.value for priority in Priority}
    rows = [
        TrainingExample(
            text=e.text,
            category=e.category,
            priority=e.priority if e.priority in known else None,
        )
        for e in examples
    ]
    rows = [row for row in rows if row.category or row.priority]
    db.add_all(rows)
    db.flush()
    return len(rows)


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
    from doxa.core.triage.evaluation import evaluate_out_of_fold
    from doxa.core.triage.text_classifier import train_out_of_fold

    trained = train_out_of_fold(examples, seed=seed)
    return trained.model, evaluate_out_of_fold(trained, examples, threshold=threshold)


def _remember(model: TextClassifier) -> None:
    with _LOCK:
        _CACHE[model.version] = model
        _CACHE.move_to_end(model.version)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
