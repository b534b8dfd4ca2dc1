"""The channel-neutral shape of one inbound message.

Every edge (SMTP, provider webhooks, web forms, `doxa ingest`) turns its input into an
`InboundMessage`; the intake service never sees MIME, HTTP or provider formats.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
