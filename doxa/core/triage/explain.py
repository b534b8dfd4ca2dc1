"""Why a ticket got its category: the word n-grams that pushed the chosen label the most.

A linear model's score for a label is a sum over the ticket's features of weight x value, so
each term's share is exact, not an approximation. Only word n-grams are shown (character
n-grams weigh too, but "ssw" explains nothing to an agent), and the urgency cue tokens are
left out: they are there for priority, as are terms with a word under three letters.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.pipeline import FeatureUnion
from sklearn.svm import LinearSVC

from doxa.core.triage.calibration import Matrix

TOP_TERMS = 5


def word_terms(vectorizer: FeatureUnion) -> NDArray[Any]:
    """The word n-gram of each of the first (word) block's columns."""
    vocabulary: dict[str, int] = vectorizer.transformer_list[0][1].vocabulary_
    terms = np.empty(len(vocabulary), dtype=object)
    for term, column in vocabulary.items():
        terms[column] = term
    return terms


def top_terms(
    svm: LinearSVC,
    features: Matrix,
    chosen: NDArray[np.int64],
    terms: NDArray[Any],
    *,
    limit: int = TOP_TERMS,
) -> list[tuple[str, ...]]:
    """Per row, up to `limit` terms with the largest positive push towards its chosen label."""
    coef, classes = svm.coef_, list(svm.classes_)
    words = len(terms)
    explained = []
    for i, label in enumerate(chosen):
        row = features[i]
        keep = row.indices < words
        columns, values = row.indices[keep], row.data[keep]
        if coef.shape[0] == 1:  # binary: one weight vector, for the second class
            weights = coef[0, columns] * (1.0 if label == classes[1] else -1.0)
        else:
            weights = coef[classes.index(label), columns]
        push = values * weights
        order = np.argsort(-push)
        picked = (str(terms[columns[j]]) for j in order if push[j] > 0)
        explained.append(tuple(term for term in picked if _readable(term))[:limit])
    return explained


def _readable(term: str) -> bool:
    # "i", "my", "reset i" weigh in the sum, but tell an agent nothing.
    return "__" not in term and all(len(word) >= 3 for word in term.split())
