"""Bytes -> `Message`: mail-parser first, the stdlib as fallback, a repaired header block last.

mail-parser builds the message tree (it guards the stdlib parser against nesting bombs);
when it fails we fall back to the standard library, default policy first and compat32 last.
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
from email.message import Message
from email.parser import BytesHeaderParser

import mailparser

from doxa.core.errors import InvalidInput

log = logging.getLogger(__name__)

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_HEADER_LINE = re.compile(rb"^[!-9;-~]{1,76}[ \t]*:")
_OBSOLETE_COLON = re.compile(rb"^([!-9;-~]{1,76})[ \t]+:", re.MULTILINE)


def load_message(raw: bytes) -> tuple[Message, list[str]]:
    """The message tree and notes on how it was read; `InvalidInput` if it has no headers."""
    raw = _fix_line_endings(raw)
    message, notes = _load(raw)
    if len(message) == 0 or _lost_headers(message):
        message, notes = _load_recovered(raw, message)
    return message, notes


def _fix_line_endings(raw: bytes) -> bytes:
    head = raw[:65536]
    if b"\n" not in head and b"\r" in head:
        return raw.replace(b"\r", b"\n")  # old Mac CR-only files: the parser needs LF
    return raw


def _load(raw: bytes) -> tuple[Message, list[str]]:
    try:
        parsed = mailparser.parse_from_bytes(raw).message
        if isinstance(parsed, Message):
            return parsed, []
    except Exception as exc:  # any failure falls back to the stdlib
        log.info("mail-parser failed (%s); falling back to the stdlib", type(exc).__name__)
    notes = ["mail-parser could not parse this message; parsed with the standard library"]
    for policy in (email.policy.default, email.policy.compat32):
        try:
            return email.message_from_bytes(raw, policy=policy), notes
        except Exception:  # noqa: S112 - try the next, more lenient policy
            continue
    notes.append("MIME structure unreadable; only the headers were parsed")
    return BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw), notes


def _lost_headers(message: Message) -> bool:
    """The parser stopped at a broken header line before reaching From."""
    broken = any(type(d).__name__ == "MissingHeaderBodySeparatorDefect" for d in message.defects)
    return broken and "from" not in message


def _load_recovered(raw: bytes, first: Message) -> tuple[Message, list[str]]:
    """Second try for a header block the parser rejected: junk first lines, `Name  :` fields,
    continuation lines that lost their indentation."""
    end = _HEADER_END.search(raw)
    head, rest = (raw[: end.start()], raw[end.start() :]) if end else (raw, b"")
    lines = head.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines[:5]) if _HEADER_LINE.match(line)), None)
    if start is None:
        if len(first):
            return first, []
        raise InvalidInput("no header fields: not an email message")
    fixed = [
        line if _HEADER_LINE.match(line) or line[:1] in b" \t" else b" " + line
        for line in lines[start:]
    ]
    message, notes = _load(_OBSOLETE_COLON.sub(rb"\1:", b"".join(fixed)) + rest)
    if len(message) <= len(first):
        if len(first):
            return first, []
        raise InvalidInput("no header fields: not an email message")
    return message, [*notes, "malformed header block repaired before parsing"]
