"""A non-body MIME part -> `InboundAttachment`, with a safe file name and inline flag."""

from __future__ import annotations

import email.utils
import hashlib
import mimetypes
import re
from email.message import Message

from doxa.core.intake.inbound import InboundAttachment
from doxa.gateway.mime.charsets import decode_bytes, decode_declared
from doxa.gateway.mime.headers import (
    decode_header,
    first_id,
    header,
    raw_values,
    single_line,
    undo_surrogates,
)

_EXTENSIONS = {
    "message/rfc822": ".eml",
    "message/delivery-status": ".txt",
    "message/disposition-notification": ".txt",
    "message/feedback-report": ".txt",
    "text/rfc822-headers": ".txt",
    "text/plain": ".txt",
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "application/ms-tnef": ".dat",
    "application/octet-stream": ".bin",
}
_UNSAFE_FILENAME = re.compile(r"[\x00-\x1f\x7f/\\]+")
_CID_FILENAME = re.compile(r"^[\w.-]{1,100}\.\w{1,5}$")


def attachment(
    part: Message, ctype: str, index: int, max_bytes: int, notes: list[str]
) -> InboundAttachment:
    """The part as an attachment; its content is dropped (size and hash kept) over `max_bytes`."""
    content = _part_bytes(part)
    filename = _filename(part, ctype, index)
    content_id = first_id(header(part, "content-id"))
    if ctype == "application/ms-tnef" or filename.lower() == "winmail.dat":
        notes.append(f"TNEF {filename} kept undecoded")
    inline = _is_inline(part, content_id)
    return _stored(filename, ctype, content, max_bytes, notes, content_id=content_id, inline=inline)


def inline_file(
    name: str, content: bytes, index: int, max_bytes: int, notes: list[str]
) -> InboundAttachment:
    """A file found inside a text part (uuencoded), as an attachment like any other."""
    filename = _safe_filename(re.split(r"[/\\]", name)[-1]) or f"attachment-{index}.bin"
    ctype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    notes.append(f"uuencoded file {filename} in the text kept as an attachment")
    return _stored(filename, ctype, content, max_bytes, notes)


def _stored(
    filename: str,
    ctype: str,
    content: bytes,
    max_bytes: int,
    notes: list[str],
    *,
    content_id: str | None = None,
    inline: bool = False,
) -> InboundAttachment:
    """The file with its size and hash; its bytes only up to `max_bytes` (noted when dropped)."""
    if len(content) > max_bytes:
        notes.append(f"attachment {filename} ({len(content)} bytes) over the limit, not stored")
    return InboundAttachment(
        filename=filename,
        content_type=ctype,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        content_id=content_id,
        inline=inline,
        content=content if len(content) <= max_bytes else None,
    )


def _part_bytes(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload
    inner = part.get_payload()
    if isinstance(inner, list) and inner and isinstance(inner[0], Message):
        try:
            return inner[0].as_bytes()  # an attached message/rfc822 is stored as .eml
        except Exception:
            return inner[0].as_string().encode("utf-8", "surrogateescape")
    return str(inner or "").encode("utf-8", "surrogateescape")


def _is_inline(part: Message, content_id: str | None) -> bool:
    try:
        disposition = part.get_content_disposition()
    except Exception:
        disposition = None
    return disposition == "inline" or (disposition is None and content_id is not None)


def _filename(part: Message, ctype: str, index: int) -> str:
    name = declared_filename(part)
    if name:
        return name
    extension = _EXTENSIONS.get(ctype) or mimetypes.guess_extension(ctype) or ".bin"
    cid_name = first_id(header(part, "content-id")) or ""
    cid_name = cid_name.split("@")[0]
    if _CID_FILENAME.match(cid_name):
        return cid_name  # Outlook names inline images by their Content-ID: image001.jpg@01D…
    base = _embedded_subject(part, ctype) or _safe_filename(header(part, "content-description"))
    if ctype == "message/delivery-status" and not base:
        base = "delivery-status"
    return f"{base or f'attachment-{index}'}{extension}"


def declared_filename(part: Message) -> str:
    """The RFC 2231 / RFC 2047 / raw 8-bit filename, read from the raw headers."""
    probe = Message()
    for name in ("content-disposition", "content-type"):
        for value in raw_values(part, name)[:1]:
            probe[name] = undo_surrogates(value.replace("\r", "").replace("\n", ""))
    try:
        raw = _filename_param(probe)
    except Exception:
        return ""
    if not raw:
        return ""
    return _safe_filename(re.split(r"[/\\]", decode_header(raw))[-1])


def _filename_param(probe: Message) -> str:
    """`Message.get_filename`, but an RFC 2231 value is decoded by our charset table (the
    stdlib gives up on labels Python lacks, such as iso-8859-8-i, and on CP50221 bytes); bytes
    its charset cannot read get the stdlib's replacement characters."""
    for param, name in (("filename", "content-disposition"), ("name", "content-type")):
        value = probe.get_param(param, None, name)
        if isinstance(value, tuple):
            charset, _, text = value
            data = email.utils.unquote(text).encode("raw-unicode-escape")
            if not charset:
                return decode_bytes(data, None).strip()
            decoded = decode_declared(data, charset)
            if decoded is None:
                decoded = email.utils.collapse_rfc2231_value(value)
            return decoded.strip()
        if value is not None:
            return email.utils.unquote(value).strip()
    return ""


def _embedded_subject(part: Message, ctype: str) -> str:
    inner = part.get_payload() if ctype == "message/rfc822" else None
    if isinstance(inner, list) and inner and isinstance(inner[0], Message):
        return _safe_filename(single_line(header(inner[0], "subject")))
    return ""


def _safe_filename(name: str) -> str:
    name = _UNSAFE_FILENAME.sub("_", name.replace("\t", " ")).strip(" ._")
    return name[:200]
