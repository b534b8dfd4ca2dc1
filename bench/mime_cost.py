"""CPU per processing step for hostile message shapes (issue 19, item 11).

Usage::

    python bench/mime_cost.py                 # every shape, about 5 MB of body each
    python bench/mime_cost.py --mb 24 --shape html_amp_hash --shape html_lt

Each shape is one message built here (entities repeated, deep or unclosed tags, huge
attributes, long lines, deep quotes, many lines, many tiny MIME parts, an enormous header...).
For each, the steps intake runs on it are timed one by one with `time.process_time` (CPU of
this process): the whole parse (`parse_email`, which includes the next three), loading the
tree (`load_message`), HTML to text, HTML sanitizing, then reply stripping of the text the
parse gave, language detection and the similar-tickets vector of what the classifier reads
(`first_body`: the opening FIRST_BODY_CHARS).
The budget is 2 s of CPU for a whole message of up to MAX_MESSAGE_BYTES.
"""

from __future__ import annotations

import argparse
import base64
import time
from collections.abc import Callable

from doxa.core.intake.text import flatten_deep, html_to_text, sanitize_html, strip_reply
from doxa.core.tickets.service import FIRST_BODY_CHARS
from doxa.core.triage import language, similar
from doxa.gateway.mime.loading import load_message
from doxa.gateway.parsing import parse_email

HEAD = (
    "From: Mallory <mallory@example.org>\r\nTo: support@example.com\r\n"
    "Subject: {subject}\r\nMessage-ID: <{name}@example.org>\r\nMIME-Version: 1.0\r\n"
)


def _single(name: str, ctype: str, body: str, subject: str = "Hostile") -> bytes:
    head = HEAD.format(subject=subject, name=name)
    return f"{head}Content-Type: {ctype}; charset=utf-8\r\n\r\n{body}\r\n".encode()


def _html(name: str, size: int, unit: str) -> bytes:
    return _single(name, "text/html", unit * (size // len(unit)))


def _many_parts(name: str, size: int) -> bytes:
    parts = "".join(f"--B\r\nContent-Type: text/plain\r\n\r\npart {n}\r\n" for n in range(1000))
    head = HEAD.format(subject="Parts", name=name)
    return f'{head}Content-Type: multipart/mixed; boundary="B"\r\n\r\n{parts}--B--\r\n'.encode()


def _huge_header(name: str, size: int) -> bytes:
    return _single(name, "text/plain", "Hello", subject="x" * 250_000)


def _encoded_words(name: str, size: int) -> bytes:
    return _single(name, "text/plain", "Hello", subject="=?utf-8?q?a?= " * 18_000)


def _attachment(name: str, size: int) -> bytes:
    data = base64.encodebytes(b"\x00\x01" * (size // 2)).decode()
    head = HEAD.format(subject="File", name=name)
    return (
        f'{head}Content-Type: multipart/mixed; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nSee the file.\r\n"
        '--B\r\nContent-Type: application/octet-stream; name="a.bin"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{data}--B--\r\n"
    ).encode()


SHAPES: dict[str, Callable[[str, int], bytes]] = {
    "html_amp_hash": lambda n, s: _html(n, s, "&#"),
    "html_amp": lambda n, s: _html(n, s, "&"),
    "html_amp_entity": lambda n, s: _html(n, s, "&amp;"),
    "html_numeric_refs": lambda n, s: _html(n, s, "&#65;&#x42;"),
    "html_named_prefix": lambda n, s: _html(n, s, "&ampx"),
    "html_deep_div": lambda n, s: _html(n, s, "<div>"),
    "html_unclosed_div": lambda n, s: _html(n, s, "<div "),
    "html_lt": lambda n, s: _html(n, s, "<"),
    "html_lt_a": lambda n, s: _html(n, s, "<a"),
    "html_comment_open": lambda n, s: _html(n, s, "<!--"),
    "html_table_cells": lambda n, s: _html(n, s, "<table><tr><td>x"),
    "html_list_items": lambda n, s: _html(n, s, "<li>x"),
    "html_quote_blocks": lambda n, s: _html(n, s, "<blockquote>"),
    "html_huge_attribute": lambda n, s: _single(n, "text/html", f'<a title="{"x" * s}">x</a>'),
    "html_long_word": lambda n, s: _single(n, "text/html", "<p>" + "x" * s),
    "html_words": lambda n, s: _html(n, s, "word "),
    "plain_long_line": lambda n, s: _single(n, "text/plain", "x" * s),
    "plain_many_lines": lambda n, s: _single(n, "text/plain", "a\r\n" * (s // 3)),
    "plain_quote_depth": lambda n, s: _single(n, "text/plain", ">" * s),
    "plain_quote_lines": lambda n, s: _single(n, "text/plain", "> > > quoted\r\n" * (s // 14)),
    "plain_reply_markers": lambda n, s: _single(
        n, "text/plain", "On Mon, Alice wrote:\r\n> x\r\n" * (s // 27)
    ),
    "plain_signature_dashes": lambda n, s: _single(n, "text/plain", "-- \r\nx\r\n" * (s // 8)),
    "many_mime_parts": _many_parts,
    "huge_header": _huge_header,
    "encoded_word_header": _encoded_words,
    "base64_attachment": _attachment,
}


def _cpu(step: Callable[[], object]) -> tuple[float, object]:
    flatten_deep.cache_clear()  # each step pays for its own flattening, as alone it would
    start = time.process_time()
    result = step()
    return time.process_time() - start, result


def measure(name: str, raw: bytes) -> dict[str, float]:
    """CPU seconds of each step for one message."""
    times: dict[str, float] = {}
    times["parse"], msg = _cpu(lambda: parse_email(raw, max_attachment_bytes=10 * 1024 * 1024))
    times["load"], _ = _cpu(lambda: load_message(raw))
    html = getattr(msg, "html", None)
    body = raw.split(b"\r\n\r\n", 1)[-1].decode("utf-8", "replace")
    if html is not None:
        times["html_to_text"], _ = _cpu(lambda: html_to_text(body))
        times["sanitize"], _ = _cpu(lambda: sanitize_html(body))
    text = getattr(msg, "text", "")
    times["strip_reply"], _ = _cpu(lambda: strip_reply(text))
    times["language"], _ = _cpu(lambda: language.detect(text))
    opening = f"{getattr(msg, 'subject', '')}\n{text[:FIRST_BODY_CHARS]}"  # what triage reads
    times["vector"], _ = _cpu(lambda: similar.vector(opening))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=float, default=5.0, help="body size in MB (default 5)")
    parser.add_argument("--shape", action="append", choices=sorted(SHAPES), help="repeatable")
    args = parser.parse_args()
    size = int(args.mb * 1_000_000)
    language.load()
    similar.vector("warm up")
    steps = ["parse", "load", "html_to_text", "sanitize", "strip_reply", "language", "vector"]
    print(f"{'shape':24} {'bytes':>10} " + " ".join(f"{s:>12}" for s in steps))
    for name in args.shape or list(SHAPES):
        raw = SHAPES[name](name, size)
        times = measure(name, raw)
        cells = " ".join(f"{times[s]:12.3f}" if s in times else f"{'-':>12}" for s in steps)
        print(f"{name:24} {len(raw):10d} {cells}", flush=True)


if __name__ == "__main__":
    main()
