"""Acknowledgment texts: one file per mailbox and language (SPEC `ACK_TEMPLATES`).

A file is named `<mailbox>.<language>.txt` (`default.en.txt`, `billing@example.com.de.txt`):
header lines, a blank line, then the body.

    Subject: {reference} {subject}
    Neutral-Subject: We received your message
    Neutral-Name: there

    Hello {name},
    ...

`Subject` is required and carries `{reference}` (replies thread by it). `{subject}` and `{name}`
are the customer's subject and name only when they may be repeated; otherwise they become the
plain texts `Neutral-Subject` and `Neutral-Name` (defaults: "We received your message" and
nothing). `{{` and `}}` write a literal brace. Any other `{…}` is refused when the file is read.

Substitution is one pass over the file's text: a customer's subject that contains
`{reference}` or `{0.__class__}` is inserted as it is, never expanded (no `str.format`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

PLACEHOLDERS = frozenset({"reference", "subject", "name"})
FALLBACK_LANGUAGE = "en"
DEFAULT_BOX = "default"
NEUTRAL_SUBJECT = "We received your message"
BUILT_IN = files("doxa.fixtures") / "acknowledgments"
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_HEADERS = {"subject", "neutral-subject", "neutral-name"}
_LANGUAGE = re.compile(r"^[a-z]{2}$")
_MAX_FILE_BYTES = 64 * 1024


class TemplateError(ValueError):
    """A text that cannot be used; the message is one line naming the file."""


@dataclass(frozen=True, slots=True)
class AckText:
    subject: str
    body: str
    neutral_subject: str = NEUTRAL_SUBJECT
    neutral_name: str = ""

    def render(self, *, reference: str, subject: str | None, name: str | None) -> tuple[str, str]:
        """(subject, body); `subject` and `name` None when they may not be repeated."""
        values = {
            "reference": reference,
            "subject": subject or self.neutral_subject,
            "name": name or self.neutral_name,
        }
        return _fill(self.subject, values), _fill(self.body, values)


def _fill(template: str, values: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        return values.get(match.group(1), token)

    return _TOKEN.sub(value, template)


@dataclass(frozen=True, slots=True)
class AckTexts:
    """Every text by (mailbox or "default", language)."""

    texts: dict[tuple[str, str], AckText]

    def languages(self, mailbox: str) -> set[str]:
        return {lang for box, lang in self.texts if box in (mailbox.lower(), DEFAULT_BOX)}

    def choose(self, mailbox: str, language: str | None) -> AckText:
        """The customer's language first (this mailbox's text, then the default one), then
        English the same way; `default.en` always exists."""
        box = mailbox.lower()
        for lang in dict.fromkeys([language or FALLBACK_LANGUAGE, FALLBACK_LANGUAGE]):
            for key in ((box, lang), (DEFAULT_BOX, lang)):
                if key in self.texts:
                    return self.texts[key]
        return self.texts[(DEFAULT_BOX, FALLBACK_LANGUAGE)]


@lru_cache(maxsize=8)
def load_texts(folder: Path | None) -> AckTexts:
    """The folder's texts (ACK_TEMPLATES), or the built-in ones; TemplateError when one is bad.

    A folder replaces the built-in set: an operator who writes their own texts decides every
    language, and a built-in text never contradicts theirs."""
    if folder is None:
        return _read(BUILT_IN.iterdir(), str(BUILT_IN))
    if not folder.is_dir():
        raise TemplateError(f"{folder} is not a folder")
    return _read(folder.iterdir(), str(folder))


def mailboxes(texts: AckTexts) -> set[str]:
    """The mailboxes the texts name (other than "default")."""
    return {box for box, _ in texts.texts if box != DEFAULT_BOX}


def _read(entries: Iterable[Traversable], where: str) -> AckTexts:
    texts: dict[tuple[str, str], AckText] = {}
    for entry in sorted(entries, key=lambda e: e.name):
        if not entry.name.endswith(".txt") or entry.name.startswith("."):
            continue  # a README or an editor's backup is not a text
        texts[_key(entry.name)] = parse(_contents(entry), entry.name)
    if (DEFAULT_BOX, FALLBACK_LANGUAGE) not in texts:
        raise TemplateError(f"{where} has no default.en.txt (the text when no other fits)")
    return AckTexts(texts)


def _key(filename: str) -> tuple[str, str]:
    box, _, lang = filename.removesuffix(".txt").rpartition(".")
    if not _LANGUAGE.match(lang) or not (box == DEFAULT_BOX or "@" in box):
        raise TemplateError(
            f"{filename}: name it <mailbox or default>.<two-letter language>.txt, "
            "e.g. default.en.txt or billing@example.com.de.txt"
        )
    return box.lower(), lang


def _contents(entry: Traversable) -> str:
    data = entry.read_bytes()
    if len(data) > _MAX_FILE_BYTES:
        raise TemplateError(f"{entry.name}: larger than {_MAX_FILE_BYTES} bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise TemplateError(f"{entry.name}: not UTF-8") from None


def parse(text: str, name: str) -> AckText:
    """One file's text: header lines, a blank line, the body."""
    head, blank, body = text.replace("\r\n", "\n").partition("\n\n")
    if not blank or not body.strip():
        raise TemplateError(f"{name}: header lines, a blank line, then the body")
    headers: dict[str, str] = {}
    for line in head.split("\n"):
        field, colon, value = line.partition(":")
        field = field.strip().lower()
        if not colon or field not in _HEADERS:
            known = "Subject:, Neutral-Subject: or Neutral-Name:"
            raise TemplateError(f"{name}: {line.strip()[:60]!r} is not {known}")
        headers[field] = value.strip()
    subject = headers.get("subject", "")
    if "{reference}" not in subject:
        raise TemplateError(f"{name}: the Subject line must carry {{reference}}")
    for where, template in (("Subject", subject), ("body", body)):
        for match in _TOKEN.finditer(template):
            if match.group(1) is not None and match.group(1) not in PLACEHOLDERS:
                known = "{reference}, {subject}, {name}"
                raise TemplateError(
                    f"{name}: unknown placeholder {match.group(0)} in the {where} (known: {known})"
                )
    neutral = {k: v for k, v in headers.items() if k.startswith("neutral-")}
    if any(c in v for v in neutral.values() for c in "{}"):
        raise TemplateError(f"{name}: Neutral-Subject and Neutral-Name are plain text")
    return AckText(
        subject,
        body.strip("\n") + "\n",
        neutral.get("neutral-subject") or NEUTRAL_SUBJECT,
        neutral.get("neutral-name", ""),
    )
