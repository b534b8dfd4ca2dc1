"""The local text classifier: word and character n-grams, a linear model per field.

Each field (category, priority) has a class-balanced linear SVM over TF-IDF word and character
n-grams, so rare labels are not drowned by the common ones (macro-F1). Its raw scores are not
probabilities, and the balancing makes them pessimistic on common labels; the confidence of a
prediction therefore comes from a separate calibrator: a logistic regression fitted on
out-of-fold scores that estimates "the predicted label is right". That is exactly what the
threshold compares against: at confidence 0.8, about 8 tickets in 10 are labeled correctly.

The text it reads is in `features`, the calibrator in `calibration`, its scoring in
`evaluation`; an example is `data.Example`, an answer `prediction.Prediction`. This module and
those that import scikit-learn are imported only where a model is trained, loaded or used.
Pickled models name the classes here: `TextClassifier` and `_FieldModel` must stay in this module.
"""

from __future__ import annotations

import hashlib
import pickle
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import KFold
from sklearn.pipeline import FeatureUnion
from sklearn.svm import LinearSVC

from doxa.core.errors import InvalidInput
from doxa.core.triage import calibration, explain
from doxa.core.triage.calibration import FloatArray, Matrix
from doxa.core.triage.data import Example
from doxa.core.triage.features import ticket_text, with_cues
from doxa.core.triage.prediction import Prediction
from doxa.core.triage.tfidf import TfidfUnion

FIELDS = ("category", "priority")


@dataclass(frozen=True)
class Design:
    """The choices the benchmark measured (bench/classifier.py); defaults are the chosen ones."""

    # The SVM's C is chosen per field, among these, by out-of-fold macro-F1 on the training
    # examples (the same folds that fit the calibrator): Endava's few-row labels want more
    # regularisation than the multilingual set's, and a help desk's data is either.
    c: tuple[float, ...] = (0.5, 0.25, 1.0)  # the first wins a tie
    balanced: bool = True
    loss: str = "squared_hinge"
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (2, 5)
    max_features: int = 200_000
    folds: int = 3
    tol: float = 1e-2


@dataclass
class _FieldModel:
    """One field's classifier and its correctness calibrator."""

    labels: list[str]
    svm: LinearSVC | None  # None when only one label was ever seen
    calibrator: LogisticRegression | float  # a float when every out-of-fold guess agreed

    def predict(self, features: Matrix) -> tuple[list[str], FloatArray]:
        labels, confidence, _ = self.decide(features)
        return labels, confidence

    def decide(self, features: Matrix) -> tuple[list[str], FloatArray, NDArray[np.int64]]:
        """Labels, confidences, and the chosen label indices (for the explanation)."""
        n = features.shape[0]
        if self.svm is None:
            return [self.labels[0]] * n, np.ones(n), np.zeros(n, dtype=np.int64)
        scores = calibration.decision_scores(self.svm, features, len(self.labels))
        chosen = scores.argmax(axis=1)
        confidence = calibration.confidence(self.calibrator, scores, chosen, len(self.labels))
        return [self.labels[i] for i in chosen], confidence, chosen

    def explain(
        self, features: Matrix, chosen: NDArray[np.int64], terms: NDArray[Any]
    ) -> list[tuple[str, ...]]:
        if self.svm is None:
            return [()] * features.shape[0]
        return explain.top_terms(self.svm, features, chosen, terms)


@dataclass
class TextClassifier:
    """A category model and a priority model over one shared text vectorizer."""

    vectorizer: FeatureUnion
    fields: dict[str, _FieldModel]
    version: str
    trained_at: float = field(default_factory=time.time)
    # Built on first use from the vectorizer, never pickled: the word n-gram per column, and
    # the vectorizer's transform without scikit-learn's per-call checks.
    _terms: NDArray[Any] | None = field(default=None, init=False, repr=False, compare=False)
    _tfidf: TfidfUnion | None = field(default=None, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_terms": None, "_tfidf": None}

    @property
    def labels(self) -> dict[str, list[str]]:
        return {name: list(model.labels) for name, model in self.fields.items()}

    @property
    def terms(self) -> NDArray[Any]:
        if self._terms is None:
            self._terms = explain.word_terms(self.vectorizer)
        return self._terms

    def predict(self, subject: str, body: str) -> Prediction:
        return self.predict_many([(subject, body)])[0]

    def predict_many(self, tickets: Sequence[tuple[str, str]]) -> list[Prediction]:
        return self.predict_texts([ticket_text(subject, body) for subject, body in tickets])

    def predict_texts(self, texts: Sequence[str]) -> list[Prediction]:
        if self._tfidf is None:
            self._tfidf = TfidfUnion(self.vectorizer)
        features = self._tfidf.transform([with_cues(text) for text in texts])
        category, category_conf, chosen = self.fields["category"].decide(features)
        priority, priority_conf = self.fields["priority"].predict(features)
        why = self.fields["category"].explain(features, chosen, self.terms)
        return [
            Prediction(
                category=category[i],
                category_confidence=float(category_conf[i]),
                priority=priority[i],
                priority_confidence=float(priority_conf[i]),
                model_version=self.version,
                explanation=why[i],
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
    texts = [with_cues(example.text) for example in examples]
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
    folds = KFold(n_splits=min(design.folds, len(y)), shuffle=True, random_state=seed)
    splits = [(fit, test) for fit, test in folds.split(features) if len(set(y[fit])) >= 2]
    candidates = []
    for c in design.c:
        oof = np.zeros((len(y), len(classes)))
        for fit_idx, test_idx in splits:
            svm = _svm(design, c, seed).fit(features[fit_idx], y[fit_idx])
            oof[test_idx] = calibration.decision_scores(svm, features[test_idx], len(classes))
        candidates.append((_macro_f1(y, oof.argmax(axis=1)), c, oof))
    # max() keeps the first of equal scores: the order of Design.c breaks ties.
    _, chosen_c, oof_scores = max(candidates, key=lambda candidate: candidate[0])
    calibrator = calibration.fit_calibrator(oof_scores, y, len(classes), seed)
    chosen = oof_scores.argmax(axis=1)
    confidence = calibration.confidence(calibrator, oof_scores, chosen, len(classes))
    guesses = FieldGuesses(
        {row: (classes[c], float(p)) for row, c, p in zip(rows, chosen, confidence, strict=True)},
        folds=folds.get_n_splits(),
    )
    svm = _svm(design, chosen_c, seed).fit(features, y)
    svm.coef_ = svm.coef_.astype(np.float32)  # halves the blob; scores need no more precision
    return _FieldModel(classes, svm, calibrator), guesses


def _macro_f1(truth: NDArray[np.int64], chosen: NDArray[np.int64]) -> float:
    """Macro-F1 over the labels present in `truth`, as the evaluation reports it."""
    labels = np.unique(truth)
    return float(f1_score(truth, chosen, labels=labels, average="macro", zero_division=0))


def _svm(design: Design, c: float, seed: int) -> LinearSVC:
    return LinearSVC(
        C=c,
        class_weight="balanced" if design.balanced else None,
        loss=design.loss,
        tol=design.tol,
        random_state=seed,
        max_iter=2000,
    )
