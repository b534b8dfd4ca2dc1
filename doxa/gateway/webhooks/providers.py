"""What Mailgun routes, SendGrid Inbound Parse and Postmark inbound post, read two ways.

At the edge, an `Envelope` (recipients, sender, Message-ID) decides whether the post is ours
and how to dedupe it. In the pipeline, a normalizer turns the stored body into a message:
raw MIME when the provider sent it (Mailgun `body-mime`, SendGrid raw mode's `email`,
Postmark `RawEmail`), otherwise the provider's fields put back together as MIME. Either way
the SMTP edge's parser reads it, so a message gives the same ticket by any path.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from email.parser import HeaderParser
from email.utils import formataddr, getaddresses
from typing import Any

from doxa.core.config import Settings
from doxa.core.errors import InvalidInput, Rejected
from doxa.core.intake.inbound import InboundMessage
from doxa.core.intake.pipeline import RawEvent, message_id_of
from doxa.gateway.mime.charsets import decode_bytes
from doxa.gateway.mime.headers import first_id
from doxa.gateway.webhooks.bodies import Form, Upload, read_form
from doxa.gateway.webhooks.synthesis import parse_mime, synthesize

NOT_OURS = "not_our_recipient"
_SUMMARY_HEADERS = (
    "From",
    "To",
    "Cc",
    "Reply-To",
    "Subject",
    "Date",
    "Message-Id",
    "In-Reply-To",
    "References",
)


@dataclass(frozen=True, slots=True)
class Envelope:
    recipients: list[str]
    sender: str | None
    message_id: str | None


def _addresses(*values: str) -> list[str]:
    return [addr.lower() for _, addr in getaddresses(list(values)) if "@" in addr]


def _read(event: RawEvent) -> Form:
    try:
        return read_form(event.raw, event.extra.get("content_type"))
    except InvalidInput as exc:
        raise Rejected(exc.detail, reason="unreadable") from None


def _refused(event: RawEvent) -> None:
    if event.extra.get("refused"):
        raise Rejected("no recipient of the post is one of our addresses", reason=NOT_OURS)


def _summary(form: Form) -> list[tuple[str, str]]:
    """Headers from the provider's summary fields, when it lists no headers of its own."""
    return [
        (name, form.text(name) or form.text(name.lower()))
        for name in _SUMMARY_HEADERS
        if form.text(name) or form.text(name.lower())
    ]


# Mailgun routes: forward() posts parsed fields; to a URL ending in "mime", `body-mime` too.


def mailgun_envelope(form: Form) -> Envelope:
    mime = form.data("body-mime")
    message_id = message_id_of(mime) if mime.strip() else first_id(form.text("Message-Id"))
    return Envelope(_addresses(form.text("recipient")), form.text("sender") or None, message_id)


def mailgun_message(event: RawEvent, *, max_attachment_bytes: int, **limits: int) -> InboundMessage:
    form = _read(event)
    _refused(event)
    if form.data("body-mime").strip():
        return parse_mime(
            form.data("body-mime"), max_attachment_bytes=max_attachment_bytes, **limits
        )
    try:
        listed = json.loads(form.text("message-headers") or "[]")
        headers = [(str(n), str(v)) for n, v in listed]
    except (ValueError, TypeError, RecursionError):
        headers = []
    if headers and not any(name.lower() == "from" for name, _ in headers) and form.text("from"):
        headers.append(("From", form.text("from")))  # Mailgun's own field names the author too
    raw = synthesize(
        headers or _summary(form),
        text=form.text("body-plain"),
        html=form.text("body-html") or None,
        files=form.files,
    )
    return parse_mime(raw, max_attachment_bytes=max_attachment_bytes, **limits)


# SendGrid Inbound Parse: parsed fields, or with "POST the raw, full MIME message", `email`.


def sendgrid_envelope(form: Form) -> Envelope:
    try:
        envelope = json.loads(form.text("envelope") or "{}")
        listed = envelope.get("to") or []
        to = [str(a).lower() for a in ([listed] if isinstance(listed, str) else listed)]
        sender = str(envelope.get("from") or "") or None
    except (ValueError, TypeError, AttributeError, RecursionError):
        to, sender = [], None
    raw = form.data("email") if form.text("email").strip() else form.data("headers") + b"\r\n\r\n"
    return Envelope(to or _addresses(form.text("to"), form.text("cc")), sender, message_id_of(raw))


def sendgrid_message(
    event: RawEvent, *, max_attachment_bytes: int, **limits: int
) -> InboundMessage:
    form = _read(event)
    _refused(event)
    if form.text("email").strip():
        return parse_mime(form.data("email"), max_attachment_bytes=max_attachment_bytes, **limits)
    try:
        charsets = json.loads(form.text("charsets") or "{}")
    except (ValueError, RecursionError):
        charsets = {}
    if not isinstance(charsets, dict):
        charsets = {}
    text, html = (
        decode_bytes(form.data(n), str(charsets.get(n) or "utf-8")) for n in ("text", "html")
    )
    headers = HeaderParser().parsestr(form.text("headers") + "\n\n").items()
    raw = synthesize(headers or _summary(form), text=text, html=html or None, files=form.files)
    return parse_mime(raw, max_attachment_bytes=max_attachment_bytes, **limits)


# Postmark inbound: one JSON document; `RawEmail` when "Include raw email content" is on.


def _postmark(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise Rejected(f"malformed JSON body: {exc}", reason="unreadable") from None
    if not isinstance(value, dict):
        raise Rejected("the JSON body is not an object", reason="unreadable")
    return value


def _objects(post: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The JSON objects listed under `name`; nothing when the value is of another shape (a post
    nobody tested: the message is read from what is usable, never a 500)."""
    value = post.get(name)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _full(post: dict[str, Any], name: str) -> list[str]:
    return [str(p.get("Email", "")).lower() for p in _objects(post, name) if p.get("Email")]


def postmark_envelope(raw: bytes) -> Envelope:
    post = _postmark(raw)
    original = str(post.get("OriginalRecipient") or "")
    listed = _full(post, "ToFull") + _full(post, "CcFull") + _full(post, "BccFull")
    recipients = _addresses(original) or listed or _addresses(str(post.get("To") or ""))
    sender = (
        (post.get("FromFull") or {}).get("Email")
        if isinstance(post.get("FromFull"), dict)
        else None
    )
    raw_email = _raw_email(post)
    message_id = message_id_of(raw_email) if raw_email else None
    for item in _objects(post, "Headers"):
        if str(item.get("Name", "")).lower() == "message-id":
            message_id = message_id or first_id(str(item.get("Value", "")))
    return Envelope(recipients, str(sender or post.get("From") or "") or None, message_id)


def _raw_email(post: dict[str, Any]) -> bytes | None:
    """`RawEmail`, when Postmark sent it (a string holding a message)."""
    value = post.get("RawEmail")
    if not isinstance(value, str) or not value:
        return None
    return value.encode("utf-8", errors="surrogateescape")


def _postmark_headers(post: dict[str, Any]) -> list[tuple[str, str]]:
    full = post.get("FromFull")
    sender: dict[str, Any] = full if isinstance(full, dict) else {}
    summary = {
        "From": formataddr((str(sender.get("Name") or ""), str(sender.get("Email") or "")))
        if sender.get("Email")
        else str(post.get("From") or ""),
        "To": str(post.get("To") or ""),
        "Cc": str(post.get("Cc") or ""),
        "Reply-To": str(post.get("ReplyTo") or ""),
        "Subject": str(post.get("Subject") or ""),
        "Date": str(post.get("Date") or ""),
    }
    listed = [(str(h.get("Name", "")), str(h.get("Value", ""))) for h in _objects(post, "Headers")]
    names = {n.lower() for n, _ in listed}
    return [(n, v) for n, v in summary.items() if v and n.lower() not in names] + listed


def _postmark_files(post: dict[str, Any]) -> list[Upload]:
    files = []
    for item in _objects(post, "Attachments"):
        try:
            content = base64.b64decode(str(item.get("Content") or ""))
        except (binascii.Error, ValueError):
            content = b""
        files.append(
            Upload(
                "attachment",
                str(item.get("Name") or "attachment"),
                str(item.get("ContentType") or "application/octet-stream"),
                content,
            )
        )
    return files


def postmark_message(
    event: RawEvent, *, max_attachment_bytes: int, **limits: int
) -> InboundMessage:
    post = _postmark(event.raw)
    _refused(event)
    if raw := _raw_email(post):
        return parse_mime(raw, max_attachment_bytes=max_attachment_bytes, **limits)
    raw = synthesize(
        _postmark_headers(post),
        text=str(post.get("TextBody") or ""),
        html=str(post.get("HtmlBody") or "") or None,
        files=_postmark_files(post),
    )
    return parse_mime(raw, max_attachment_bytes=max_attachment_bytes, **limits)


Normalize = Callable[..., InboundMessage]


def normalizer(read: Normalize, settings: Settings) -> Callable[[RawEvent], InboundMessage]:
    """A provider's normalizer with the configured parsing limits bound (picklable, for worker
    processes): raw MIME from a provider is read under the same limits as SMTP's."""
    return functools.partial(
        read,
        max_attachment_bytes=settings.max_attachment_bytes,
        max_header_bytes=settings.max_header_bytes,
        max_mime_parts=settings.max_mime_parts,
    )
