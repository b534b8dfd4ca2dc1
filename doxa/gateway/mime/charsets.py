"""Bytes -> text under the charset labels mail clients actually write."""

from __future__ import annotations

import codecs
import re

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
_SURROGATE = re.compile("[\ud800-\udfff]")
_UNKNOWN_CHARSETS = {"unknown-8bit", "x-unknown", "unknown", "default", "x-user-defined", "8bit"}
# Python text codecs that no mail client writes, and whose decoders cost the square of the
# input (punycode: a 1 MB body took minutes) or read escapes as code: read as unlabelled text.
_NOT_MAIL_CHARSETS = {"punycode", "idna", "unicode_escape", "raw_unicode_escape"}


def decode_bytes(data: bytes, charset: str | None, hint: str | None = None) -> str:
    """Text of `data` in its declared charset, else UTF-8, else the hint, else Windows-1252.

    Never a lone surrogate (UTF-7 and UTF-16 decoders make them from hostile input; no database
    stores one): each becomes U+FFFD.
    """
    for candidate in (codec(charset), "utf-8", codec(hint)):
        if candidate is None:
            continue
        try:
            return without_surrogates(data.decode(candidate))
        except (LookupError, UnicodeError, ValueError):
            continue
    return data.decode("cp1252", errors="replace")


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
    try:
        if codecs.lookup(label).name.replace("-", "_") in _NOT_MAIL_CHARSETS:
            return None
    except LookupError:
        return label  # unknown: the caller's decode attempt falls through to the next candidate
    return label
