"""How good a classifier is: accuracy, macro-F1, per-label table, coverage at the threshold."""

from __future__ import annotations

from collections.abc import Sequence

from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from doxa.core.triage.data import Example
from doxa.core.triage.text_classifier import FIELDS, TextClassifier, Trained

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def evaluate(
    model: TextClassifier, examples: Sequence[Example], *, threshold: float
) -> dict[str, object]:
    """Accuracy, macro-F1 and a per-label table per field, and coverage vs. accuracy.

    Coverage is the share of examples whose category confidence is at or above the threshold;
    `accuracy_at_threshold` is the category accuracy on that share.
    """
    predictions = model.predict_texts([example.text for example in examples])
    guesses = {
        name: {
            i: (getattr(prediction, name), getattr(prediction, f"{name}_confidence"))
            for i, (example, prediction) in enumerate(zip(examples, predictions, strict=True))
            if example.label(name)
        }
        for name in FIELDS
    }
    return _report(examples, guesses, threshold=threshold)


def evaluate_out_of_fold(
    trained: Trained, examples: Sequence[Example], *, threshold: float
) -> dict[str, object]:
    """`evaluate`'s report from the out-of-fold guesses on the examples `trained` was fit on."""
    guesses = {name: trained.out_of_fold[name].guesses for name in FIELDS}
    report = _report(examples, guesses, threshold=threshold)
    folds = max(part.folds for part in trained.out_of_fold.values())
    report["method"] = f"{folds}-fold out-of-fold on {len(examples)} examples"
    return report


def _report(
    examples: Sequence[Example],
    guesses: dict[str, dict[int, tuple[str, float]]],
    *,
    threshold: float,
) -> dict[str, object]:
    report: dict[str, object] = {"size": len(examples), "threshold": threshold}
    for name in FIELDS:
        report[name] = field_report(
            [(str(examples[i].label(name)), label) for i, (label, _) in guesses[name].items()]
        )
    category = guesses["category"]
    covered = [
        examples[i].category == label
        for i, (label, confidence) in category.items()
        if confidence >= threshold
    ]
    report["coverage"] = len(covered) / len(category) if category else 0.0
    report["accuracy_at_threshold"] = sum(covered) / len(covered) if covered else 0.0
    report["thresholds"] = threshold_curve(
        [(confidence, examples[i].category == label) for i, (label, confidence) in category.items()]
    )
    return report


def threshold_curve(
    outcomes: Sequence[tuple[float, bool]], thresholds: Sequence[float] = THRESHOLDS
) -> list[dict[str, float]]:
    """Coverage and accuracy on the covered share at each threshold, to choose
    AI_CONFIDENCE_THRESHOLD from data: (confidence, was right) per category guess."""
    curve = []
    for threshold in thresholds:
        covered = [right for confidence, right in outcomes if confidence >= threshold]
        curve.append(
            {
                "threshold": threshold,
                "coverage": len(covered) / len(outcomes) if outcomes else 0.0,
                "accuracy": sum(covered) / len(covered) if covered else 0.0,
            }
        )
    return curve


def field_report(pairs: Sequence[tuple[str, str]]) -> dict[str, object]:
    """Accuracy, macro-F1 and per-label precision/recall/F1/support.

    Labels are the true labels only: a help desk's evaluation file defines its taxonomy, so a
    guess outside it is simply wrong (it lowers that row's label's recall) and adds no label
    of its own to macro-F1. An undefined precision or recall counts as 0.
    """
    if not pairs:
        return {"size": 0, "accuracy": 0.0, "macro_f1": 0.0, "per_label": {}}
    truth = [true for true, _ in pairs]
    guesses = [guess for _, guess in pairs]
    labels = sorted(set(truth))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, guesses, labels=labels, zero_division=0.0
    )
    # Plain floats and ints: the report is stored as JSON.
    per_label = {
        label: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }
    return {
        "size": len(pairs),
        "accuracy": float(accuracy_score(truth, guesses)),
        "macro_f1": float(
            f1_score(truth, guesses, labels=labels, average="macro", zero_division=0.0)
        ),
        "per_label": per_label,
    }
