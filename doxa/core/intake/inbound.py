"""The channel-neutral shape of one inbound message.

Every edge (SMTP, provider webhooks, web forms, `doxa ingest`) turns its input into an
`InboundMessage`; the intake service never sees MIME, HTTP or provider formats.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, replace

from doxa.core.addresses import normalize_address


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
    # The author, normalized (doxa.core.addresses): From:, its Sender: when From: lists several,
    # else the envelope sender (then `from_envelope`).
    sender_email: str
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
    cc: list[str] = field(default_factory=list)  # normalized Cc: addresses
    # No usable From: the envelope sender is the author; such mail never threads (SPEC).
    from_envelope: bool = False
    # Authentication-Results values the MTA in front may have written (SPEC "Who wrote it"),
    # top down: those above the topmost Received line, and the one directly below it. Both are
    # empty when the message has no Received line: then no relay handled it.
    auth_results_above: list[str] = field(default_factory=list)
    auth_result_below: str | None = None


# Column lengths of what an inbound message fills (tests/core/intake/test_inbound.py checks
# them against the models).
ADDRESS_CHARS = 320  # user.email, intake_event.sender / envelope_from
NAME_CHARS = 200  # user.full_name
ID_CHARS = 998  # message.message_id / in_reply_to, attachment.content_id
SUBJECT_CHARS = 998  # ticket.subject
FILENAME_CHARS = 255  # attachment.filename
TYPE_CHARS = 255  # attachment.content_type
MAX_CC = 50
FROM_ENVELOPE = "from_envelope"  # the note on a message whose author is its envelope sender
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Format characters (bidirectional overrides and isolates, zero-width joiners) and controls:
# in a file name they make "invoice\u202egpj.exe" show as "invoiceexe.jpg".
_INVISIBLE = {"Cf", "Cc", "Zl", "Zp"}
_MIME_TYPE = re.compile(
    r"^\s*([a-z0-9][a-z0-9!#$&^_.+-]{0,126})\s*/\s*([a-z0-9][a-z0-9!#$&^_.+-]{0,126})(?=[\s;]|$)"
)
_FOLD = re.compile(r"\r?\n(?=[ \t])")


def storable_text(value: str, limit: int | None = None) -> str:
    """`value` without NUL and lone surrogates, cut to `limit` characters."""
    if _UNSTORABLE.search(value):
        # NUL: PostgreSQL text cannot hold it; a lone surrogate: no UTF-8 database can.
        value = _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", value)
    return value[:limit] if limit is not None else value


_s = storable_text


def _opt(value: str | None, limit: int | None = None) -> str | None:
    return None if value is None else (_s(value, limit) or None)


def one_line(value: str, limit: int | None = None) -> str:
    """Text for a header or a name: every line separator `str.splitlines` knows becomes a space."""
    return " ".join(_s(value).split())[:limit]


def _address(value: str, what: str, notes: list[str]) -> str:
    """The normalized address, so every identity decision compares one spelling of it."""
    if (address := normalize_address(_s(value))) is not None:
        return address
    if "@" not in value and len(value) <= NAME_CHARS:
        return _s(value).lower()  # "From: MAILER-DAEMON": no address, but the loop rules read it
    notes.append(f"{what} address {_s(value)[:80]!r} is not an address; ignored")
    return ""


def _visible(value: str) -> str:
    return "".join(ch for ch in value if unicodedata.category(ch) not in _INVISIBLE)


def safe_filename(name: str) -> str:
    """A file name that shows what it is and fits its column (the extension kept)."""
    filename = one_line(_visible(name)) or "attachment"
    if len(filename) > FILENAME_CHARS:
        stem, dot, extension = filename.rpartition(".")
        keep = extension[:16] if dot else ""
        filename = (stem or filename)[: FILENAME_CHARS - len(keep) - 1] + (
            f".{keep}" if keep else ""
        )
    return filename


def mime_type(value: str) -> str:
    """`type/subtype` only, lower-cased: parameters, folding and junk dropped."""
    match = _MIME_TYPE.match(_FOLD.sub("", value[:1000]).lower())
    return f"{match.group(1)}/{match.group(2)}" if match else "application/octet-stream"


def _attachment(part: InboundAttachment) -> InboundAttachment:
    return replace(
        part,
        filename=safe_filename(part.filename),
        content_type=mime_type(part.content_type),
        content_id=_opt(part.content_id, ID_CHARS),
    )


def storable(msg: InboundMessage) -> InboundMessage:
    """The message as every database stores it and every header can carry it, whatever the edge
    made of hostile input: no NUL or lone surrogate, no value longer than its column (an
    over-long address is no address, and says so in a note), a one-line subject and name (a
    line break there would break outbound headers), harmless attachment names and types."""
    notes = [_s(v) for v in msg.notes]
    if msg.from_envelope and FROM_ENVELOPE not in notes:
        notes.insert(0, FROM_ENVELOPE)
    reply_to = _address(msg.reply_to, "Reply-To", notes) if msg.reply_to else ""
    return replace(
        msg,
        sender_email=_address(msg.sender_email, "sender", notes),
        sender_name=one_line(msg.sender_name, NAME_CHARS) or None if msg.sender_name else None,
        subject=one_line(msg.subject, SUBJECT_CHARS),
        text=_s(msg.text),
        html=_opt(msg.html),
        message_id=_opt(msg.message_id, ID_CHARS),
        date=_opt(msg.date),
        in_reply_to=[_s(v, ID_CHARS) for v in msg.in_reply_to],
        references=[_s(v, ID_CHARS) for v in msg.references],
        headers={_s(k): _s(v) for k, v in msg.headers.items()},
        auth_results_above=[_s(v) for v in msg.auth_results_above],
        auth_result_below=_opt(msg.auth_result_below),
        reply_to=reply_to or None,
        cc=[a for a in dict.fromkeys(normalize_address(_s(v)) for v in msg.cc[:MAX_CC]) if a],
        attachments=[_attachment(a) for a in msg.attachments],
        notes=notes,
    )


def envelope_authored(msg: InboundMessage, envelope_from: str | None) -> InboundMessage:
    """SPEC: a message whose From: gives no usable address is written by its envelope sender
    (noted `from_envelope`), when that is a usable address; otherwise it stays authorless."""
    if msg.sender_email or not envelope_from:
        return msg
    sender = normalize_address(_s(envelope_from).strip().strip("<>"))
    if sender is None:
        return msg
    notes = [FROM_ENVELOPE, *(n for n in msg.notes if n != FROM_ENVELOPE)]
    return replace(msg, sender_email=sender, sender_name=None, from_envelope=True, notes=notes)
