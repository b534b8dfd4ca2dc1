"""Providers' parsed fields -> RFC 5322 bytes, so they take the same parser as SMTP mail.

When a provider posts its parsed view of a message instead of the raw source, the original
headers (as the provider lists them) and its text, HTML and files are put back together into
one MIME message. `doxa.gateway.parsing` then decodes, sanitizes and reads loop headers
exactly as it does for mail that came by SMTP: one parser, one set of rules.
"""

from __future__ import annotations

import email.policy
import re
from collections.abc import Iterable
from email.message import EmailMessage

from doxa.core.errors import InvalidInput, Rejected
from doxa.core.intake.inbound import InboundMessage
from doxa.gateway.mime.loading import MAX_HEADER_BYTES, MAX_PARTS
from doxa.gateway.parsing import parse_email
from doxa.gateway.webhooks.bodies import Upload

# The synthesized body brings its own; the provider's describe a body we no longer have.
_BODY_HEADERS = {
    "content-type",
    "content-transfer-encoding",
    "mime-version",
    "content-disposition",
    "content-length",
}
_NAME = re.compile(r"^[!-9;-~]{1,76}$")  # RFC 5322 field names
_FOLD = re.compile(r"\r?\n[ \t]*|\r")


def synthesize(
    headers: Iterable[tuple[str, str]], *, text: str, html: str | None, files: list[Upload]
) -> bytes:
    kept = [(n, v) for n, v in headers if _NAME.match(n) and n.lower() not in _BODY_HEADERS]
    if not text.strip() and not html and not any(n.lower() == "from" for n, _ in kept):
        raise Rejected("the post holds no message: no From, no text", reason="no_message")
    lines = [
        f"{name}: {_FOLD.sub(' ', value).strip()}".encode("utf-8", errors="replace")
        for name, value in kept
    ]
    body = EmailMessage(policy=email.policy.SMTP)
    body.set_content(text, charset="utf-8", cte="base64")
    if html:
        body.add_alternative(html, subtype="html", charset="utf-8", cte="base64")
    for upload in files:
        maintype, _, subtype = upload.content_type.partition("/")
        if not subtype or maintype in ("multipart", "message"):
            maintype, subtype = "application", "octet-stream"
        body.add_attachment(
            upload.content, maintype=maintype, subtype=subtype, filename=upload.filename
        )
    return b"\r\n".join(lines) + b"\r\n" + body.as_bytes()


def parse_mime(
    raw: bytes,
    *,
    max_attachment_bytes: int,
    max_header_bytes: int = MAX_HEADER_BYTES,
    max_mime_parts: int = MAX_PARTS,
) -> InboundMessage:
    """The email parser, with input that is no email at all marked as never usable."""
    try:
        return parse_email(
            raw,
            max_attachment_bytes=max_attachment_bytes,
            max_header_bytes=max_header_bytes,
            max_mime_parts=max_mime_parts,
        )
    except InvalidInput as exc:
        raise Rejected(exc.detail, reason="unreadable") from None
