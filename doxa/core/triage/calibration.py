"""SVM decision scores -> a calibrated confidence that the predicted label is right.

The calibrator is a logistic regression fitted on out-of-fold scores: at confidence 0.8,
about 8 predictions in 10 are right.
"""

from __future__ import annotations

import warnings
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

# A scipy.sparse CSR matrix (scipy ships no type stubs).
Matrix: TypeAlias = Any
FloatArray = NDArray[np.float64]


def decision_scores(svm: LinearSVC, features: Matrix, n_classes: int) -> FloatArray:
    """Decision scores with one column per label, even if this SVM never saw some labels."""
    # What `decision_function` computes, without its input checks (0.11-0.23 ms a call, the
    # product itself 0.01-0.02 ms): the features come from our vectorizer, at the SVM's width.
    raw = np.asarray(features @ svm.coef_.T + svm.intercept_, dtype=np.float64)
    if raw.shape[1] == 1:  # binary: one weight vector, for the positive class
        raw = np.column_stack([-raw[:, 0], raw[:, 0]])
    result = np.full((features.shape[0], n_classes), -10.0)
    result[:, svm.classes_] = raw
    return result


def _calibration_features(scores: FloatArray, chosen: NDArray[np.int64], n: int) -> FloatArray:
    ordered = np.sort(scores, axis=1)
    top = ordered[:, -1]
    margin = top - ordered[:, -2]
    onehot = np.eye(n)[chosen]
    return np.column_stack([top, margin, np.minimum(margin, 1.0), onehot])


def fit_calibrator(
    scores: FloatArray, y: NDArray[np.int64], n: int, seed: int
) -> LogisticRegression | float:
    """A calibrator for out-of-fold `scores`; a constant when every guess was right (or wrong)."""
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


def confidence(
    calibrator: LogisticRegression | float,
    scores: FloatArray,
    chosen: NDArray[np.int64],
    n: int,
) -> FloatArray:
    """The estimated probability that each `chosen` label is right."""
    if isinstance(calibrator, float):
        return np.full(len(chosen), calibrator)
    # `predict_proba` of a binary logistic regression (the target is right/wrong), without its
    # input checks: 0.01-0.02 ms a call instead of 0.11-0.23.
    logit = _calibration_features(scores, chosen, n) @ calibrator.coef_.T + calibrator.intercept_
    return np.asarray(expit(logit[:, 0]), dtype=np.float64)
