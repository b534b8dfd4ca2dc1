from __future__ import annotations

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.pipeline import FeatureUnion

from doxa.core.triage import similar
from doxa.core.triage.data import seed_examples
from tests.core.triage.conftest import ODD


def _through_scikit_learn(text: str) -> bytes:
    """The vector as stored on tickets before: a union of the two hashing vectorizers."""
    word = HashingVectorizer(ngram_range=(1, 2), n_features=128, token_pattern=r"(?u)\b\w+\b")
    char = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), n_features=128)
    union = FeatureUnion([("word", word), ("char", char)])
    dense = np.asarray(union.transform([text]).toarray(), dtype=np.float32)[0]
    norm = float(np.linalg.norm(dense))
    return bytes((dense / norm if norm else dense).astype(np.float16).tobytes())


class TestVector:
    def test_vector_is_the_hashing_vectorizers_bit_for_bit(self) -> None:
        for text in [e.text for e in seed_examples()] + ODD:
            assert similar.vector(text) == _through_scikit_learn(text), text

    def test_vector_has_unit_length(self) -> None:
        vector = np.frombuffer(similar.vector("Printer offline again"), dtype=np.float16)
        assert len(vector) == similar.DIMENSIONS
        assert abs(float(np.linalg.norm(vector.astype(np.float32))) - 1.0) < 1e-2
