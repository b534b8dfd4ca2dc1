from __future__ import annotations

import pytest

from doxa.core.triage.data import seed_examples
from doxa.core.triage.model import TextClassifier, train


@pytest.fixture(scope="session")
def seed_model() -> TextClassifier:
    return train(seed_examples())
