"""The MIME walk: text and HTML body parts become the message text, the rest attachments."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from email.message import Message

from doxa.core.intake import text
from doxa.core.intake.inbound import InboundAttachment
from doxa.gateway.mime.attachments import attachment, declared_filename, inline_file
from doxa.gateway.mime.charsets import decode_bytes
from doxa.gateway.mime.headers import content_type
from doxa.gateway.mime.uuencode import split_uuencoded

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 1024 * 1024
MAX_DEPTH = 40


@dataclass(slots=True)
class Body:
    """What the walk collected, in document order."""

    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[InboundAttachment] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def walk_safely(message: Message, body: Body, max_attachment_bytes: int) -> None:
    """Collect every part into `body`; a broken part ends the walk with a note, not an error."""
    try:
        _walk(message, body, max_attachment_bytes, depth=0, charset=None)
    except Exception as exc:  # keep what was read before the broken part
        log.info("MIME walk failed: %s", type(exc).__name__)  # never the bytes it choked on
        body.notes.append(f"part of the MIME structure could not be read ({type(exc).__name__})")


def _walk(part: Message, body: Body, max_bytes: int, *, depth: int, charset: str | None) -> None:
    """`charset`: the nearest multipart parent's declared charset, which text parts that
    declare none inherit (a `multipart/signed; charset=...` wrapper)."""
    if depth > MAX_DEPTH:
        body.notes.append("MIME nesting too deep; deeper parts were skipped")
        return
    ctype = content_type(part)
    if ctype.startswith("multipart/"):
        payload = part.get_payload()
        inherited = _charset(part) or charset
        for child in payload if isinstance(payload, list) else []:
            if isinstance(child, Message):
                _walk(child, body, max_bytes, depth=depth + 1, charset=inherited)
        return
    if ctype == "text/html" and _is_body_part(part):
        body.html.append(_part_text(part, charset))
        return
    if ctype == "text/plain" and _is_body_part(part):
        plain, files = split_uuencoded(_part_text(part, charset))
        body.plain.append(plain)
        for name, content in files:
            body.attachments.append(
                inline_file(name, content, len(body.attachments) + 1, max_bytes, body.notes)
            )
        return
    body.attachments.append(
        attachment(part, ctype, len(body.attachments) + 1, max_bytes, body.notes)
    )


def _is_body_part(part: Message) -> bool:
    try:
        return part.get_content_disposition() != "attachment" and not declared_filename(part)
    except Exception:
        return True


def _part_text(part: Message, inherited: str | None) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return str(payload or "")
    return decode_bytes(payload, _charset(part) or inherited)


def _charset(part: Message) -> str | None:
    try:
        return part.get_content_charset()
    except Exception:
        return None


def texts(body: Body) -> tuple[str, str | None]:
    """(plain text, sanitized HTML); the text comes from the HTML when there is no plain part."""
    html = "\n".join(part.strip() for part in body.html if part.strip()) or None
    plain = "\n\n".join(part.strip("\r\n") for part in body.plain if part.strip())
    if not plain and html:
        plain = text.html_to_text(html, body.notes)
    plain = plain.replace("\r\n", "\n")
    if len(plain) > MAX_TEXT_CHARS:
        body.notes.append(f"text truncated to {MAX_TEXT_CHARS} characters (was {len(plain)})")
        plain = plain[:MAX_TEXT_CHARS]
    return plain, (text.sanitize_html(html, body.notes) if html else None)
