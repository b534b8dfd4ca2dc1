"""Our outbound Message-IDs: `doxa.<ticket>.<random>.<hmac>@<mailbox domain>`.

A customer's answer names one of them in In-Reply-To/References, and that threads it. The
random part makes them unguessable and the HMAC lets intake tell one we wrote from a forgery
that only copies the shape, without a database lookup.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

_OURS = re.compile(r"^doxa\.(\d{1,12})\.([0-9a-f]{16})\.([0-9a-f]{20})@", re.IGNORECASE)
_LOOKS_OURS = re.compile(r"^doxa\.", re.IGNORECASE)


def _key(secret: str) -> bytes:
    # A key of its own, derived from the signing secret, so a Message-ID never reveals a
    # value that could sign a token.
    return hashlib.sha256(b"doxa message-id\x00" + secret.encode()).digest()


def _signature(secret: str, ticket_id: str, nonce: str) -> str:
    mac = hmac.new(_key(secret), f"{ticket_id}.{nonce}".encode(), hashlib.sha256)
    return mac.hexdigest()[:20]


def new_message_id(secret: str, *, ticket_id: int, domain: str) -> str:
    """A fresh, signed Message-ID (without angle brackets) for mail about `ticket_id`."""
    nonce = secrets.token_hex(8)
    return f"doxa.{ticket_id}.{nonce}.{_signature(secret, str(ticket_id), nonce)}@{domain}"


def is_forged(secret: str, message_id: str) -> bool:
    """The id has our shape but not our signature: nobody may thread by it."""
    if not _LOOKS_OURS.match(message_id):
        return False
    match = _OURS.match(message_id)
    if match is None:
        return True
    ticket_id, nonce, signature = match.groups()
    expected = _signature(secret, ticket_id, nonce.lower())
    return not hmac.compare_digest(expected, signature.lower())
