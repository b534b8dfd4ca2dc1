from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from doxa.core.triage import calibration
from doxa.core.triage.calibration import Matrix
from doxa.core.triage.data import Example, seed_examples
from doxa.core.triage.features import with_cues
from doxa.core.triage.text_classifier import FIELDS, TextClassifier, train


@pytest.fixture(scope="module")
def two_label_model() -> TextClassifier:
    """Binary fields: scikit-learn keeps one weight vector there, for the second label."""
    examples = [e for e in seed_examples() if e.category in ("account", "billing")]
    urgent = {"urgent", "high"}
    return train([Example(e.text, e.category, str(e.priority in urgent)) for e in examples])


@pytest.fixture(params=["seed_model", "two_label_model"])
def model(request: pytest.FixtureRequest) -> TextClassifier:
    model: TextClassifier = request.getfixturevalue(request.param)
    return model


def _features(model: TextClassifier) -> Matrix:
    texts = [with_cues(e.text) for e in seed_examples()[::7]]
    return model.vectorizer.transform(texts).tocsr()


class TestDecisionScores:
    @pytest.mark.parametrize("name", FIELDS)
    def test_scores_are_the_decision_function_bit_for_bit(
        self, model: TextClassifier, name: str
    ) -> None:
        field, features = model.fields[name], _features(model)
        assert field.svm is not None
        expected = field.svm.decision_function(features)
        if expected.ndim == 1:
            expected = np.column_stack([-expected, expected])
        scores = calibration.decision_scores(field.svm, features, len(field.labels))
        assert np.array_equal(scores, expected)


class TestConfidence:
    @pytest.mark.parametrize("name", FIELDS)
    def test_confidence_is_the_calibrators_probability_bit_for_bit(
        self, model: TextClassifier, name: str
    ) -> None:
        field, features = model.fields[name], _features(model)
        assert field.svm is not None and isinstance(field.calibrator, LogisticRegression)
        scores = calibration.decision_scores(field.svm, features, len(field.labels))
        chosen = scores.argmax(axis=1)
        inputs = calibration._calibration_features(scores, chosen, len(field.labels))
        expected = field.calibrator.predict_proba(inputs)[:, 1]
        got = calibration.confidence(field.calibrator, scores, chosen, len(field.labels))
        assert np.array_equal(got, expected)
