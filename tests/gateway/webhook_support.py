"""Helpers for the webhook edge's tests: signing as each sender does, and the shared samples."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import CORPUS_ROOT

if TYPE_CHECKING:  # the gateway's conftest imports this module for its `hooks` fixture
    from tests.gateway.conftest import Smtp, StartSmtp

WEBHOOK_CORPUS = CORPUS_ROOT / "webhooks"  # ../shared/corpus, or DOXA_CORPUS (README)
SECRET = "form-secret-for-tests"
MAILGUN_KEY = "mailgun-key-for-tests"
POSTMARK = ("postmark-user", "postmark-password")
SENDGRID = ("sendgrid-user", "sendgrid-password")
# Ours, plus the recipients of the corpus samples.
MAILBOXES = ",".join(
    [
        "support@example.com",
        "hook@sandboxdb91ab935a414789809f96c91229a0ee.mailgun.org",
        "alice@sandbox085a3b878a964897b9b9efb2395a1f5a.mailgun.org",
        "inbound@inbound.example.com",
        "inbound@inbound.inbound.com",
        "451d9b70cf9364d23ff6f9d51d870251569e@inbound.postmarkapp.com",
        "api-hash@inbound.postmarkapp.com",
    ]
)
CONFIGURED: dict[str, object] = {
    "webhook_secret": SECRET,
    "mailgun_signing_key": MAILGUN_KEY,
    "postmark_inbound_user": POSTMARK[0],
    "postmark_inbound_password": POSTMARK[1],
    "sendgrid_inbound_user": SENDGRID[0],
    "sendgrid_inbound_password": SENDGRID[1],
    "support_addresses": MAILBOXES,
}


def start_hooks(start_smtp: StartSmtp, **overrides: object) -> Smtp:
    """The real app (intake worker, SMTP listener) with every webhook endpoint configured."""
    return start_smtp(**{**CONFIGURED, **overrides})


def corpus(path: str) -> Path:
    """A file of the shared webhook samples; the test skips where they are absent."""
    found = WEBHOOK_CORPUS / path
    if not found.is_file():
        pytest.skip(f"webhook samples not found at {found} (../shared/corpus or DOXA_CORPUS)")
    return found


def signed(
    body: bytes,
    *,
    timestamp: int | None = None,
    secret: str = SECRET,
    content_type: str = "application/json",
    **headers: str,
) -> dict[str, str]:
    """The headers a website's backend sends with a form post."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {
        "X-Doxa-Timestamp": stamp,
        "X-Doxa-Signature": f"sha256={digest}",
        "Content-Type": content_type,
        **headers,
    }


def form_json(**fields: Any) -> bytes:
    values = {
        "email": "carol@example.org",
        "name": "Carol",
        "subject": "Order missing",
        "message": "My order ORD-7 never arrived.",
    } | fields
    return json.dumps({k: v for k, v in values.items() if v is not None}).encode()


def mailgun_signed(
    fields: dict[str, Any],
    *,
    timestamp: int | None = None,
    token: str | None = None,
    key: str = MAILGUN_KEY,
) -> dict[str, Any]:
    """The fields with a fresh Mailgun signature (the samples' own keys are not public)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    token = token or secrets.token_hex(25)
    signature = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    return {**fields, "timestamp": stamp, "token": token, "signature": signature}


def basic(user: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}
