"""ISO-2022-JP as Microsoft and NEC write it (CP50220/CP50221/CP50222), which Python lacks.

Outlook and Japanese mobile clients put the NEC special characters (circled digits, Roman
numerals) and IBM extensions into ISO-2022-JP; Python's strict codecs reject them. Each
two-byte JIS X 0208 code maps arithmetically onto Shift_JIS, and cp932 knows every one of
those extensions, so we shift the bytes across and let cp932 decode them.
"""

from __future__ import annotations

_ESC = 0x1B
_SO, _SI = 0x0E, 0x0F
# Escape sequence -> mode: one byte ASCII/Roman, one byte half-width katakana, two bytes JIS.
_MODES = {b"(B": 1, b"(J": 1, b"(H": 1, b"(I": 2, b"$@": 3, b"$B": 3}


def decode_iso2022jp_ms(data: bytes) -> str:
    """Text of ISO-2022-JP with Microsoft/NEC extensions; `UnicodeDecodeError` when it is not."""
    out = bytearray()
    mode, shifted, i = 1, False, 0
    while i < len(data):
        byte = data[i]
        if byte == _ESC:
            mode = _MODES.get(data[i + 1 : i + 3], 0)
            if mode == 0:  # JIS X 0212 and others have no Shift_JIS form
                raise UnicodeDecodeError("iso2022_jp_ms", data, i, i + 3, "unknown escape")
            i += 3
        elif byte in (_SO, _SI):
            shifted, i = byte == _SO, i + 1
        elif byte in (0x0A, 0x0D) or byte < 0x21 or byte > 0x7E:
            if byte > 0x7F:
                raise UnicodeDecodeError("iso2022_jp_ms", data, i, i + 1, "8-bit byte")
            out.append(byte)  # controls and line ends pass through in any mode
            i += 1
        elif shifted or mode == 2:
            out.append(byte + 0x80)
            i += 1
        elif mode == 3 and i + 1 < len(data):
            out += _shift_jis(byte, data[i + 1])
            i += 2
        else:
            out.append(byte)
            i += 1
    return out.decode("cp932")


def _shift_jis(j1: int, j2: int) -> bytes:
    s1 = ((j1 - 0x21) >> 1) + 0x81
    s1 += 0x40 if s1 > 0x9F else 0
    odd_row = j2 + 0x1F + (1 if j2 >= 0x60 else 0)
    return bytes((s1, odd_row if j1 & 1 else j2 + 0x7E))
