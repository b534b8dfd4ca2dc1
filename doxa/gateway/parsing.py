"""MIME bytes -> `InboundMessage`.

mail-parser builds the message tree (it guards the stdlib parser against nesting bombs);
when it fails we fall back to the standard library, default policy first and compat32 last.
Header and body decoding is ours: mail-parser leaves non-standard charsets (UTF-7 aliases,
mislabelled GB2312, raw 8-bit headers) undecoded, and a support desk must show every message.
Nothing here raises except `InvalidInput` for input that is not an email at all.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import email.utils
import functools
import hashlib
import logging
import mimetypes
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser

import mailparser

from doxa.core.errors import InvalidInput
from doxa.core.intake import loops, text
from doxa.core.intake.inbound import InboundAttachment, InboundMessage
from doxa.core.intake.pipeline import RawEvent

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 1024 * 1024
MAX_SUBJECT_CHARS = 998
MAX_HEADER_CHARS = 998
MAX_IDS = 100
MAX_DEPTH = 40
NO_SUBJECT = "(no subject)"

# Labels mail clients write that Python does not know, or supersets that decode what the
# label's strict codec rejects (WHATWG does the same for the web).
_CHARSET_ALIASES = {
    "unicode-1-1-utf-7": "utf-7",
    "utf7": "utf-7",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "euc-cn": "gb18030",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "big5": "big5hkscs",
    "iso-2022-jp": "iso2022_jp_2",
    "tis-620": "cp874",
    "windows-874": "cp874",
}
_UNKNOWN_CHARSETS = {"unknown-8bit", "x-unknown", "unknown", "default", "x-user-defined", "8bit"}
_EXTENSIONS = {
    "message/rfc822": ".eml",
    "message/delivery-status": ".txt",
    "message/disposition-notification": ".txt",
    "message/feedback-report": ".txt",
    "text/rfc822-headers": ".txt",
    "text/plain": ".txt",
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "application/ms-tnef": ".dat",
    "application/octet-stream": ".bin",
}
_ADDRESS = re.compile(r"^[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+$")
_ADDRESS_SEARCH = re.compile(r"[^@\s<>()\[\],;:\"']+@[^@\s<>()\[\],;:\"']+\.[^@\s<>()\[\],;:\"']+")
_MESSAGE_ID = re.compile(r"<([^<>\s]{1,998})>")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?(.*?)\?=")
_BETWEEN_WORDS = re.compile(r"\?=[ \t]+=\?")
_UNSAFE_FILENAME = re.compile(r"[\x00-\x1f\x7f/\\]+")
_DAEMON_LOCAL = re.compile(r"^(?:mailer-daemon|postmaster)$", re.IGNORECASE)
_CID_FILENAME = re.compile(r"^[\w.-]{1,100}\.\w{1,5}$")
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_HEADER_LINE = re.compile(rb"^[!-9;-~]{1,76}[ \t]*:")
_OBSOLETE_COLON = re.compile(rb"^([!-9;-~]{1,76})[ \t]+:", re.MULTILINE)


@dataclass(slots=True)
class _Body:
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[InboundAttachment] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def parse_email(raw: bytes, *, max_attachment_bytes: int) -> InboundMessage:
    """Parse one RFC 5322 message; only input that is not an email raises `InvalidInput`."""
    if not raw.strip():
        raise InvalidInput("empty message")
    raw = _fix_line_endings(raw)
    message, notes = _load(raw)
    if len(message) == 0 or _lost_headers(message):
        message, notes = _load_recovered(raw, message)
    hint = _charset_hint(message)
    body = _Body(notes=notes)
    sender_email, sender_name, from_email = _identity(message, body.notes, hint)
    _walk_safely(message, body, max_attachment_bytes)
    plain, html = _bodies(body)
    return InboundMessage(
        sender_email=sender_email,
        sender_name=sender_name,
        from_email=from_email,
        subject=_single_line(_header(message, "subject", hint), MAX_SUBJECT_CHARS) or NO_SUBJECT,
        text=plain,
        html=html,
        message_id=_first_id(_header(message, "message-id")),
        in_reply_to=_ids(_header(message, "in-reply-to")),
        references=_ids(_header(message, "references")),
        headers=_loop_headers(message, hint),
        content_type=_content_type(message),
        attachments=body.attachments,
        notes=body.notes,
        date=_single_line(_header(message, "date")) or None,
    )


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
        log.info("mail-parser failed, falling back to the stdlib: %r", exc)
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


# --- headers ---------------------------------------------------------------------------


def _raw_values(message: Message, name: str) -> list[str]:
    """Every `name` header as written: policies turn 8-bit bytes into U+FFFD on access."""
    try:
        return [str(value) for key, value in message.raw_items() if key.lower() == name]
    except Exception:
        return []


def _header(message: Message, name: str, hint: str | None = None) -> str:
    """The first `name` header, decoded; "" when absent."""
    values = _raw_values(message, name)
    return decode_header(values[0], hint) if values else ""


def _charset_hint(message: Message) -> str | None:
    """The body's declared charset: the best guess for raw 8-bit bytes in headers."""
    try:
        for part in message.walk():
            charset = part.get_content_charset()
            if charset and _codec(charset) not in (None, "us-ascii", "ascii", "utf-8"):
                return charset
    except Exception:  # noqa: S110 - only a hint
        pass
    return None


def decode_header(value: str, hint: str | None = None) -> str:
    """Decode one header value: raw 8-bit bytes and (even malformed) RFC 2047 encoded-words."""
    value = _undo_surrogates(value.replace("\r", "").replace("\n", ""), hint)
    if "=?" not in value:
        return value
    # Whitespace between two encoded-words is folding, not text (RFC 2047 section 6.2).
    value = _BETWEEN_WORDS.sub("?==?", value)
    pieces: list[str] = []
    pending: tuple[str, bytearray] | None = None
    position = 0
    for match in _ENCODED_WORD.finditer(value):
        charset, data = (
            match.group(1).split("*")[0].lower(),
            _word_bytes(match.group(2), match.group(3)),
        )
        literal = value[position : match.start()]
        if pending and (literal or data is None or pending[0] != charset):
            pieces.append(decode_bytes(bytes(pending[1]), pending[0], hint))
            pending = None
        pieces.append(literal)
        if data is None:
            pieces.append(match.group(0))
        elif pending:
            pending[1].extend(data)  # one character may be split across adjacent words
        else:
            pending = (charset, bytearray(data))
        position = match.end()
    if pending:
        pieces.append(decode_bytes(bytes(pending[1]), pending[0], hint))
    return "".join(pieces) + value[position:]


def _word_bytes(encoding: str, data: str) -> bytes | None:
    try:
        if encoding in "Bb":
            data = "".join(data.split())
            data = data[: len(data) - len(data) % 4] if len(data) % 4 == 1 else data
            return base64.b64decode(data + "=" * (-len(data) % 4))
        return binascii.a2b_qp(data.encode("utf-8"), header=True)
    except (binascii.Error, ValueError):
        return None


def _undo_surrogates(value: str, hint: str | None = None) -> str:
    """compat32 keeps raw 8-bit header bytes as surrogate escapes; decode them as text."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return decode_bytes(value.encode("utf-8", "surrogateescape"), None, hint)
    return value


def decode_bytes(data: bytes, charset: str | None, hint: str | None = None) -> str:
    """Text of `data` in its declared charset, else UTF-8, else the hint, else Windows-1252."""
    for candidate in (_codec(charset), "utf-8", _codec(hint)):
        if candidate is None:
            continue
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeError, ValueError):
            continue
    return data.decode("cp1252", errors="replace")


def _codec(charset: str | None) -> str | None:
    if not charset:
        return None
    label = charset.strip().strip("\"'").lower()
    if label in _UNKNOWN_CHARSETS:
        return None
    return _CHARSET_ALIASES.get(label, label)


def _single_line(value: str, limit: int = MAX_HEADER_CHARS) -> str:
    return " ".join(value.split())[:limit]


def _content_type(message: Message) -> str:
    try:
        return message.get_content_type().lower()
    except Exception:
        return "text/plain"


def _loop_headers(message: Message, hint: str | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name in sorted(loops.HEADERS_READ):
        values = _raw_values(message, name)
        if values:
            headers[name] = _single_line(decode_header(values[0], hint))
    return headers


def _ids(value: str) -> list[str]:
    found = _MESSAGE_ID.findall(value)
    if not found:
        found = [token.strip("<>,;") for token in re.split(r"[\s,;]+", value)]
    return [token for token in dict.fromkeys(found) if token][:MAX_IDS]


def _first_id(value: str) -> str | None:
    ids = _ids(value)
    return ids[0] if ids else None


# --- addresses -----------------------------------------------------------------------------


def _addresses(message: Message, name: str, hint: str | None) -> list[tuple[str, str]]:
    """(display name, lower-cased address) pairs of a header, valid addresses only."""
    values = [
        _undo_surrogates(value.replace("\r", "").replace("\n", ""), hint)
        for value in _raw_values(message, name)
    ]
    try:
        pairs = email.utils.getaddresses(values)
    except Exception:  # fall back to finding bare addresses below
        pairs = []
    found = [
        (decode_header(n, hint).strip(), a.strip().lower())
        for n, a in pairs
        if _ADDRESS.match(a.strip())
    ]
    if not found:
        found = [
            ("", match.lower()) for value in values for match in _ADDRESS_SEARCH.findall(value)
        ]
    if not found:
        # "From: MAILER-DAEMON" without a domain still names who sent it.
        found = [
            ("", x.strip().lower())
            for n, a in pairs
            for x in (a, n)
            if _DAEMON_LOCAL.match(x.strip())
        ]
    return found


def _identity(message: Message, notes: list[str], hint: str | None) -> tuple[str, str | None, str]:
    """(sender_email, sender_name, from_email): Reply-To wins over From for the answer."""
    sender = (
        _addresses(message, "from", hint) or _addresses(message, "sender", hint) or [("", "")]
    )[0]
    if not sender[1]:
        notes.append("no valid From address")
    chosen = (_addresses(message, "reply-to", hint) or [sender])[0]
    name = chosen[0] or (sender[0] if chosen[1] == sender[1] else "")
    return chosen[1], _single_line(name) or None, sender[1]


# --- body and attachments ------------------------------------------------------------------


def _walk_safely(message: Message, body: _Body, max_attachment_bytes: int) -> None:
    try:
        _walk(message, body, max_attachment_bytes, depth=0)
    except Exception as exc:  # keep what was read before the broken part
        log.info("MIME walk failed: %r", exc)
        body.notes.append(f"part of the MIME structure could not be read ({type(exc).__name__})")


def _walk(part: Message, body: _Body, max_bytes: int, *, depth: int) -> None:
    if depth > MAX_DEPTH:
        body.notes.append("MIME nesting too deep; deeper parts were skipped")
        return
    ctype = _content_type(part)
    if ctype.startswith("multipart/"):
        payload = part.get_payload()
        for child in payload if isinstance(payload, list) else []:
            if isinstance(child, Message):
                _walk(child, body, max_bytes, depth=depth + 1)
        return
    if ctype in ("text/plain", "text/html") and _is_body_part(part):
        target = body.html if ctype == "text/html" else body.plain
        target.append(_part_text(part))
        return
    body.attachments.append(
        _attachment(part, ctype, len(body.attachments) + 1, max_bytes, body.notes)
    )


def _is_body_part(part: Message) -> bool:
    try:
        return part.get_content_disposition() != "attachment" and not _declared_filename(part)
    except Exception:
        return True


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return str(payload or "")
    try:
        charset = part.get_content_charset()
    except Exception:
        charset = None
    return decode_bytes(payload, charset)


def _bodies(body: _Body) -> tuple[str, str | None]:
    html = "\n".join(part.strip() for part in body.html if part.strip()) or None
    plain = "\n\n".join(part.strip("\r\n") for part in body.plain if part.strip())
    if not plain and html:
        plain = text.html_to_text(html)
    plain = plain.replace("\r\n", "\n")
    if len(plain) > MAX_TEXT_CHARS:
        body.notes.append(f"text truncated to {MAX_TEXT_CHARS} characters (was {len(plain)})")
        plain = plain[:MAX_TEXT_CHARS]
    return plain, (text.sanitize_html(html) if html else None)


def _attachment(
    part: Message, ctype: str, index: int, max_bytes: int, notes: list[str]
) -> InboundAttachment:
    content = _part_bytes(part)
    filename = _filename(part, ctype, index)
    content_id = _first_id(_header(part, "content-id"))
    if ctype == "application/ms-tnef" or filename.lower() == "winmail.dat":
        notes.append(f"TNEF {filename} kept undecoded")
    if len(content) > max_bytes:
        notes.append(f"attachment {filename} ({len(content)} bytes) over the limit, not stored")
    return InboundAttachment(
        filename=filename,
        content_type=ctype,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        content_id=content_id,
        inline=_is_inline(part, content_id),
        content=content if len(content) <= max_bytes else None,
    )


def _part_bytes(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload
    inner = part.get_payload()
    if isinstance(inner, list) and inner and isinstance(inner[0], Message):
        try:
            return inner[0].as_bytes()  # an attached message/rfc822 is stored as .eml
        except Exception:
            return inner[0].as_string().encode("utf-8", "surrogateescape")
    return str(inner or "").encode("utf-8", "surrogateescape")


def _is_inline(part: Message, content_id: str | None) -> bool:
    try:
        disposition = part.get_content_disposition()
    except Exception:
        disposition = None
    return disposition == "inline" or (disposition is None and content_id is not None)


def _filename(part: Message, ctype: str, index: int) -> str:
    name = _declared_filename(part)
    if name:
        return name
    extension = _EXTENSIONS.get(ctype) or mimetypes.guess_extension(ctype) or ".bin"
    cid_name = _first_id(_header(part, "content-id")) or ""
    cid_name = cid_name.split("@")[0]
    if _CID_FILENAME.match(cid_name):
        return cid_name  # Outlook names inline images by their Content-ID: image001.jpg@01D…
    base = _embedded_subject(part, ctype) or _safe_filename(_header(part, "content-description"))
    if ctype == "message/delivery-status" and not base:
        base = "delivery-status"
    return f"{base or f'attachment-{index}'}{extension}"


def _declared_filename(part: Message) -> str:
    """The RFC 2231 / RFC 2047 / raw 8-bit filename, read from the raw headers."""
    probe = Message()
    for name in ("content-disposition", "content-type"):
        for value in _raw_values(part, name)[:1]:
            probe[name] = _undo_surrogates(value.replace("\r", "").replace("\n", ""))
    try:
        raw = probe.get_filename()
    except Exception:
        return ""
    if not raw:
        return ""
    return _safe_filename(re.split(r"[/\\]", decode_header(str(raw)))[-1])


def _embedded_subject(part: Message, ctype: str) -> str:
    inner = part.get_payload() if ctype == "message/rfc822" else None
    if isinstance(inner, list) and inner and isinstance(inner[0], Message):
        return _safe_filename(_single_line(_header(inner[0], "subject")))
    return ""


def _safe_filename(name: str) -> str:
    name = _UNSAFE_FILENAME.sub("_", name.replace("\t", " ")).strip(" ._")
    return name[:200]


def parse_event(event: RawEvent, *, max_attachment_bytes: int) -> InboundMessage:
    return parse_email(event.raw, max_attachment_bytes=max_attachment_bytes)


def email_normalizer(max_attachment_bytes: int) -> Callable[[RawEvent], InboundMessage]:
    """The pipeline's normalizer for raw RFC 5322 bytes (SMTP and `doxa ingest`).

    A partial of a module-level function, so it can run in a parser process.
    """
    return functools.partial(parse_event, max_attachment_bytes=max_attachment_bytes)
