"""Conditions, as routing rules and SLA policies write them (`{all: [...], any: [...]}`):
reading one (a 422 that names the path of the bad part) and testing a ticket against it.

Reading is pure: whether a calendar named by `business_hours` exists is the caller's check
(`When.calendar_ids`). Testing never raises: a ticket's odd value simply does not match.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from doxa.core.enums import Channel, Priority
from doxa.core.errors import InvalidInput

# `body` conditions read this much of the opening message (SPEC).
BODY_CHARS = 64 * 1024
MAX_CONDITIONS = 50
MAX_VALUES = 200
MAX_TEXT = 1000

PRIORITY_ORDER = {priority: rank for rank, priority in enumerate(Priority)}

TEXT_OPS = frozenset({"is", "is_not", "in", "contains", "not_contains"})
CHOICE_OPS = frozenset({"is", "is_not", "in"})
NUMBER_OPS = frozenset({"is", "is_not", "gte", "lte"})
FLAG_OPS = frozenset({"is", "is_not"})
ALL_OPS = TEXT_OPS | NUMBER_OPS

FIELD_OPS: dict[str, frozenset[str]] = {
    "channel": CHOICE_OPS,
    "mailbox": TEXT_OPS,
    "requester.email": TEXT_OPS,
    "requester.domain": TEXT_OPS,
    "subject": TEXT_OPS,
    "body": TEXT_OPS,
    "language": CHOICE_OPS,
    "category": CHOICE_OPS,
    "ai_category": CHOICE_OPS,
    "ai_confidence": NUMBER_OPS,
    "priority": CHOICE_OPS | NUMBER_OPS,
    "business_hours": FLAG_OPS,
    "authenticated": FLAG_OPS,
}
CHOICES: dict[str, frozenset[str]] = {
    "channel": frozenset(Channel),
    "priority": frozenset(Priority),
}
METADATA = "metadata."


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: Any

    def matches(self, facts: Facts) -> bool:
        if self.field == "business_hours":
            return facts.in_business_hours(int(self.value)) is (self.op == "is")
        actual = facts.value(self.field)
        if self.op == "is":
            return _same(actual, self.value)
        if self.op == "is_not":
            return not _same(actual, self.value)
        if self.op == "in":
            return any(_same(actual, each) for each in self.value)
        if self.op in ("contains", "not_contains"):
            found = _phrase(self.value).search(facts.folded(self.field)) is not None
            return found is (self.op == "contains")
        return _compare(self.field, actual, self.value, self.op)


@dataclass(frozen=True)
class When:
    all: tuple[Condition, ...] = ()
    any: tuple[Condition, ...] = ()

    def matches(self, facts: Facts) -> bool:
        if not all(condition.matches(facts) for condition in self.all):
            return False
        return not self.any or any(condition.matches(facts) for condition in self.any)

    def calendar_ids(self) -> set[int]:
        return {int(c.value) for c in (*self.all, *self.any) if c.field == "business_hours"}

    def reads(self) -> set[str]:
        return {c.field for c in (*self.all, *self.any)}


@dataclass
class Facts:
    """What conditions see of a ticket. `values` maps a field to its value; text is folded
    (case and accents) once per field, however many conditions read it."""

    values: Mapping[str, Any]
    metadata: Mapping[str, Any] = field(default_factory=dict)
    in_business_hours: Callable[[int], bool] = lambda _calendar_id: False
    _folded: dict[str, str] = field(default_factory=dict)

    def value(self, name: str) -> Any:
        if name.startswith(METADATA):
            return self.metadata.get(name[len(METADATA) :])
        return self.values.get(name)

    def folded(self, name: str) -> str:
        if name not in self._folded:
            value = self.value(name)
            self._folded[name] = fold("" if value is None else str(value))
        return self._folded[name]


def fold(text: str) -> str:
    """Lower case without accents: `Rechnung`, `RECHNUNG` and `réchnung` compare equal."""
    if text.isascii():  # most mail: 30x faster than decomposing (a 64 KiB body: 0.3 ms)
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class _Phrase:
    pattern: re.Pattern[str]

    def search(self, text: str) -> re.Match[str] | None:
        return self.pattern.search(text)


_phrases: dict[str, _Phrase] = {}


def _phrase(value: str) -> _Phrase:
    """Words or a phrase, matched as whole adjacent words (`refund` not in `refunded`)."""
    cached = _phrases.get(value)
    if cached is None:
        words = WORD.findall(fold(value))
        pattern = r"(?<!\w)" + r"\W+".join(map(re.escape, words)) + r"(?!\w)"
        cached = _phrases[value] = _Phrase(re.compile(pattern))
        if len(_phrases) > 10_000:
            _phrases.clear()
    return cached


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return actual is expected
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return float(actual) == float(expected)
    if actual is None or expected is None:
        return actual is expected
    return fold(str(actual)) == fold(str(expected))


def _compare(name: str, actual: Any, expected: Any, op: str) -> bool:
    if name == "priority":
        actual_rank, expected_rank = PRIORITY_ORDER.get(actual), PRIORITY_ORDER.get(expected)
        if actual_rank is None or expected_rank is None:
            return False
        return actual_rank >= expected_rank if op == "gte" else actual_rank <= expected_rank
    try:
        number = float(actual)
    except (TypeError, ValueError):
        return False
    return number >= float(expected) if op == "gte" else number <= float(expected)


def read_when(raw: object, path: str = "when") -> When:
    """A `when` as stored, or InvalidInput naming the path of the first thing wrong."""
    if raw is None:
        return When()
    if not isinstance(raw, dict):
        raise InvalidInput(f"{path}: must be an object with `all` and/or `any`")
    unknown = set(raw) - {"all", "any"}
    if unknown:
        raise InvalidInput(f"{path}.{sorted(unknown)[0]}: unknown key (use `all` or `any`)")
    groups = {}
    for key in ("all", "any"):
        items = raw.get(key)
        items = [] if items is None else items
        if not isinstance(items, list):
            raise InvalidInput(f"{path}.{key}: must be a list of conditions")
        if len(items) > MAX_CONDITIONS:
            raise InvalidInput(f"{path}.{key}: at most {MAX_CONDITIONS} conditions")
        groups[key] = tuple(
            read_condition(item, f"{path}.{key}[{n}]") for n, item in enumerate(items)
        )
    return When(all=groups["all"], any=groups["any"])


def read_condition(raw: object, path: str) -> Condition:
    if not isinstance(raw, dict):
        raise InvalidInput(f"{path}: must be an object {{field, op, value}}")
    unknown = set(raw) - {"field", "op", "value"}
    if unknown:
        raise InvalidInput(f"{path}.{sorted(unknown)[0]}: unknown key")
    name, op = raw.get("field"), raw.get("op")
    if not isinstance(name, str) or not (name in FIELD_OPS or _metadata_key(name)):
        known = ", ".join([*FIELD_OPS, "metadata.<key>"])
        raise InvalidInput(f"{path}.field: unknown field {name!r} (one of {known})")
    ops = FIELD_OPS.get(name, ALL_OPS)
    if op not in ops:
        raise InvalidInput(f"{path}.op: {op!r} does not apply to {name} (one of {sorted(ops)})")
    if "value" not in raw:
        raise InvalidInput(f"{path}.value: missing")
    return Condition(name, op, _read_value(name, op, raw["value"], f"{path}.value"))


def _metadata_key(name: str) -> bool:
    key = name[len(METADATA) :]
    return name.startswith(METADATA) and 0 < len(key) <= 100


def _read_value(name: str, op: str, value: Any, path: str) -> Any:
    if name in ("business_hours",):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInput(f"{path}: a calendar id")
        return value
    if name == "authenticated":
        if not isinstance(value, bool):
            raise InvalidInput(f"{path}: true or false")
        return value
    if op == "in":
        if not isinstance(value, list) or not value or len(value) > MAX_VALUES:
            raise InvalidInput(f"{path}: a list of 1 to {MAX_VALUES} values")
        return [_read_scalar(name, each, f"{path}[{n}]") for n, each in enumerate(value)]
    if op in ("gte", "lte") and name != "priority":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(f"{path}: a number")
        return value
    if op in ("contains", "not_contains"):
        if not isinstance(value, str) or not WORD.search(value) or len(value) > MAX_TEXT:
            raise InvalidInput(f"{path}: words or a phrase (at most {MAX_TEXT} characters)")
        return value
    return _read_scalar(name, value, path)


def _read_scalar(name: str, value: Any, path: str) -> Any:
    if name == "ai_confidence":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(f"{path}: a number")
        return value
    if value is None and name in ("category", "language", "ai_category", "mailbox"):
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        if name.startswith(METADATA) and isinstance(value, bool):
            return value
        raise InvalidInput(f"{path}: a text value")
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise InvalidInput(f"{path}: at most {MAX_TEXT} characters")
    choices = CHOICES.get(name)
    if choices is not None and value not in choices:
        raise InvalidInput(f"{path}: {value!r} is not one of {sorted(map(str, choices))}")
    return value
