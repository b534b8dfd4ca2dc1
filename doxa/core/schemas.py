"""Shapes shared by every resource: pages and cursors."""

from __future__ import annotations

import base64
import binascii
from typing import Generic, TypeVar

from pydantic import BaseModel

from doxa.core.errors import InvalidInput

MAX_PAGE_SIZE = 100
T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The id a cursor points after; InvalidInput for anything we did not issue."""
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInput("cursor is not valid") from None
    kind, _, value = text.partition(":")
    if kind != "id" or not value.isdigit() or len(value) > 18:
        raise InvalidInput("cursor is not valid")
    return int(value)
