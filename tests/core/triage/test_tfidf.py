from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion

from doxa.core.triage.calibration import Matrix
from doxa.core.triage.data import seed_examples
from doxa.core.triage.features import with_cues
from doxa.core.triage.text_classifier import TextClassifier
from doxa.core.triage.tfidf import TfidfUnion
from tests.core.triage.conftest import ODD


def _same(ours: Matrix, theirs: Matrix) -> None:
    for name in ("indptr", "indices", "data"):
        assert np.array_equal(getattr(ours, name), getattr(theirs, name)), name
    assert (type(ours), ours.dtype, ours.shape) == (type(theirs), theirs.dtype, theirs.shape)


class TestTfidfUnion:
    def test_each_ticket_gets_the_unions_matrix_bit_for_bit(
        self, seed_model: TextClassifier
    ) -> None:
        ours = TfidfUnion(seed_model.vectorizer)
        for text in [with_cues(e.text) for e in seed_examples()] + ODD:
            _same(ours.transform([text]), seed_model.vectorizer.transform([text]).tocsr())

    def test_many_tickets_at_once_get_the_unions_matrix(self, seed_model: TextClassifier) -> None:
        texts = [with_cues(e.text) for e in seed_examples()] + ODD
        ours = TfidfUnion(seed_model.vectorizer).transform(texts)
        _same(ours, seed_model.vectorizer.transform(texts).tocsr())

    @pytest.mark.parametrize("options", [{"binary": True}, {"norm": "l1"}, {"use_idf": False}])
    def test_other_settings_go_through_scikit_learn(self, options: dict[str, object]) -> None:
        texts = [e.text for e in seed_examples()[:40]]
        union = FeatureUnion([("word", TfidfVectorizer(**options))]).fit(texts)
        _same(TfidfUnion(union).transform(texts[:5]), union.transform(texts[:5]).tocsr())
