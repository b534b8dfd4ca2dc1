"""MIME bytes -> `InboundMessage`.

mail-parser builds the message tree (it guards the stdlib parser against nesting bombs);
when it fails we fall back to the standard library, default policy first and compat32 last.
Header and body decoding is ours: mail-parser leaves non-standard charsets (UTF-7 aliases,
mislabelled GB2312, raw 8-bit headers) undecoded, and a support desk must show every message.
Nothing here raises except `InvalidInput` for input that is not an email at all.

This module assembles the message; the pieces live in `doxa.gateway.mime`.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable

from doxa.core.addresses import normalize_address
from doxa.core.config import Settings
from doxa.core.errors import Rejected
from doxa.core.intake.inbound import InboundAttachment, InboundMessage
from doxa.core.intake.pipeline import RawEvent
from doxa.gateway.mime.addresses import copied, identity
from doxa.gateway.mime.bodies import MAX_DEPTH, MAX_TEXT_CHARS, Body, texts, walk_safely
from doxa.gateway.mime.charsets import decode_bytes
from doxa.gateway.mime.headers import (
    MAX_HEADER_CHARS,
    MAX_IDS,
    charset_hint,
    content_type,
    decode_header,
    first_id,
    header,
    ids,
    loop_headers,
    single_line,
)
from doxa.gateway.mime.loading import MAX_HEADER_BYTES, MAX_PARTS, load_message
from doxa.gateway.mime.trace import relay_results

__all__ = [
    "MAX_DEPTH",
    "MAX_HEADER_CHARS",
    "MAX_IDS",
    "MAX_SUBJECT_CHARS",
    "MAX_TEXT_CHARS",
    "NO_SUBJECT",
    "decode_bytes",
    "decode_header",
    "email_normalizer",
    "parse_email",
    "parse_event",
]

MAX_SUBJECT_CHARS = 998
NO_SUBJECT = "(no subject)"


def parse_email(
    raw: bytes,
    *,
    max_attachment_bytes: int,
    max_header_bytes: int = MAX_HEADER_BYTES,
    max_mime_parts: int = MAX_PARTS,
    envelope_from: str | None = None,
) -> InboundMessage:
    """Parse one RFC 5322 message; input that can never be one raises `Rejected`.

    Data without a header block is a message from the envelope sender, if there is one, as
    an MTA adds a missing From: (a bare body, an Outlook .msg file sent as message data).
    """
    if not raw.strip():
        raise Rejected("empty message", reason="empty")
    try:
        message, notes = load_message(
            raw, max_header_bytes=max_header_bytes, max_parts=max_mime_parts
        )
    except Rejected as no_headers:
        sender = _usable_sender(envelope_from)
        if sender is None:
            raise Rejected(
                f"{no_headers.detail}, and no envelope sender to take as its author",
                reason=no_headers.reason,
            ) from None
        return headerless(raw, sender)
    hint = charset_hint(message)
    body = Body(notes=notes)
    sender_email, sender_name, reply_to = identity(message, body.notes, hint)
    walk_safely(message, body, max_attachment_bytes)
    plain, html = texts(body)
    results_above, result_below = relay_results(message)
    return InboundMessage(
        sender_email=sender_email,
        sender_name=sender_name,
        reply_to=reply_to,
        cc=copied(message, hint),
        subject=single_line(header(message, "subject", hint), MAX_SUBJECT_CHARS) or NO_SUBJECT,
        text=plain,
        html=html,
        message_id=first_id(header(message, "message-id")),
        in_reply_to=ids(header(message, "in-reply-to")),
        references=ids(header(message, "references")),
        headers=loop_headers(message, hint),
        auth_results_above=results_above,
        auth_result_below=result_below,
        content_type=content_type(message),
        attachments=body.attachments,
        notes=body.notes,
        date=single_line(header(message, "date")) or None,
    )


def parse_event(event: RawEvent, **limits: int) -> InboundMessage:
    return parse_email(event.raw, envelope_from=event.envelope_from, **limits)


def headerless(raw: bytes, sender: str) -> InboundMessage:
    """Message data without a header block, from the envelope sender: text, or a binary file
    attached (an Outlook .msg file sent as message data)."""
    note = f"no header block: the envelope sender {sender} is taken as the author"
    kind = _binary_kind(raw)
    if kind is None:
        text = decode_bytes(raw, None).replace("\r\n", "\n").strip()[:MAX_TEXT_CHARS]
        return InboundMessage(
            sender_email=sender,
            sender_name=None,
            subject=NO_SUBJECT,
            text=text,
            html=None,
            message_id=None,
            notes=[note],
            from_envelope=True,
        )
    filename, ctype = kind
    part = InboundAttachment(
        filename=filename,
        content_type=ctype,
        size=len(raw),
        sha256=hashlib.sha256(raw).hexdigest(),
        content=bytes(raw),
    )
    text = f"The message data was a file ({ctype}), not a message; it is attached."
    notes = [note, f"message data was binary; kept as the attachment {filename}"]
    return InboundMessage(
        sender_email=sender,
        sender_name=None,
        subject=NO_SUBJECT,
        text=text,
        html=None,
        message_id=None,
        attachments=[part],
        notes=notes,
        from_envelope=True,
    )


_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Outlook .msg (a compound file)


def _binary_kind(raw: bytes) -> tuple[str, str] | None:
    if raw.startswith(_OLE):
        return "message.msg", "application/vnd.ms-outlook"
    if b"\x00" in raw[:8192]:
        return "message.bin", "application/octet-stream"
    return None


def _usable_sender(envelope_from: str | None) -> str | None:
    """The envelope sender as an author: a usable address, never the null reverse path."""
    return normalize_address((envelope_from or "").strip().strip("<>"))


def email_normalizer(
    max_attachment_bytes: int,
    *,
    max_header_bytes: int = MAX_HEADER_BYTES,
    max_mime_parts: int = MAX_PARTS,
) -> Callable[[RawEvent], InboundMessage]:
    """The pipeline's normalizer for raw RFC 5322 bytes (SMTP and `doxa ingest`).

    A partial of a module-level function, so it can run in a parser process.
    """
    return functools.partial(
        parse_event,
        max_attachment_bytes=max_attachment_bytes,
        max_header_bytes=max_header_bytes,
        max_mime_parts=max_mime_parts,
    )


def configured_email_normalizer(settings: Settings) -> Callable[[RawEvent], InboundMessage]:
    """The email normalizer with the limits the settings name (every caller builds it here)."""
    return email_normalizer(
        settings.max_attachment_bytes,
        max_header_bytes=settings.max_header_bytes,
        max_mime_parts=settings.max_mime_parts,
    )
