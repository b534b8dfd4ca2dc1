"""A ticket's language: ISO 639-1, or None when unsure.

py3langid ships its model inside the wheel (nothing is downloaded at run time) and scores a
ticket in well under a millisecond. Its probabilities are normalised over ~97 languages, so a
short or mixed text spreads them thin: below `MIN_CONFIDENCE`, or with too few letters to go
on, the answer is None rather than a guess.
"""

from __future__ import annotations

import threading

from py3langid.langid import MODEL_FILE, LanguageIdentifier

MIN_CONFIDENCE = 0.5
MIN_LETTERS = 12
_MAX_CHARS = 2000  # the opening of a long ticket says which language it is in

_identifier: LanguageIdentifier | None = None
_lock = threading.Lock()


def detect(text: str) -> str | None:
    """The language of `text` (ISO 639-1), or None when it is too short or unclear."""
    text = text[:_MAX_CHARS]
    if sum(char.isalpha() for char in text) < MIN_LETTERS:
        return None
    language, confidence = _model().classify(text)
    if confidence < MIN_CONFIDENCE or len(language) != 2:
        return None
    return str(language)


def load() -> None:
    """Load the model now (at start-up) rather than on the first ticket."""
    _model()


def _model() -> LanguageIdentifier:
    global _identifier
    with _lock:  # loading takes ~1.5 s: once per process
        if _identifier is None:
            _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        return _identifier
