"""From / Sender / Reply-To -> who sent the message and who gets the answer."""

from __future__ import annotations

import email.utils
import re
from email.message import Message

from doxa.gateway.mime.headers import decode_header, raw_values, single_line, undo_surrogates

_ADDRESS = re.compile(r"^[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+$")
_ADDRESS_SEARCH = re.compile(r"[^@\s<>()\[\],;:\"']+@[^@\s<>()\[\],;:\"']+\.[^@\s<>()\[\],;:\"']+")
_DAEMON_LOCAL = re.compile(r"^(?:mailer-daemon|postmaster)$", re.IGNORECASE)


def identity(
    message: Message, notes: list[str], hint: str | None
) -> tuple[str, str | None, str | None]:
    """(author address, author name, Reply-To address): From: is who wrote it.

    Reply-To only says where answers should go; anyone can set it to anyone's address.
    """
    author = (
        _addresses(message, "from", hint) or _addresses(message, "sender", hint) or [("", "")]
    )[0]
    if not author[1]:
        notes.append("no valid From address")
    reply_to = (_addresses(message, "reply-to", hint) or [("", "")])[0][1]
    return author[1], single_line(author[0]) or None, reply_to or None


def copied(message: Message, hint: str | None) -> list[str]:
    """The Cc: addresses, lower-cased, in order, without repeats."""
    return list(dict.fromkeys(address for _, address in _addresses(message, "cc", hint)))


def _addresses(message: Message, name: str, hint: str | None) -> list[tuple[str, str]]:
    """(display name, lower-cased address) pairs of a header, valid addresses only."""
    # Raw 8-bit bytes stay escaped until each name is decoded: inside an encoded word they are
    # in the word's charset, not the guess for the whole line.
    escaped = [value.replace("\r", "").replace("\n", "") for value in raw_values(message, name)]
    values = [undo_surrogates(value, hint) for value in escaped]
    try:
        pairs = [(n, undo_surrogates(a, hint)) for n, a in email.utils.getaddresses(escaped)]
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
