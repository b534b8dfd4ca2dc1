"""The outbound SMTP relay (OUTBOUND_SMTP_URL) that every mail leaves through."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from doxa.core.errors import InvalidInput

_DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
SEND_TIMEOUT = 30.0  # seconds for each exchange with the relay


@dataclass(frozen=True, slots=True)
class Relay:
    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> Relay:
        """`smtp://host:port`, `smtp+starttls://user:pass@host:587` or `smtps://host:465`."""
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise InvalidInput("must look like smtp://host:port, smtp+starttls:// or smtps://")
        return cls(
            parts.scheme,
            parts.hostname,
            parts.port or _DEFAULT_PORTS[parts.scheme],
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
        )

    def send(self, mail: EmailMessage, *, timeout: float = SEND_TIMEOUT) -> None:
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if self.scheme == "smtps":
            client = smtplib.SMTP_SSL(self.host, self.port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=timeout)
        with client:
            if self.scheme == "smtp+starttls":
                client.starttls(context=context)
            if self.username:
                client.login(self.username, self.password or "")
            client.send_message(mail)
