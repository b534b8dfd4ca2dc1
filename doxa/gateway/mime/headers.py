"""Header values: raw 8-bit bytes, (even malformed) RFC 2047 encoded-words, message ids."""

from __future__ import annotations

import base64
import binascii
import re
from email.message import Message

from doxa.core.intake import mail_loops
from doxa.gateway.mime.charsets import codec, decode_bytes, without_surrogates

MAX_HEADER_CHARS = 998
MAX_IDS = 100
# An Authentication-Results header with several results is often longer than one line may be.
MAX_TRUST_HEADER_CHARS = 8000

_MESSAGE_ID = re.compile(r"<([^<>\s]{1,998})>")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?(.*?)\?=")
_BETWEEN_WORDS = re.compile(r"\?=[ \t]+=\?")


def raw_values(message: Message, name: str) -> list[str]:
    """Every `name` header as written: policies turn 8-bit bytes into U+FFFD on access."""
    try:
        return [str(value) for key, value in message.raw_items() if key.lower() == name]
    except Exception:
        return []


def header(message: Message, name: str, hint: str | None = None) -> str:
    """The first `name` header, decoded; "" when absent."""
    values = raw_values(message, name)
    return decode_header(values[0], hint) if values else ""


def charset_hint(message: Message) -> str | None:
    """The body's declared charset: the best guess for raw 8-bit bytes in headers."""
    try:
        for part in message.walk():
            charset = part.get_content_charset()
            if charset and codec(charset) not in (None, "us-ascii", "ascii", "utf-8"):
                return charset
    except Exception:  # noqa: S110 - only a hint
        pass
    return None


def decode_header(value: str, hint: str | None = None) -> str:
    """Decode one header value: raw 8-bit bytes and (even malformed) RFC 2047 encoded-words.

    Raw 8-bit bytes inside an encoded word (older clients write them) are read once, in the
    word's charset; outside the words they are text in the best guess of `undo_surrogates`.
    """
    value = value.replace("\r", "").replace("\n", "")
    if "=?" not in value:
        return undo_surrogates(value, hint)
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
        pieces.append(undo_surrogates(literal, hint))
        if data is None:
            pieces.append(undo_surrogates(match.group(0), hint))
        elif pending:
            pending[1].extend(data)  # one character may be split across adjacent words
        else:
            pending = (charset, bytearray(data))
        position = match.end()
    if pending:
        pieces.append(decode_bytes(bytes(pending[1]), pending[0], hint))
    return "".join(pieces) + undo_surrogates(value[position:], hint)


def _word_bytes(encoding: str, data: str) -> bytes | None:
    try:
        if encoding in "Bb":
            data = "".join(data.split()).encode("ascii", "ignore").decode()
            data = data[: len(data) - len(data) % 4] if len(data) % 4 == 1 else data
            return base64.b64decode(data + "=" * (-len(data) % 4))
        return binascii.a2b_qp(data.encode("utf-8", "surrogateescape"), header=True)
    except (binascii.Error, ValueError):
        return None


def undo_surrogates(value: str, hint: str | None = None) -> str:
    """compat32 keeps raw 8-bit header bytes as surrogate escapes; decode them as text."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return decode_bytes(value.encode("utf-8", "surrogateescape"), None, hint)
        except UnicodeEncodeError:  # a surrogate that is no escaped byte
            return without_surrogates(value)
    return value


def single_line(value: str, limit: int = MAX_HEADER_CHARS) -> str:
    return " ".join(value.split())[:limit]


def content_type(message: Message) -> str:
    try:
        return message.get_content_type().lower()
    except Exception:
        return "text/plain"


def loop_headers(message: Message, hint: str | None) -> dict[str, str]:
    """The headers loop detection reads, decoded onto one line each."""
    headers: dict[str, str] = {}
    for name in sorted(mail_loops.HEADERS_READ):
        values = raw_values(message, name)
        if values:
            headers[name] = single_line(decode_header(values[0], hint), MAX_TRUST_HEADER_CHARS)
    return headers


def ids(value: str) -> list[str]:
    """The message ids of an In-Reply-To / References value, in order, without duplicates."""
    found = _MESSAGE_ID.findall(value)
    if not found:
        found = [token.strip("<>,;") for token in re.split(r"[\s,;]+", value)]
    return [token for token in dict.fromkeys(found) if token][:MAX_IDS]


def first_id(value: str) -> str | None:
    found = ids(value)
    return found[0] if found else None
