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
from collections.abc import Callable

from doxa.core.config import Settings
from doxa.core.errors import InvalidInput
from doxa.core.intake.inbound import InboundMessage
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
) -> InboundMessage:
    """Parse one RFC 5322 message; only input that is not an email raises `InvalidInput`."""
    if not raw.strip():
        raise InvalidInput("empty message")
    message, notes = load_message(raw, max_header_bytes=max_header_bytes, max_parts=max_mime_parts)
    hint = charset_hint(message)
    body = Body(notes=notes)
    sender_email, sender_name, reply_to = identity(message, body.notes, hint)
    walk_safely(message, body, max_attachment_bytes)
    plain, html = texts(body)
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
        content_type=content_type(message),
        attachments=body.attachments,
        notes=body.notes,
        date=single_line(header(message, "date")) or None,
    )


def parse_event(event: RawEvent, **limits: int) -> InboundMessage:
    return parse_email(event.raw, **limits)


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
