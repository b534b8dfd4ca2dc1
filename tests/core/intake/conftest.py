"""Helpers for the intake domain's tests: message factory and the shared corpus location."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from doxa.core.intake.inbound import InboundMessage
from tests.conftest import EMAIL_CORPUS

CORPUS = EMAIL_CORPUS


@pytest.fixture
def make_message() -> Callable[..., InboundMessage]:
    """An ordinary customer message; keyword arguments override any field."""

    def _make(**fields: Any) -> InboundMessage:
        values: dict[str, Any] = {
            "sender_email": "alice@example.com",
            "sender_name": "Alice",
            "subject": "Printer on fire",
            "text": "Hello, the printer is on fire.",
            "html": None,
            "message_id": "abc@example.com",
        }
        values.update(fields)
        return InboundMessage(**values)

    return _make
