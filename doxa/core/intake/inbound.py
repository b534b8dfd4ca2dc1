"""The channel-neutral shape of one inbound message.

Every edge (SMTP, provider webhooks, web forms, `doxa ingest`) turns its input into an
`InboundMessage`; the intake service never sees MIME, HTTP or provider formats.
"""

from __future__ import annotations

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


def _s(value: str) -> str:
    return value.replace("\x00", "")


def _opt(value: str | None) -> str | None:
    return None if value is None else _s(value)


def without_nul(msg: InboundMessage) -> InboundMessage:
    """PostgreSQL text cannot hold NUL; mail from anywhere may carry one."""
    return replace(
        msg,
        sender_email=_s(msg.sender_email), sender_name=_opt(msg.sender_name),
        from_email=_s(msg.from_email), subject=_s(msg.subject), text=_s(msg.text),
        html=_opt(msg.html), message_id=_opt(msg.message_id), date=_opt(msg.date),
        in_reply_to=[_s(v) for v in msg.in_reply_to], references=[_s(v) for v in msg.references],
        headers={_s(k): _s(v) for k, v in msg.headers.items()}, notes=[_s(v) for v in msg.notes],
        attachments=[
            replace(a, filename=_s(a.filename), content_type=_s(a.content_type),
                    content_id=_opt(a.content_id))
            for a in msg.attachments
        ],
    )  # fmt: skip
