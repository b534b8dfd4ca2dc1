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

from doxa.core.errors import Rejected
from doxa.gateway.mime import linear

log = logging.getLogger(__name__)
linear.install()

_HEADER_END = re.compile(rb"\r?\n\r?\n")
# Field names are as long as a line may be (RFC 5322: 998 characters).
_HEADER_LINE = re.compile(rb"^[!-9;-~]{1,998}[ \t]*:")
# A field whose name is illegal (spaces, punctuation, 8-bit bytes): "X Mailer: ...",
# "Sübject: ...", 'X-Script/function/ !"#$%&...: TEST'.
_ILLEGAL_FIELD = re.compile(rb"^[^\s:][^:\r\n]{0,997}:")
# A quoted boundary folded inside its quotes (Outlook 2000): boundary="----=_NextPart_0\r\n\t00".
_FOLDED_BOUNDARY = re.compile(
    rb'(boundary\s*=\s*")([^"\r\n]{1,200})\r?\n([ \t]+)([^"\r\n]{1,200})"', re.IGNORECASE
)
_MAX_FOLDED_BOUNDARIES = 100
# A Content-Type parameter continued on a line that lost its indentation (Apache James):
# "Content-Type: multipart/alternative;" then "boundary=..." at the start of the next line.
_UNINDENTED_PARAMETER = re.compile(
    rb"^(content-type:[^\r\n]{0,200};[ \t]*\r?\n)(boundary=)", re.IGNORECASE | re.MULTILINE
)
_OBSOLETE_COLON = re.compile(rb"^([!-9;-~]{1,76})[ \t]+:", re.MULTILINE)
_BOUNDARY = re.compile(rb'boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))', re.IGNORECASE)
# An opening delimiter line (a closing one ends in "--", which is then not a known boundary).
_DELIMITER = re.compile(rb"^--([^\r\n]{1,210})", re.MULTILINE)
NO_HEADERS = Rejected("no header fields: not an email message", reason="no_headers")
MAX_HEADER_BYTES = 262_144
MAX_PARTS = 1000


def load_message(
    raw: bytes, *, max_header_bytes: int = MAX_HEADER_BYTES, max_parts: int = MAX_PARTS
) -> tuple[Message, list[str]]:
    """The message tree and notes on how it was read; `InvalidInput` if it has no headers.

    Only the first `max_header_bytes` of the header block and the first `max_parts` MIME parts
    are parsed (each with a note): the raw message is kept whole in intake, and the cost of one
    message stays bounded whatever its shape.
    """
    raw, limited = _bounded(_fix_line_endings(raw), max_header_bytes, max_parts)
    raw, unfolded = _unfold_boundaries(raw)
    message, notes = _load(raw)
    if len(message) == 0 or _lost_headers(message):
        message, notes = _load_recovered(raw, message)
    elif _broken_header_block(message):
        message, notes = _load_recovered(raw, message, only_fields=True)
    return message, [*limited, *unfolded, *notes]


def _bounded(raw: bytes, max_header_bytes: int, max_parts: int) -> tuple[bytes, list[str]]:
    notes: list[str] = []
    end = _HEADER_END.search(raw)
    head_size = end.start() if end else len(raw)
    if head_size > max_header_bytes:
        cut = raw.rfind(b"\n", max_header_bytes // 2, max_header_bytes)
        cut = cut if cut > 0 else max_header_bytes
        raw = raw[:cut].rstrip(b"\r\n") + (raw[end.start() :] if end else b"\n\n")
        notes.append(
            f"header block of {head_size} bytes is over the limit of {max_header_bytes}: "
            "fields beyond it were not processed (the raw message keeps them)"
        )
    parts_end = _part_limit(raw, max_parts)
    if parts_end is not None:
        raw = raw[:parts_end]
        notes.append(
            f"more than {max_parts} MIME parts: parts after the first {max_parts} were not "
            "processed (the raw message keeps them)"
        )
    return raw, notes


def _part_limit(raw: bytes, max_parts: int) -> int | None:
    """Where the delimiter line of part number `max_parts` + 1 starts, if there is one."""
    if raw.count(b"\n--") < max_parts:
        return None  # fewer delimiter-like lines than the limit: nothing to count
    boundaries = {a or b for a, b in _BOUNDARY.findall(raw)}
    opened = 1  # the message itself
    for line in _DELIMITER.finditer(raw):
        if line.group(1).rstrip(b" \t\r") in boundaries:
            opened += 1
            if opened > max_parts:
                return line.start()
    return None


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


def _unfold_boundaries(raw: bytes) -> tuple[bytes, list[str]]:
    """Rejoin boundary parameters folded inside their quotes, to the delimiter the body uses."""
    joined: list[bytes] = []

    def rejoin(match: re.Match[bytes]) -> bytes:
        opening, before, space, after = match.groups()
        for candidate in (before + after, before + space + after, before + b" " + after):
            if b"\n--" + candidate in raw:
                joined.append(candidate)
                return opening + candidate + b'"'
        return match.group(0)

    fixed = _FOLDED_BOUNDARY.sub(rejoin, raw, count=_MAX_FOLDED_BOUNDARIES)
    fixed, indented = _UNINDENTED_PARAMETER.subn(rb"\1\t\2", fixed, count=_MAX_FOLDED_BOUNDARIES)
    notes = ["a boundary folded inside its quotes was rejoined"] if joined else []
    if indented:
        notes.append("a boundary parameter that lost its indentation was read as one")
    return fixed, notes


def _lost_headers(message: Message) -> bool:
    """The parser stopped at a broken header line before reaching From."""
    return _broken_header_block(message) and "from" not in message


def _broken_header_block(message: Message) -> bool:
    """The parser ended the header block at a line that is no header field."""
    return any(type(d).__name__ == "MissingHeaderBodySeparatorDefect" for d in message.defects)


def _load_recovered(
    raw: bytes, first: Message, *, only_fields: bool = False
) -> tuple[Message, list[str]]:
    """Second try for a header block the parser rejected: junk first lines, `Name  :` fields,
    fields with an illegal name (dropped), continuation lines that lost their indentation.

    `only_fields`: the first parse found From, so only illegal fields are repaired; a line of
    prose is where the body starts (a message without the blank line), not a lost continuation.
    """
    end = _HEADER_END.search(raw)
    head, rest = (raw[: end.start()], raw[end.start() :]) if end else (raw, b"")
    lines = head.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines[:5]) if _HEADER_LINE.match(line)), None)
    fixed = _repaired(lines[start:], only_fields=only_fields) if start is not None else None
    if fixed is None:
        if len(first):
            return first, []
        raise NO_HEADERS
    message, notes = _load(_OBSOLETE_COLON.sub(rb"\1:", b"".join(fixed)) + rest)
    if len(message) <= len(first):
        if len(first):
            return first, []
        raise NO_HEADERS
    return message, [*notes, "malformed header block repaired before parsing"]


def _repaired(lines: list[bytes], *, only_fields: bool) -> list[bytes] | None:
    """The header lines without illegal fields (each dropped with its continuation lines).

    `only_fields`: a bad line is dropped only where header fields go on after it (a colon-less
    line only before a well-formed field); elsewhere it is where the body starts (None).
    Otherwise a colon-less line is a continuation that lost its indentation.
    """
    header_follows = _header_follows(lines)
    fixed: list[bytes] = []
    dropping = False
    for i, line in enumerate(lines):
        if line[:1] in b" \t":
            if not dropping:
                fixed.append(line)
        elif _HEADER_LINE.match(line):
            fixed.append(line)
            dropping = False
        elif only_fields and not header_follows[i]:
            return None
        elif only_fields or _ILLEGAL_FIELD.match(line):
            dropping = True  # one bad field must not end the header block
        else:
            fixed.append(b" " + line)
            dropping = False
    return fixed


def _header_follows(lines: list[bytes]) -> list[bool]:
    """For each line that is no well-formed field: whether, after it and its continuation
    lines, the header block goes on (a well-formed field, or another such line that may be
    dropped). One pass from the end, so a run of bad lines stays linear."""
    follows = [False] * len(lines)
    after = True  # past the end: the header block simply ends
    header_next = False  # the next line that is no continuation is a well-formed field
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i]
        if line[:1] in b" \t":
            continue
        if _HEADER_LINE.match(line):
            after, header_next = True, True
            continue
        illegal = bool(_ILLEGAL_FIELD.match(line))
        follows[i] = (after if illegal else header_next) and after
        after, header_next = follows[i], False
    return follows
