"""From / Sender / Reply-To -> who sent the message and who gets the answer."""

from __future__ import annotations

import email.utils
import re
from email.message import Message

from doxa.core.addresses import normalize_address
from doxa.gateway.mime.headers import decode_header, raw_values, single_line, undo_surrogates

_ADDRESS_SEARCH = re.compile(r"[^@\s<>()\[\],;:\"']+@[^@\s<>()\[\],;:\"']+\.[^@\s<>()\[\],;:\"']+")
_DAEMON_LOCAL = re.compile(r"^(?:mailer-daemon|postmaster)$", re.IGNORECASE)


def identity(
    message: Message, notes: list[str], hint: str | None
) -> tuple[str, str | None, str | None]:
    """(author address, author name, Reply-To address): From: is who wrote it, or its Sender:
    when it lists several authors (RFC 5322 3.6.2); "" when neither gives a usable address.

    Reply-To only says where answers should go; anyone can set it to anyone's address.
    """
    authors = _addresses(message, "from", hint)
    sender = _addresses(message, "sender", hint)
    if len(authors) > 1 and sender:
        authors = sender
    author = (authors or [("", "")])[0]
    if not author[1]:
        notes.append("no valid From address")
    reply_to = (_addresses(message, "reply-to", hint) or [("", "")])[0][1]
    return author[1], single_line(author[0]) or None, reply_to or None


def copied(message: Message, hint: str | None) -> list[str]:
    """The Cc: addresses, lower-cased, in order, without repeats."""
    return list(dict.fromkeys(address for _, address in _addresses(message, "cc", hint)))


def _addresses(message: Message, name: str, hint: str | None) -> list[tuple[str, str]]:
    """(display name, normalized address) pairs of a header, usable addresses only."""
    # Raw 8-bit bytes stay escaped until each name is decoded: inside an encoded word they are
    # in the word's charset, not the guess for the whole line.
    escaped = [value.replace("\r", "").replace("\n", "") for value in raw_values(message, name)]
    values = [undo_surrogates(value, hint) for value in escaped]
    try:
        pairs = [(n, undo_surrogates(a, hint)) for n, a in email.utils.getaddresses(escaped)]
    except Exception:  # fall back to finding bare addresses below
        pairs = []
    found = [
        (decode_header(n, hint).strip(), address)
        for n, a in pairs
        if (address := normalize_address(a)) is not None
    ]
    if not found:
        found = [
            ("", address)
            for value in values
            for match in _ADDRESS_SEARCH.findall(value)
            if (address := normalize_address(match)) is not None
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
