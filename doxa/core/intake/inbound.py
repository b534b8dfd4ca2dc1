"""The channel-neutral shape of one inbound message.

Every edge (SMTP, provider webhooks, web forms, `doxa ingest`) turns its input into an
`InboundMessage`; the intake service never sees MIME, HTTP or provider formats.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from doxa.core.errors import InvalidInput


class NotAMessage(InvalidInput):
    """Input that can never become a message (empty, no header block and no envelope sender):
    kept in intake as `rejected` with `reason`, never retried."""

    def __init__(self, detail: str, *, reason: str) -> None:
        super().__init__(detail)
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:  # from a worker process, with its reason
        return _not_a_message, (self.detail, self.reason)


def _not_a_message(detail: str, reason: str) -> NotAMessage:
    return NotAMessage(detail, reason=reason)


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
    sender_email: str  # lower-cased bare address of whoever should get the answer (Reply-To wins)
    sender_name: str | None
    from_email: str  # the From: address, as written (lower-cased)
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


# Column lengths of what an inbound message fills (tests/core/intake/test_inbound.py checks
# them against the models).
ADDRESS_CHARS = 320  # user.email, intake_event.sender / envelope_from
NAME_CHARS = 200  # user.full_name
ID_CHARS = 998  # message.message_id / in_reply_to, attachment.content_id
SUBJECT_CHARS = 998  # ticket.subject
FILENAME_CHARS = 255  # attachment.filename
TYPE_CHARS = 255  # attachment.content_type
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(value: str, limit: int | None = None) -> str:
    """`value` without NUL and lone surrogates, cut to `limit` characters."""
    if _UNSTORABLE.search(value):
        # NUL: PostgreSQL text cannot hold it; a lone surrogate: no UTF-8 database can.
        value = _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", value)
    return value[:limit] if limit is not None else value


_s = storable_text


def _opt(value: str | None, limit: int | None = None) -> str | None:
    return None if value is None else (_s(value, limit) or None)


def _address(value: str, what: str, notes: list[str]) -> str:
    if len(value) <= ADDRESS_CHARS:
        return _s(value)
    notes.append(f"{what} address of {len(value)} characters is not an address; ignored")
    return ""


def _attachment(part: InboundAttachment, notes: list[str]) -> InboundAttachment:
    content_type = _s(part.content_type).lower()
    if len(content_type) > TYPE_CHARS:
        notes.append(f"content type of {part.filename[:100]!r} too long; stored as octet-stream")
        content_type = "application/octet-stream"
    stem, dot, extension = _s(part.filename).rpartition(".")
    filename = _s(part.filename)
    if len(filename) > FILENAME_CHARS:
        keep = extension[:16] if dot else ""
        filename = (stem or filename)[: FILENAME_CHARS - len(keep) - 1] + (
            f".{keep}" if keep else ""
        )
    return replace(
        part, filename=filename, content_type=content_type,
        content_id=_opt(part.content_id, ID_CHARS),
    )  # fmt: skip


def storable(msg: InboundMessage) -> InboundMessage:
    """The message as every database stores it, whatever the edge made of hostile input: no NUL,
    no lone surrogate, and no value longer than its column (an over-long address is no address,
    and says so in a note)."""
    notes = [_s(v) for v in msg.notes]
    return replace(
        msg,
        sender_email=_address(msg.sender_email, "sender", notes),
        from_email=_address(msg.from_email, "From", notes),
        sender_name=_opt(msg.sender_name, NAME_CHARS),
        subject=_s(msg.subject, SUBJECT_CHARS),
        text=_s(msg.text),
        html=_opt(msg.html),
        message_id=_opt(msg.message_id, ID_CHARS),
        date=_opt(msg.date),
        in_reply_to=[_s(v, ID_CHARS) for v in msg.in_reply_to],
        references=[_s(v, ID_CHARS) for v in msg.references],
        headers={_s(k): _s(v) for k, v in msg.headers.items()},
        attachments=[_attachment(a, notes) for a in msg.attachments],
        notes=notes,
    )
