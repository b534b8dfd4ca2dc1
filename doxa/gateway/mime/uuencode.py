"""Files uuencoded inline in a text body (`begin 644 name` ... `end`), as older clients wrote."""

from __future__ import annotations

import binascii
import re

_BEGIN = re.compile(r"^begin +([0-7]{3,4}) +(\S.{0,254})$")
_MAX_FILES = 100


def split_uuencoded(text: str) -> tuple[str, list[tuple[str, bytes]]]:
    """(the text without its uuencoded blocks, [(file name, content)]).

    A block counts only when every line up to `end` is a valid uuencoded line, so prose that
    happens to start with "begin 644" stays text. One pass over the lines.
    """
    if "begin " not in text:
        return text, []
    lines = text.split("\n")
    kept: list[str] = []
    files: list[tuple[str, bytes]] = []
    i = 0
    while i < len(lines):
        start = _BEGIN.match(lines[i].rstrip("\r"))
        block = _block(lines, i + 1) if start and len(files) < _MAX_FILES else None
        if start is None or block is None:
            kept.append(lines[i])
            i += 1
            continue
        content, i = block
        files.append((start.group(2).strip(), content))
    return "\n".join(kept), files


def _block(lines: list[str], first: int) -> tuple[bytes, int] | None:
    """The decoded bytes of the lines from `first` to `end`, and the index after `end`."""
    data = bytearray()
    for i in range(first, len(lines)):
        line = lines[i].rstrip("\r")
        if line.rstrip() == "end":
            return bytes(data), i + 1
        chunk = _line_bytes(line)
        if chunk is None:
            return None
        data += chunk
    return None


def _line_bytes(line: str) -> bytes | None:
    if not line or not all(" " <= ch <= "`" for ch in line):
        return None if line else b""
    try:
        return binascii.a2b_uu(line)
    except binascii.Error:
        # Some encoders pad lines past their length byte: decode only what the length says.
        length = ((ord(line[0]) - 32) & 63) * 4 + 5
        try:
            return binascii.a2b_uu(line[: length // 3])
        except binascii.Error:
            return None
