"""The local text classifier: word and character n-grams, a linear model per field.

Each field (category, priority) has a class-balanced linear SVM over TF-IDF word and character
n-grams, so rare labels are not drowned by the common ones (macro-F1). Its raw scores are not
probabilities, and the balancing makes them pessimistic on common labels; the confidence of a
prediction therefore comes from a separate calibrator: a logistic regression fitted on
out-of-fold scores that estimates "the predicted label is right". That is exactly what the
threshold compares against: at confidence 0.8, about 8 tickets in 10 are labeled correctly.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import secrets
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support
from sklearn.model_selection import KFold
from sklearn.pipeline import FeatureUnion
from sklearn.svm import LinearSVC

from doxa.core.errors import InvalidInput

FIELDS = ("category", "priority")
# A scipy.sparse CSR matrix (scipy ships no type stubs).
Matrix: TypeAlias = Any
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Example:
    """A labeled ticket; a missing label means the example trains only the other field."""

    text: str
    category: str | None
    priority: str | None

    def label(self, name: str) -> str | None:
        return self.category if name == "category" else self.priority


@dataclass(frozen=True)
class Prediction:
    category: str
    category_confidence: float
    priority: str
    priority_confidence: float
    model_version: str


@dataclass(frozen=True)
class Design:
    """The choices the benchmark measured (bench/classifier.py); defaults are the chosen ones."""

    c: float = 0.5
    balanced: bool = True
    loss: str = "squared_hinge"
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (2, 5)
    max_features: int = 200_000
    folds: int = 3
    tol: float = 1e-2


def ticket_text(subject: str, body: str) -> str:
    return f"{subject}\n{body}"


# Urgency cues in the shipped languages; the priority model sees them as extra tokens, so a
# "server down, all users blocked" ticket weighs the same whichever words carry the urgency.
_URGENT = re.compile(
    r"\b(urgent\w*|asap|immediately|emergency|critical|outage|down|blocked|blocking|"
    r"cannot|can't|unable|all users|everyone|production|dringend|sofort|ausfall|"
    r"urgente|inmediato|caído|caida|bloqueado|bloqué|panne|immédiatement)\b",
    re.IGNORECASE,
)
_RELAXED = re.compile(
    r"\b(whenever|no rush|no hurry|when you have time|suggestion|idea|would be nice|"
    r"curious|just wondering|keine eile|sin prisa|pas urgent)\b",
    re.IGNORECASE,
)


def _with_cues(text: str) -> str:
    cues = ["__urgent__"] * len(_URGENT.findall(text)) + ["__relaxed__"] * len(
        _RELAXED.findall(text)
    )
    if text.count("!") >= 2:
        cues.append("__exclaim__")
    return text + "\n" + " ".join(cues)


@dataclass
class _FieldModel:
    """One field's classifier and its correctness calibrator."""

    labels: list[str]
    svm: LinearSVC | None  # None when only one label was ever seen
    calibrator: LogisticRegression | float  # a float when every out-of-fold guess agreed

    def predict(self, features: Matrix) -> tuple[list[str], FloatArray]:
        if self.svm is None:
            n = features.shape[0]
            return [self.labels[0]] * n, np.ones(n)
        scores = _scores(self.svm, features, len(self.labels))
        chosen = scores.argmax(axis=1)
        confidence = _confidence(self.calibrator, scores, chosen, len(self.labels))
        return [self.labels[i] for i in chosen], confidence


@dataclass
class TextClassifier:
    """A category model and a priority model over one shared text vectorizer."""

    vectorizer: FeatureUnion
    fields: dict[str, _FieldModel]
    version: str
    trained_at: float = field(default_factory=time.time)

    @property
    def labels(self) -> dict[str, list[str]]:
        return {name: list(model.labels) for name, model in self.fields.items()}

    def predict(self, subject: str, body: str) -> Prediction:
        return self.predict_many([(subject, body)])[0]

    def predict_many(self, tickets: Sequence[tuple[str, str]]) -> list[Prediction]:
        return self.predict_texts([ticket_text(subject, body) for subject, body in tickets])

    def predict_texts(self, texts: Sequence[str]) -> list[Prediction]:
        features = self.vectorizer.transform([_with_cues(text) for text in texts])
        category, category_conf = self.fields["category"].predict(features)
        priority, priority_conf = self.fields["priority"].predict(features)
        return [
            Prediction(
                category=category[i],
                category_confidence=float(category_conf[i]),
                priority=priority[i],
                priority_confidence=float(priority_conf[i]),
                model_version=self.version,
            )
            for i in range(len(texts))
        ]

    def to_bytes(self) -> bytes:
        # Plain pickle: it loads ~10x faster than joblib's format from bytes, and the float32
        # weights would barely compress anyway.
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_bytes(cls, blob: bytes) -> TextClassifier:
        # Pickle runs code on load: blobs only ever come from our own classifier_model table,
        # written by save_model; never load one from a user upload or over the network.
        model = pickle.loads(blob)  # noqa: S301 - our own table only, see above
        if not isinstance(model, cls):
            raise InvalidInput("the stored blob is not a DOXA text classifier")
        return model


@dataclass(frozen=True)
class FieldGuesses:
    """One field's out-of-fold guesses, keyed by the index of the example in the training list.

    Each guess comes from a fold model that never saw that example, with the confidence the
    calibrator gives its scores: an honest preview of the model on unseen tickets.
    """

    guesses: dict[int, tuple[str, float]]
    folds: int  # 0 when the field had one label and needed no model


@dataclass(frozen=True)
class Trained:
    """A fitted classifier and what its cross-fitting learned about it (never pickled)."""

    model: TextClassifier
    out_of_fold: dict[str, FieldGuesses]


def train(
    examples: Sequence[Example], *, seed: int = 0, design: Design | None = None
) -> TextClassifier:
    """Fit both fields on the examples (an unlabeled field skips that example)."""
    return train_out_of_fold(examples, seed=seed, design=design).model


def train_out_of_fold(
    examples: Sequence[Example], *, seed: int = 0, design: Design | None = None
) -> Trained:
    """Fit both fields, keeping the out-of-fold guesses the confidence calibrator was fitted on.

    The vectorizer's vocabulary and IDF weights come from every example (no labels involved);
    the classifiers behind each guess never saw the example they guessed.
    """
    design = design or Design()
    texts = [_with_cues(example.text) for example in examples]
    if not texts:
        raise InvalidInput("no training examples")
    vectorizer = _vectorizer(design, min_df=2 if len(texts) >= 50 else 1)
    try:
        features = vectorizer.fit_transform(texts).tocsr()
    except ValueError as exc:  # an empty vocabulary: no example has any word
        raise InvalidInput(f"cannot train on these texts: {exc}") from None
    for _, part in vectorizer.transformer_list:
        # Every pruned n-gram is kept here "for introspection"; it would triple the blob.
        part.stop_words_ = None
    # liblinear wants sorted float64 CSR; converting once spares a copy and a sort per fit.
    features = features.astype(np.float64)
    features.sort_indices()
    fields: dict[str, _FieldModel] = {}
    out_of_fold: dict[str, FieldGuesses] = {}
    for name in FIELDS:
        rows = [i for i, example in enumerate(examples) if example.label(name)]
        labels = [str(examples[i].label(name)) for i in rows]
        if not labels:
            raise InvalidInput(f"no example has a {name}")
        fields[name], out_of_fold[name] = _fit_field(features[rows], labels, rows, design, seed)
    digest = hashlib.sha256(
        "\n".join(f"{e.category}\t{e.priority}\t{e.text}" for e in examples).encode()
    ).hexdigest()[:10]
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    # The data digest says what it learned from; the random part keeps two runs on the
    # same data in the same second (two processes, a retrain) distinct versions.
    version = f"tfidf-svm-{stamp}-{digest}-{secrets.token_hex(3)}"
    model = TextClassifier(vectorizer, fields, version=version)
    return Trained(model, out_of_fold)


def _vectorizer(design: Design, *, min_df: int) -> FeatureUnion:
    common = {"sublinear_tf": True, "lowercase": True, "dtype": np.float32}
    return FeatureUnion(
        [
            (
                "word",
                TfidfVectorizer(
                    ngram_range=design.word_ngrams,
                    max_features=design.max_features // 2,
                    token_pattern=r"(?u)\b\w+\b",  # noqa: S106 - a regex, not a secret
                    **common,
                ),
            ),
            (
                "char",
                TfidfVectorizer(
                    analyzer="char_wb",
                    ngram_range=design.char_ngrams,
                    max_features=design.max_features // 2,
                    min_df=min_df,
                    **common,
                ),
            ),
        ]
    )


def _fit_field(
    features: Matrix, labels: list[str], rows: list[int], design: Design, seed: int
) -> tuple[_FieldModel, FieldGuesses]:
    classes = sorted(set(labels))
    if len(classes) == 1:
        return _FieldModel(classes, None, 1.0), FieldGuesses(
            {row: (classes[0], 1.0) for row in rows}, folds=0
        )
    y = np.array([classes.index(label) for label in labels])
    oof_scores = np.zeros((len(y), len(classes)))
    folds = KFold(n_splits=min(design.folds, len(y)), shuffle=True, random_state=seed)
    for train_idx, test_idx in folds.split(features):
        if len(set(y[train_idx])) < 2:
            continue
        svm = _svm(design, seed).fit(features[train_idx], y[train_idx])
        oof_scores[test_idx] = _scores(svm, features[test_idx], len(classes))
    calibrator = _fit_calibrator(oof_scores, y, len(classes), seed)
    chosen = oof_scores.argmax(axis=1)
    confidence = _confidence(calibrator, oof_scores, chosen, len(classes))
    guesses = FieldGuesses(
        {row: (classes[c], float(p)) for row, c, p in zip(rows, chosen, confidence, strict=True)},
        folds=folds.get_n_splits(),
    )
    svm = _svm(design, seed).fit(features, y)
    svm.coef_ = svm.coef_.astype(np.float32)  # halves the blob; scores need no more precision
    return _FieldModel(classes, svm, calibrator), guesses


def _svm(design: Design, seed: int) -> LinearSVC:
    return LinearSVC(
        C=design.c,
        class_weight="balanced" if design.balanced else None,
        loss=design.loss,
        tol=design.tol,
        random_state=seed,
        max_iter=2000,
    )


def _scores(svm: LinearSVC, features: Matrix, n_classes: int) -> FloatArray:
    """Decision scores with one column per label, even if this SVM never saw some labels."""
    raw = np.asarray(svm.decision_function(features), dtype=np.float64)
    if raw.ndim == 1:  # binary: sklearn returns the positive class's score only
        raw = np.column_stack([-raw, raw])
    scores = np.full((features.shape[0], n_classes), -10.0)
    scores[:, svm.classes_] = raw
    return scores


def _calibration_features(scores: FloatArray, chosen: NDArray[np.int64], n: int) -> FloatArray:
    ordered = np.sort(scores, axis=1)
    top = ordered[:, -1]
    margin = top - ordered[:, -2]
    onehot = np.eye(n)[chosen]
    return np.column_stack([top, margin, np.minimum(margin, 1.0), onehot])


def _fit_calibrator(
    scores: FloatArray, y: NDArray[np.int64], n: int, seed: int
) -> LogisticRegression | float:
    chosen = scores.argmax(axis=1)
    correct = (chosen == y).astype(int)
    if correct.min() == correct.max():  # always right (or always wrong) out of fold
        return float(correct.mean())
    calibrator = LogisticRegression(C=1.0, max_iter=1000, random_state=seed)
    with warnings.catch_warnings():
        # lbfgs may stop a hair short on tiny seed sets; the fit is still usable.
        warnings.simplefilter("ignore", ConvergenceWarning)
        calibrator.fit(_calibration_features(scores, chosen, n), correct)
    return calibrator


def _confidence(
    calibrator: LogisticRegression | float,
    scores: FloatArray,
    chosen: NDArray[np.int64],
    n: int,
) -> FloatArray:
    if isinstance(calibrator, float):
        return np.full(len(chosen), calibrator)
    probability = calibrator.predict_proba(_calibration_features(scores, chosen, n))[:, 1]
    return np.asarray(probability, dtype=np.float64)


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
    return report


def field_report(pairs: Sequence[tuple[str, str]]) -> dict[str, object]:
    """Accuracy, macro-F1 and per-label precision/recall/F1/support.

    Labels are every label that is true or predicted, so a label predicted but never true
    counts in macro-F1 with F1 0 (and an undefined precision or recall counts as 0).
    """
    if not pairs:
        return {"size": 0, "accuracy": 0.0, "macro_f1": 0.0, "per_label": {}}
    truth = [true for true, _ in pairs]
    guesses = [guess for _, guess in pairs]
    labels = sorted(set(truth) | set(guesses))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, guesses, labels=labels, zero_division=0.0
    )
    # Plain floats and ints: the report is stored as JSON.
    per_label = {
        label: {
            "precision": float(precision[i]), "recall": float(recall[i]),
            "f1": float(f1[i]), "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }  # fmt: skip
    return {
        "size": len(pairs),
        "accuracy": float(accuracy_score(truth, guesses)),
        "macro_f1": float(
            f1_score(truth, guesses, labels=labels, average="macro", zero_division=0.0)
        ),
        "per_label": per_label,
    }
