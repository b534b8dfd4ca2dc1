"""Acknowledgment texts: the file format, what is refused, and substitution that user input
cannot steer."""

from __future__ import annotations

from pathlib import Path

import pytest

from doxa.core.intake.ack_texts import AckText, TemplateError, load_texts, parse

TEXT = (
    "Subject: {reference} {subject}\nNeutral-Subject: Received\n\nHello {name}, see {reference}.\n"
)


class TestRender:
    def test_placeholders_inside_the_customers_words_are_not_expanded(self) -> None:
        text = parse(TEXT, "default.en.txt")
        hostile = "{reference} {0.__class__} {name} {{subject}}"
        subject, body = text.render(reference="[#7]", subject=hostile, name="{reference}")
        assert subject == f"[#7] {hostile}"
        assert body == "Hello {reference}, see [#7].\n"

    def test_neutral_texts_stand_in_for_words_that_may_not_be_repeated(self) -> None:
        subject, body = parse(TEXT, "default.en.txt").render(
            reference="[#7]", subject=None, name=None
        )
        assert (subject, body) == ("[#7] Received", "Hello , see [#7].\n")

    def test_doubled_braces_write_literal_ones(self) -> None:
        text = AckText("{reference}", "Use {{reference}} as {reference}.")
        assert text.render(reference="[#1]", subject=None, name=None)[1] == (
            "Use {reference} as [#1]."
        )


class TestParse:
    @pytest.mark.parametrize(
        ("text", "complaint"),
        [
            ("Subject: {reference}\n\nHi {0.__class__}\n", "unknown placeholder {0.__class__}"),
            ("Subject: {reference} {ticket}\n\nHi\n", "unknown placeholder {ticket}"),
            ("Subject: Thanks\n\nHi\n", "must carry {reference}"),
            ("Subject: {reference}\nFrom: me\n\nHi\n", "'From: me' is not Subject:"),
            ("Subject: {reference}\n", "a blank line, then the body"),
            ("Subject: {reference}\nNeutral-Name: {name}\n\nHi\n", "plain text"),
        ],
    )
    def test_a_bad_text_is_refused_in_one_line_naming_the_file(
        self, text: str, complaint: str
    ) -> None:
        with pytest.raises(TemplateError) as error:
            parse(text, "default.en.txt")
        assert str(error.value).startswith("default.en.txt: ") and "\n" not in str(error.value)
        assert complaint in str(error.value)


class TestLoad:
    def test_built_in_texts_cover_english_german_and_japanese(self) -> None:
        texts = load_texts(None)
        assert {"en", "de", "ja"} <= texts.languages("support@example.com")

    def test_the_customers_language_wins_over_the_mailboxs_english(self, tmp_path: Path) -> None:
        for name, subject in [("default.en", "en"), ("default.de", "de"), ("b@x.org.en", "b")]:
            (tmp_path / f"{name}.txt").write_text(f"Subject: {{reference}} {subject}\n\nx\n")
        texts = load_texts(tmp_path)
        assert texts.choose("B@x.org", "de").subject.endswith("de")
        assert texts.choose("b@x.org", "ja").subject.endswith("b")
        assert texts.choose("c@x.org", None).subject.endswith("en")

    @pytest.mark.parametrize(
        ("files", "complaint"),
        [
            ({"default.de.txt": TEXT}, "no default.en.txt"),
            ({"default.en.txt": TEXT, "english.txt": TEXT}, "english.txt: name it"),
            ({"default.en.txt": TEXT, "default.eng.txt": TEXT}, "default.eng.txt: name it"),
        ],
    )
    def test_a_bad_folder_is_refused(
        self, tmp_path: Path, files: dict[str, str], complaint: str
    ) -> None:
        for name, text in files.items():
            (tmp_path / name).write_text(text)
        with pytest.raises(TemplateError, match=complaint):
            load_texts(tmp_path)
