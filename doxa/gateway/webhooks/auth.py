"""Who may post: the form's HMAC signature, Mailgun's signed token, providers' basic credentials.

Every comparison is in constant time; every refusal is `Unauthenticated` (401), so a provider
set up with a wrong key keeps retrying and gets through once the key is fixed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

from doxa.core.errors import Unauthenticated, Unavailable

WINDOW_SECONDS = 300
SIGNATURE_PREFIX = "sha256="


def required(value: str | None, variable: str) -> str:
    """A setting an endpoint cannot work without: 503 naming it until it is set."""
    if not value:
        raise Unavailable(f"this endpoint is not configured: set {variable}")
    return value


def fresh(timestamp: str, *, now: float | None = None) -> int:
    """The Unix timestamp, if within WINDOW_SECONDS of now (either side)."""
    try:
        when = int(timestamp.strip())
    except ValueError:
        raise Unauthenticated("timestamp missing or not Unix seconds") from None
    if abs((time.time() if now is None else now) - when) > WINDOW_SECONDS:
        raise Unauthenticated(f"timestamp more than {WINDOW_SECONDS} s from now")
    return when


def hmac_hex(key: str, message: bytes) -> str:
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def form_signature(
    secret: str, headers: Mapping[str, str], raw: bytes, *, now: float | None = None
) -> str:
    """Check X-Doxa-Timestamp and X-Doxa-Signature; the signature's hex, which is used once."""
    timestamp = headers.get("x-doxa-timestamp", "")
    given = headers.get("x-doxa-signature", "").strip()
    if not timestamp or not given:
        raise Unauthenticated("X-Doxa-Timestamp and X-Doxa-Signature are required")
    fresh(timestamp, now=now)
    expected = hmac_hex(secret, timestamp.strip().encode() + b"." + raw)
    if not hmac.compare_digest(given.lower().encode(), (SIGNATURE_PREFIX + expected).encode()):
        raise Unauthenticated("signature does not match")
    return expected


def mailgun_signature(
    key: str, timestamp: str, token: str, signature: str, *, now: float | None = None
) -> None:
    """Mailgun signs timestamp + token with the domain's webhook signing key."""
    if not (timestamp and token and signature):
        raise Unauthenticated("timestamp, token and signature fields are required")
    fresh(timestamp, now=now)
    expected = hmac_hex(key, (timestamp + token).encode())
    if not hmac.compare_digest(signature.strip().lower().encode(), expected.encode()):
        raise Unauthenticated("signature does not match")


def basic_credentials(authorization: str, user: str, password: str) -> None:
    """HTTP basic credentials, as Postmark and SendGrid send them from the webhook URL."""
    scheme, _, encoded = authorization.partition(" ")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    given_user, _, given_password = decoded.partition(b":")
    good_user = hmac.compare_digest(given_user, user.encode())
    good_password = hmac.compare_digest(given_password, password.encode())
    if scheme.lower() != "basic" or not (good_user and good_password):
        raise Unauthenticated("wrong or missing basic credentials")
