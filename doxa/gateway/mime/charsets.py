"""Bytes -> text under the charset labels mail clients actually write."""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable

from doxa.gateway.mime.japanese import decode_iso2022jp_ms

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
    # Microsoft's names for ISO-2022-JP with its extensions (decoded by the fallback below).
    "cp50220": "iso2022_jp_2",
    "cp50221": "iso2022_jp_2",
    "cp50222": "iso2022_jp_2",
    "iso-2022-jp-ms": "iso2022_jp_2",
    "x-cp50220": "iso2022_jp_2",
    "x-cp50221": "iso2022_jp_2",
    "windows-31j": "cp932",
    "x-ms-cp932": "cp932",
    "x-euc-jp": "euc_jp",
    "x-windows-949": "cp949",
    "x-mac-roman": "mac_roman",
    "x-mac-cyrillic": "mac_cyrillic",
    "ucs-2": "utf-16",
    "iso-10646-ucs-2": "utf-16",
}
# Hebrew and Arabic "logical" / "explicit" order labels (iso-8859-8-i): the same bytes.
_ORDER_SUFFIX = re.compile(r"^(iso[-_]?8859[-_](?:6|8))[-_][ie]$")
# When a codec rejects the bytes, the superset its writers actually used.
_SUPERSETS: dict[str, Callable[[bytes], str]] = {
    name: decode_iso2022jp_ms
    for name in ("iso2022_jp", "iso2022_jp_1", "iso2022_jp_2", "iso2022_jp_ext")
}
_SURROGATE = re.compile("[\ud800-\udfff]")
_UNKNOWN_CHARSETS = {"unknown-8bit", "x-unknown", "unknown", "default", "x-user-defined", "8bit"}
# Python text codecs that no mail client writes, and whose decoders cost the square of the
# input (punycode: a 1 MB body took minutes) or read escapes as code: read as unlabelled text.
_NOT_MAIL_CHARSETS = {"punycode", "idna", "unicode_escape", "raw_unicode_escape"}


def decode_bytes(data: bytes, charset: str | None, hint: str | None = None) -> str:
    """Text of `data` in its declared charset, else UTF-8, else the hint, else Windows-1252.

    UTF-8 with a few invalid bytes is still UTF-8: each invalid byte costs one U+FFFD, not the
    whole text read as Windows-1252. Never a lone surrogate (UTF-7 and UTF-16 decoders make them
    from hostile input; no database stores one): each becomes U+FFFD.
    """
    for candidate in (codec(charset), "utf-8", codec(hint)):
        if candidate is None:
            continue
        text = _decoded(data, candidate)
        if text is not None:
            return without_surrogates(text)
        if candidate == "utf-8":
            text = _mostly_utf8(data)
            if text is not None:
                return text
    return data.decode("cp1252", errors="replace")


def decode_declared(data: bytes, charset: str) -> str | None:
    """Text of `data` in `charset` (our aliases and supersets included), or None if it is not."""
    label = codec(charset)
    text = _decoded(data, label) if label else None
    return None if text is None else without_surrogates(text)


def _decoded(data: bytes, candidate: str) -> str | None:
    try:
        return data.decode(candidate)
    except (LookupError, UnicodeError, ValueError):
        pass
    try:
        superset = _SUPERSETS.get(codecs.lookup(candidate).name)
        return superset(data) if superset else None
    except (LookupError, UnicodeError, ValueError):
        return None


def _mostly_utf8(data: bytes) -> str | None:
    """UTF-8 text with a few stray bytes (no more of them than well-formed non-ASCII characters),
    each invalid byte replaced; None when the bytes look like another charset altogether."""
    text = data.decode("utf-8", errors="replace")
    replaced = text.count("\ufffd") - data.count(b"\xef\xbf\xbd")
    non_ascii = len(text) - len(text.encode("ascii", errors="ignore"))
    well_formed = non_ascii - text.count("\ufffd")
    return text if 0 < replaced <= well_formed else None


def without_surrogates(text: str) -> str:
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def codec(charset: str | None) -> str | None:
    """The Python codec for a charset label; None for a missing or meaningless label."""
    if not charset:
        return None
    label = charset.strip().strip("\"'").lower()
    if label in _UNKNOWN_CHARSETS:
        return None
    label = _CHARSET_ALIASES.get(label, label)
    label = _ORDER_SUFFIX.sub(r"\1", label)
    try:
        if codecs.lookup(label).name.replace("-", "_") in _NOT_MAIL_CHARSETS:
            return None
    except (LookupError, UnicodeError):
        return label  # unknown: the caller's decode attempt falls through to the next candidate
    return label
