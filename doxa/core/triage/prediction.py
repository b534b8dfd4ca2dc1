"""What a classifier answers for a ticket: the local model and the chat model alike.

Apart from the models, so that code which only applies predictions (the classification service,
the server at start) does not import scikit-learn: 0.8 s of `import doxa.main`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Prediction:
    category: str
    category_confidence: float
    priority: str
    priority_confidence: float
    model_version: str
    explanation: tuple[str, ...] = ()  # the terms that pushed the category most
