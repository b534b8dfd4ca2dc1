"""HTTP bodies -> fields and files: JSON, application/x-www-form-urlencoded, multipart/form-data.

Used twice on purpose: by the edge, to refuse bad input before anything is stored, and by the
normalizers, which read the stored raw body again (it is the only copy that is kept).
"""

from __future__ import annotations

import email.policy
import json
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qsl

from doxa.core.errors import InvalidInput

MAX_FIELDS = 1000


@dataclass(frozen=True, slots=True)
class Upload:
    name: str
    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True, slots=True)
class Form:
    fields: dict[str, Any]  # the first value of each field; JSON values keep their type
    files: list[Upload] = field(default_factory=list)
    octets: dict[str, bytes] = field(default_factory=dict)  # multipart text fields, undecoded

    def text(self, name: str) -> str:
        """A field as text ("" when absent or not a string)."""
        value = self.fields.get(name)
        return value if isinstance(value, str) else ""

    def data(self, name: str) -> bytes:
        """A field's bytes as sent (raw MIME in a field keeps its 8-bit bytes)."""
        return self.octets.get(name) or self.text(name).encode("utf-8", errors="replace")


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def read_form(raw: bytes, content_type: str | None) -> Form:
    """The fields of a body; InvalidInput naming what is wrong with it."""
    kind = media_type(content_type)
    if kind == "application/json" or kind.endswith("+json"):
        return _json(raw)
    if kind == "application/x-www-form-urlencoded":
        return _urlencoded(raw)
    if kind == "multipart/form-data":
        return _multipart(raw, content_type or "")
    raise InvalidInput(
        f"unsupported content type {kind or '(none)'!r}: send application/json, "
        "application/x-www-form-urlencoded or multipart/form-data"
    )


def _json(raw: bytes) -> Form:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"malformed JSON body: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidInput("the JSON body must be an object")
    return Form(value)


def _urlencoded(raw: bytes) -> Form:
    try:
        pairs = parse_qsl(
            raw.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=bool(raw.strip()),
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(f"malformed form body: {exc}") from None
    fields: dict[str, Any] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return Form(fields)


def _multipart(raw: bytes, content_type: str) -> Form:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode(errors="replace")
    try:
        message = BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
        parts = list(message.iter_parts()) if message.is_multipart() else []
    except Exception as exc:  # the stdlib parser's failures are not one type
        raise InvalidInput(f"malformed multipart body: {exc}") from None
    if not parts or not message.get_boundary():
        raise InvalidInput("malformed multipart body: no boundary or no parts")
    if len(parts) > MAX_FIELDS:
        raise InvalidInput(f"more than {MAX_FIELDS} parts")
    form = Form({})
    for part in parts:
        _add_part(form, part)
    return form


def _add_part(form: Form, part: Message) -> None:
    name = part.get_param("name", header="content-disposition")
    if not isinstance(name, str) or not name:
        raise InvalidInput("malformed multipart body: a part without a name")
    payload = part.get_payload(decode=True)
    content = payload if isinstance(payload, bytes) else b""
    filename = part.get_filename()
    if filename is not None:
        kind = part.get_content_type() if part.get("content-type") else "application/octet-stream"
        form.files.append(Upload(name, filename, kind, content))
        return
    charset = part.get_content_charset() or "utf-8"
    try:
        text = content.decode(charset, errors="replace")
    except LookupError:
        text = content.decode("utf-8", errors="replace")
    form.fields.setdefault(name, text)
    form.octets.setdefault(name, content)
