"""Shapes shared by every resource: ids, text without NULs, pages and cursors."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from doxa.core.errors import InvalidInput

MAX_PAGE_SIZE = 100
# Primary keys are 32-bit integers on PostgreSQL; larger ids can name nothing.
MAX_ID = 2**31 - 1
T = TypeVar("T")

Id = Annotated[int, Field(ge=1, le=MAX_ID)]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


# Text a person typed; PostgreSQL cannot store NUL, and no person types one.
# Put it after StringConstraints: constraints placed after a validator are not applied.
NoNul = AfterValidator(_no_nul)

# Every separator str.splitlines() knows: any of them in a subject or a name would end up in a
# mail header (header injection, or a message that cannot be composed at all).
LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def _one_line(value: str) -> str:
    if not LINE_BREAKS.isdisjoint(value):
        raise ValueError("must be a single line (no line breaks)")
    return value


OneLine = AfterValidator(_one_line)


def example(**values: Any) -> ConfigDict:
    """A model's one realistic example in the OpenAPI document: Swagger's "Try it out" starts
    from it, so it must be safe to send as it stands (no made-up people, no weak passwords)."""
    return ConfigDict(json_schema_extra={"examples": [values]})


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
    if kind != "id" or not value.isdigit() or len(value) > 10 or int(value) > MAX_ID:
        raise InvalidInput("cursor is not valid")
    return int(value)
