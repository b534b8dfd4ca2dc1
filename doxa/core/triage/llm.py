"""Optional provider: an OpenAI-compatible chat endpoint, falling back to the local model.

The answer must be one JSON object naming a known category and priority with confidences in
[0, 1]; anything else (timeout, HTTP error, prose, an unknown label) is a failure, and the
local classifier answers instead, so a flaky endpoint never leaves a ticket unclassified.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from doxa.core.enums import Priority
from doxa.core.triage.prediction import Prediction

if TYPE_CHECKING:
    from doxa.core.triage.text_classifier import TextClassifier

log = logging.getLogger(__name__)

PRIORITIES = tuple(priority.value for priority in Priority)
RETRY_STATUSES = {408, 409, 429, 500, 502, 503, 504}
MAX_BODY_CHARS = 6000

_SYSTEM = (
    "You triage customer support tickets. Answer with one JSON object and nothing else: "
    '{{"category": one of {categories}, "category_confidence": a number from 0 to 1, '
    '"priority": one of {priorities}, "priority_confidence": a number from 0 to 1}}. '
    "Confidence is the probability that your label is right."
)


class ProviderError(Exception):
    """The endpoint failed or answered something we cannot use."""


class ChatClassifier:
    """Classifies through `{base_url}/chat/completions`; the local model on any failure."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None,
        fallback: TextClassifier | Callable[[], TextClassifier],
        categories: Sequence[str] | None = None,
        timeout: float = 10.0,
        retries: int = 2,
        backoff: float = 0.5,
    ) -> None:
        self.model = model
        self.version = f"openai:{model}"
        self._fallback = fallback
        self._categories = tuple(categories) if categories else None
        self._retries = retries
        self._backoff = backoff
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=httpx.Timeout(timeout)
        )

    def close(self) -> None:
        self._client.close()

    def use_categories(self, categories: Sequence[str]) -> None:
        """Ask for these categories from now on (the taxonomy changes at run time)."""
        self._categories = tuple(categories) or None

    def local(self) -> TextClassifier:
        return self._fallback() if callable(self._fallback) else self._fallback

    def predict(self, subject: str, body: str) -> Prediction:
        """The endpoint's labels, or the local model's when the endpoint fails."""
        local = self.local()
        categories = self._categories or tuple(local.labels["category"])
        try:
            answer = self._ask(subject, body, categories)
            return parse_answer(answer, categories=categories, version=self.version)
        except ProviderError as exc:
            log.warning("AI provider failed (%s); using the local model", exc)
            return local.predict(subject, body)

    def _ask(self, subject: str, body: str, categories: Sequence[str]) -> str:
        system = _SYSTEM.format(
            categories=json.dumps(list(categories)), priorities=json.dumps(list(PRIORITIES))
        )
        payload = {
            "model": self.model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": f"Subject: {subject}\n\n{body[:MAX_BODY_CHARS]}"},
            ],
        }
        for attempt in range(self._retries + 1):
            try:
                response = self._client.post("/chat/completions", json=payload)
            except httpx.HTTPError as exc:
                failure = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    return _content(response)
                failure = f"HTTP {response.status_code}"
                if response.status_code not in RETRY_STATUSES:
                    break
            if attempt < self._retries:
                time.sleep(self._backoff * 2**attempt)
        raise ProviderError(failure)


def _content(response: httpx.Response) -> str:
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, LookupError, TypeError) as exc:
        raise ProviderError(f"not a chat completion: {exc!r}") from None
    if not isinstance(content, str):
        raise ProviderError("the completion has no text content")
    return content


def parse_answer(text: str, *, categories: Sequence[str], version: str) -> Prediction:
    """The prediction in a model's answer; ProviderError unless it is exactly what we asked."""
    try:
        answer: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProviderError(f"answer is not JSON: {exc.msg}") from None
    if not isinstance(answer, dict):
        raise ProviderError("answer is not a JSON object")
    category = _label(answer, "category", categories)
    priority = _label(answer, "priority", PRIORITIES)
    return Prediction(
        category=category,
        category_confidence=_confidence(answer, "category_confidence"),
        priority=priority,
        priority_confidence=_confidence(answer, "priority_confidence"),
        model_version=version,
    )


def _label(answer: dict[str, Any], key: str, allowed: Sequence[str]) -> str:
    value = answer.get(key)
    if not isinstance(value, str) or value not in allowed:
        raise ProviderError(f"{key} {value!r} is not one of {list(allowed)}")
    return value


def _confidence(answer: dict[str, Any], key: str) -> float:
    value = answer.get(key)
    # bool is an int subclass: `true` is not a confidence.
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ProviderError(f"{key} {value!r} is not a number in [0, 1]")
    return float(value)
