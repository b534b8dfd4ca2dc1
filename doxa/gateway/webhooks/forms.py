"""`/inbound/form`: a website's contact form, posted by its backend and signed.

The typed address proves nothing, so it names the requester and nothing more: form events
carry channel FORM, and the pipeline's trust rules for that channel apply.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from email_validator import EmailNotValidError, validate_email

from doxa.core.errors import InvalidInput, Rejected
from doxa.core.intake.inbound import InboundAttachment, InboundMessage
from doxa.core.intake.pipeline import RawEvent
from doxa.gateway.webhooks.bodies import Form, Upload, read_form

MAX_SUBJECT_CHARS = 998
MAX_NAME_CHARS = 200
FIELDS = ("email", "name", "subject", "message")


@dataclass(frozen=True, slots=True)
class FormPost:
    email: str
    name: str | None
    subject: str
    message: str
    metadata: dict[str, Any]
    files: list[Upload]


def form_post(form: Form) -> FormPost:
    """The post's fields, checked; InvalidInput names the first field that is wrong."""
    for name in ("email", "subject", "message"):
        if not form.text(name).strip():
            raise InvalidInput(f"{name}: required, a non-empty string")
    name = form.fields.get("name") or ""
    if not isinstance(name, str):
        raise InvalidInput("name: must be a string")
    try:
        address = validate_email(form.text("email").strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput(f"email: {exc}") from None
    subject = " ".join(form.text("subject").split())
    if len(subject) > MAX_SUBJECT_CHARS:
        raise InvalidInput(f"subject: longer than {MAX_SUBJECT_CHARS} characters")
    return FormPost(
        email=address.normalized.lower(),
        name=" ".join(name.split())[:MAX_NAME_CHARS] or None,
        subject=subject,
        message=form.text("message").strip(),
        metadata={k: v for k, v in form.fields.items() if k not in FIELDS},
        files=form.files,
    )


def _attachment(upload: Upload, max_bytes: int) -> InboundAttachment:
    size = len(upload.content)
    return InboundAttachment(
        filename=upload.filename or "attachment",
        content_type=upload.content_type,
        size=size,
        sha256=hashlib.sha256(upload.content).hexdigest(),
        content=upload.content if size <= max_bytes else None,
    )


def form_message(event: RawEvent, *, max_attachment_bytes: int) -> InboundMessage:
    """The stored post as a message from the address typed into the form."""
    try:
        post = form_post(read_form(event.raw, event.extra.get("content_type")))
    except InvalidInput as exc:  # checked before it was stored; only a changed rule gets here
        raise Rejected(exc.detail, reason="invalid_form") from None
    attachments = [_attachment(f, max_attachment_bytes) for f in post.files]
    notes = [
        f"attachment {a.filename!r} over the size limit: not stored"
        for a in attachments
        if a.content is None
    ]
    return InboundMessage(
        sender_email=post.email,
        sender_name=post.name,
        subject=post.subject,
        text=post.message,
        html=None,
        message_id=None,
        attachments=attachments,
        notes=notes,
    )


def form_normalizer(max_attachment_bytes: int) -> Callable[[RawEvent], InboundMessage]:
    return functools.partial(form_message, max_attachment_bytes=max_attachment_bytes)
