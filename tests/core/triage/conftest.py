from __future__ import annotations

import pytest

from doxa.core.triage.data import seed_examples
from doxa.core.triage.text_classifier import TextClassifier, train

# Texts that trip hand-written text code: whitespace of every kind, case folding that changes
# length, one-letter and empty texts, no spaces at all.
ODD = [
    "",
    "!!",
    "a",
    " \t\n ",
    "İstanbul ß ﬁ ÉCOLE",
    "x\x0by\x1cz\u2028w\u00a0v\r\nu",
    "日本語です",
]


@pytest.fixture(scope="session")
def seed_model() -> TextClassifier:
    return train(seed_examples())
