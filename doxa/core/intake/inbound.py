"""The channel-neutral shape of one inbound message.

Every edge (SMTP, provider webhooks, web forms, `doxa ingest`) turns its input into an
`InboundMessage`; the intake service never sees MIME, HTTP or provider formats.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, replace


@dataclass(frozen=True, slots=True)
class InboundAttachment:
    filename: str
    content_type: str
    size: int
    sha256: str
    content_id: str | None = None
    inline: bool = False
    # None when the part was larger than MAX_ATTACHMENT_BYTES: metadata is kept, bytes are not.
    content: bytes | None = None


@dataclass(frozen=True, slots=True)
class InboundMessage:
    sender_email: str  # the author: the lower-cased From: address (Sender: when From is unusable)
    sender_name: str | None
    subject: str
    text: str  # full plain text (HTML-only mail converted to text)
    html: str | None  # sanitized HTML, or None
    message_id: str | None  # RFC 5322 Message-ID without angle brackets
    in_reply_to: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    # Lower-cased header names -> first value, only those the loop rules read.
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/plain"  # the top-level MIME type, e.g. multipart/report
    attachments: list[InboundAttachment] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # parse problems worth showing an agent
    date: str | None = None
    # Where answers should go; never who wrote it (SPEC: Reply-To grants no identity).
    reply_to: str | None = None
    cc: list[str] = field(default_factory=list)  # lower-cased Cc: addresses


MAX_FILENAME_CHARS = 255
MAX_CONTENT_TYPE_CHARS = 255
MAX_CC = 50
# Format characters (bidirectional overrides and isolates, zero-width joiners): in a file name
# they make "invoice\u202egpj.exe" show as "invoiceexe.jpg".
_INVISIBLE = {"Cf", "Cc", "Zl", "Zp"}
_MIME_TYPE = re.compile(
    r"^\s*([a-z0-9][a-z0-9!#$&^_.+-]{0,126})\s*/\s*([a-z0-9][a-z0-9!#$&^_.+-]{0,126})"
)
_FOLD = re.compile(r"\r?\n(?=[ \t])")


def _s(value: str) -> str:
    return value.replace("\x00", "")


def _opt(value: str | None) -> str | None:
    return None if value is None else _s(value)


def one_line(value: str) -> str:
    """Text for a header or a name: every line separator `str.splitlines` knows becomes a space."""
    return " ".join(_s(value).split())


def _visible(value: str) -> str:
    return "".join(ch for ch in value if unicodedata.category(ch) not in _INVISIBLE)


def safe_filename(name: str) -> str:
    """A file name that shows what it is: no control or bidirectional formatting characters."""
    return one_line(_visible(name))[:MAX_FILENAME_CHARS] or "attachment"


def mime_type(value: str) -> str:
    """`type/subtype` only, lower-cased: parameters, folding and junk dropped."""
    match = _MIME_TYPE.match(_FOLD.sub("", value[:1000]).lower())
    return f"{match.group(1)}/{match.group(2)}" if match else "application/octet-stream"


def sanitized(msg: InboundMessage) -> InboundMessage:
    """Whatever channel it came from: no NUL (PostgreSQL text cannot hold one), one-line subject
    and name (a line break there would break the outbound headers), harmless attachment names."""
    attachments = [
        replace(
            part,
            filename=safe_filename(part.filename),
            content_type=mime_type(part.content_type),
            content_id=_opt(part.content_id),
        )
        for part in msg.attachments
    ]
    return replace(
        msg,
        sender_email=_s(msg.sender_email),
        sender_name=one_line(msg.sender_name) or None if msg.sender_name else None,
        subject=one_line(msg.subject),
        text=_s(msg.text),
        html=_opt(msg.html),
        message_id=_opt(msg.message_id),
        date=_opt(msg.date),
        in_reply_to=[_s(v) for v in msg.in_reply_to],
        references=[_s(v) for v in msg.references],
        headers={_s(k): _s(v) for k, v in msg.headers.items()},
        notes=[_s(v) for v in msg.notes],
        reply_to=_opt(msg.reply_to),
        cc=[_s(v) for v in msg.cc][:MAX_CC],
        attachments=attachments,
    )
