"""Repeated stratified cross-validation, paired fold by fold, and its corrected interval.

Two models are trained on the same training folds and scored on the same test folds, so each
fold gives one paired difference of macro-F1. Folds of repeated cross-validation share most of
their training rows, so the differences are correlated and the plain t-interval over them is
far too narrow (Nadeau & Bengio 2003, "Inference for the generalization error"; Bouckaert &
Frank 2004). The corrected resampled t-test widens the variance from s²/J to
(1/J + n_test/n_train)·s² over the J = folds x repeats differences, with J - 1 degrees of
freedom: that is the interval reported here.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedKFold
from sklearn.pipeline import FeatureUnion, Pipeline

# texts, labels -> a function from texts to predicted labels
Fit = Callable[[list[str], list[str]], Callable[[list[str]], list[str]]]

# The baseline's C grid: a decade and a half either side of scikit-learn's default.
C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


def macro_f1(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """Macro-F1 over the labels of `truth` (as `doxa classifier eval` reports it)."""
    score = f1_score(truth, predicted, labels=sorted(set(truth)), average="macro", zero_division=0)
    return float(score)


def baseline_features() -> FeatureUnion:
    """Word unigrams+bigrams and character 2-5-grams (within words), sublinear TF-IDF."""
    return FeatureUnion(
        [
            ("word", TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1)),
            (
                "char",
                TfidfVectorizer(
                    sublinear_tf=True, analyzer="char_wb", ngram_range=(2, 5), min_df=2
                ),
            ),
        ]
    )


def _logistic(c: float) -> LogisticRegression:
    return LogisticRegression(C=c, class_weight="balanced", max_iter=3000, tol=1e-3)


def choose_c(
    texts: list[str],
    labels: list[str],
    *,
    grid: Sequence[float] = C_GRID,
    folds: int = 3,
    seed: int = 0,
) -> tuple[float, dict[float, float]]:
    """The C with the best mean macro-F1 over inner stratified folds of these rows only.

    The features are refitted on each inner training part, so the inner validation rows
    never shape the vocabulary or the IDF weights either.
    """
    y = np.array(labels)
    scores: dict[float, list[float]] = {c: [] for c in grid}
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # labels with fewer rows than folds
        splits = list(splitter.split(texts, y))
    for train_idx, valid_idx in splits:
        features = baseline_features()
        fit_x = features.fit_transform([texts[i] for i in train_idx])
        valid_x = features.transform([texts[i] for i in valid_idx])
        for c in grid:
            predicted = _logistic(c).fit(fit_x, y[train_idx]).predict(valid_x)
            scores[c].append(macro_f1(list(y[valid_idx]), list(predicted)))
    means = {c: float(np.mean(values)) for c, values in scores.items()}
    return max(grid, key=lambda c: (means[c], -c)), means


def tuned_baseline(texts: list[str], labels: list[str]) -> Pipeline:
    """Word + char TF-IDF and class-balanced logistic regression, C chosen by `choose_c`."""
    c, _ = choose_c(texts, labels)
    return Pipeline([("features", baseline_features()), ("lr", _logistic(c))]).fit(texts, labels)


@dataclass(frozen=True)
class Fold:
    """One model's score on one test fold."""

    repeat: int
    fold: int
    model: str
    macro_f1: float
    test_size: int
    train_size: int
    seconds: float


def repeated_cv(
    texts: list[str],
    labels: list[str],
    models: dict[str, Fit],
    *,
    folds: int = 5,
    repeats: int = 5,
    seed: int = 0,
    done: Container[tuple[int, int, str]] = (),
    report: Callable[[Fold], None] = lambda _: None,
) -> None:
    """Every model on the same stratified folds, `repeats` times over; `report` gets each
    score as it comes, and a (repeat, fold, model) that is `done` is skipped (a resumed run)."""
    splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # labels with fewer rows than folds
        splits = list(splitter.split(texts, labels))
    for k, (train_idx, test_idx) in enumerate(splits):
        fit_texts = [texts[i] for i in train_idx]
        fit_labels = [labels[i] for i in train_idx]
        test_texts = [texts[i] for i in test_idx]
        truth = [labels[i] for i in test_idx]
        for name, fit in models.items():
            if (k // folds, k % folds, name) in done:
                continue
            started = time.perf_counter()
            score = macro_f1(truth, fit(fit_texts, fit_labels)(test_texts))
            seconds = time.perf_counter() - started
            report(Fold(k // folds, k % folds, name, score, len(test_idx), len(train_idx), seconds))


@dataclass(frozen=True)
class Comparison:
    mean_a: float
    mean_b: float
    mean_difference: float  # a - b
    low: float
    high: float
    p_value: float  # two-sided
    folds: int


def corrected_interval(
    differences: Sequence[float], *, test_share: float, confidence: float = 0.95
) -> tuple[float, float, float, float]:
    """Nadeau & Bengio's corrected resampled t: (mean, low, high, two-sided p).

    `test_share` is n_test / n_train of one fold (0.25 for 5-fold).
    """
    d = np.asarray(differences, dtype=np.float64)
    j = len(d)
    mean = float(d.mean())
    variance = float(d.var(ddof=1)) * (1 / j + test_share)
    if variance == 0.0:
        return mean, mean, mean, 0.0 if mean else 1.0
    spread = math.sqrt(variance)
    quantile = float(stats.t.ppf(0.5 + confidence / 2, j - 1))
    p_value = float(2 * stats.t.sf(abs(mean) / spread, j - 1))
    return mean, mean - quantile * spread, mean + quantile * spread, p_value


def compare(results: Sequence[Fold], a: str, b: str) -> Comparison:
    """Model a minus model b, paired on the (repeat, fold)s both have."""
    scores = {(r.repeat, r.fold, r.model): r for r in results}
    pairs = [
        (scores[key], scores[(*key[:2], b)])
        for key in sorted(scores)
        if key[2] == a and (*key[:2], b) in scores
    ]
    if len(pairs) < 2:
        raise ValueError(f"fewer than two folds scored for both {a} and {b}")
    differences = [x.macro_f1 - y.macro_f1 for x, y in pairs]
    test_share = float(np.mean([x.test_size / x.train_size for x, _ in pairs]))
    mean, low, high, p_value = corrected_interval(differences, test_share=test_share)
    return Comparison(
        float(np.mean([x.macro_f1 for x, _ in pairs])),
        float(np.mean([y.macro_f1 for _, y in pairs])),
        mean,
        low,
        high,
        p_value,
        len(pairs),
    )
