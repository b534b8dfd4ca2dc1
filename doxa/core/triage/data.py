"""Labeled examples: the seed set DOXA ships, and users' own CSV or JSONL exports."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from doxa.core.errors import InvalidInput

SEED_PACKAGE = "doxa.fixtures"
SEED_FILE = "triage_seed.jsonl"


@dataclass(frozen=True)
class Example:
    """A labeled ticket; a missing label means the example trains only the other field."""

    text: str
    category: str | None
    priority: str | None

    def label(self, name: str) -> str | None:
        return self.category if name == "category" else self.priority


def seed_examples() -> list[Example]:
    """The shipped seed set: hand-written tickets across the default labels."""
    text = resources.files(SEED_PACKAGE).joinpath(SEED_FILE).read_text(encoding="utf-8")
    rows = _jsonl_rows(text.splitlines(), SEED_FILE)
    return _examples(rows, SEED_FILE, ("subject", "body"), "category", "priority")


def read_examples(
    path: str | Path,
    *,
    text_columns: tuple[str, ...] = ("subject", "body"),
    category_column: str | None = "category",
    priority_column: str | None = "priority",
) -> list[Example]:
    """Read labeled tickets from a CSV (with a header) or JSONL file.

    The text is the text columns joined by newlines; a row with neither label is skipped.
    Raises InvalidInput for an unreadable file or a missing column.
    """
    path = Path(path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            if path.suffix.lower() in {".jsonl", ".ndjson", ".json"}:
                rows = list(_jsonl_rows(handle, path.name))
            else:
                rows = list(_csv_rows(handle, path.name))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInput(f"{path.name}: cannot read the file ({exc})") from None
    return _examples(rows, path.name, text_columns, category_column, priority_column)


def _csv_rows(lines: Iterable[str], name: str) -> Iterator[Mapping[str, object]]:
    reader = csv.DictReader(lines)
    if not reader.fieldnames:
        raise InvalidInput(f"{name}: empty file or no header row")
    yield from reader


def _jsonl_rows(lines: Iterable[str], name: str) -> Iterator[Mapping[str, object]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{name}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise InvalidInput(f"{name}:{number}: each line must be a JSON object")
        yield row


def _examples(
    rows: Iterable[Mapping[str, object]],
    name: str,
    text_columns: tuple[str, ...],
    category_column: str | None,
    priority_column: str | None,
) -> list[Example]:
    wanted = [*text_columns, *(c for c in (category_column, priority_column) if c)]
    examples = []
    for number, row in enumerate(rows, start=1):
        missing = [column for column in wanted if column not in row]
        if missing:
            raise InvalidInput(f"{name}: row {number} has no column {', '.join(missing)}")
        text = "\n".join(_cell(row[column]) or "" for column in text_columns)
        category = _cell(row[category_column]) if category_column else None
        priority = _cell(row[priority_column]) if priority_column else None
        if text.strip() and (category or priority):
            examples.append(Example(text=text, category=category, priority=priority))
    if not examples:
        raise InvalidInput(f"{name}: no labeled rows")
    return examples


def _cell(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None
