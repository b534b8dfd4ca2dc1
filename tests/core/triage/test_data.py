from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from doxa.core.enums import DEFAULT_CATEGORIES, Priority
from doxa.core.errors import InvalidInput
from doxa.core.triage.data import Example, read_examples, seed_examples


class TestSeedExamples:
    def test_several_hundred_examples_cover_every_default_label(self) -> None:
        examples = seed_examples()
        assert len(examples) >= 300
        assert set(Counter(e.category for e in examples)) == set(DEFAULT_CATEGORIES)
        assert {e.priority for e in examples} == {p.value for p in Priority}
        assert all("\n" in e.text for e in examples)


class TestReadExamples:
    def test_csv_with_custom_columns(self, tmp_path: Path) -> None:
        path = tmp_path / "export.csv"
        path.write_text(
            "title,description,queue,urgency\n"
            'Refund,"charged twice, please refund",billing,high\n'
            "Idea,dark mode,feature_request,\n"
        )
        examples = read_examples(
            path,
            text_columns=("title", "description"),
            category_column="queue",
            priority_column="urgency",
        )
        assert examples == [
            Example("Refund\ncharged twice, please refund", "billing", "high"),
            Example("Idea\ndark mode", "feature_request", None),
        ]

    def test_jsonl_with_custom_columns_and_no_priority(self, tmp_path: Path) -> None:
        path = tmp_path / "export.jsonl"
        rows = [{"text": "Server down", "label": "technical"}, {"text": "Hi", "label": "general"}]
        path.write_text("\n".join(json.dumps(row) for row in rows) + "\n\n")
        examples = read_examples(
            path, text_columns=("text",), category_column="label", priority_column=None
        )
        assert examples == [
            Example("Server down", "technical", None),
            Example("Hi", "general", None),
        ]

    def test_missing_column_is_named(self, tmp_path: Path) -> None:
        path = tmp_path / "export.csv"
        path.write_text("subject,body,category\nA,B,billing\n")
        with pytest.raises(InvalidInput, match="priority"):
            read_examples(path)

    @pytest.mark.parametrize(
        ("name", "content"),
        [
            ("broken.jsonl", '{"subject": "a", "body": \n'),
            ("list.jsonl", "[1, 2]\n"),
            ("empty.csv", ""),
            ("binary.csv", b"\xff\xfe\x00\x81garbage"),
            ("unlabeled.csv", "subject,body,category,priority\nA,B,,\n"),
        ],
    )
    def test_bad_files_are_rejected(self, tmp_path: Path, name: str, content: str | bytes) -> None:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        with pytest.raises(InvalidInput):
            read_examples(path)

    def test_missing_file_is_invalid_input(self, tmp_path: Path) -> None:
        with pytest.raises(InvalidInput, match="cannot read"):
            read_examples(tmp_path / "nope.csv")
