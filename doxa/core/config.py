"""Settings: one object, built from the environment (and `.env`) at start, passed down."""

from __future__ import annotations

import ipaddress
import logging
import secrets
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from doxa.core.intake.ack_texts import load_texts, mailboxes
from doxa.core.webhooks.destinations import Allowed

log = logging.getLogger(__name__)

# Values that look like secrets but are copied from examples; refused outside dev.
_PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "changethis", "jwt-secret", "example"}
MIN_SECRET_LENGTH = 32
MAX_SUPPORT_NAME = 100


class ConfigError(Exception):
    """A setting is missing or wrong; the message is one line naming the variable."""


@dataclass(frozen=True, slots=True)
class Mailbox:
    address: str
    category: str | None = None


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def in_networks(peer: str, networks: Iterable[IPNetwork]) -> bool:
    """Whether a peer address (as a socket names it; IPv4-mapped IPv6 counts as IPv4) is in one
    of the networks; anything that is not an address is in none."""
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def _comma_list(value: object) -> object:
    if isinstance(value, str):
        return tuple(filter(None, (part.strip() for part in value.split(","))))
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    doxa_env: Literal["dev", "prod", "test"] = "prod"
    database_url: str = "sqlite:///./doxa.db"
    jwt_secret: str | None = None
    access_token_expire_minutes: int = Field(60, ge=1, le=60 * 24 * 30)
    bcrypt_rounds: int = Field(12, ge=4, le=16)
    ai_confidence_threshold: float = Field(0.6, ge=0.0, le=1.0)
    http_host: str = "127.0.0.1"
    http_port: int = Field(8000, ge=0, le=65535)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(2525, ge=0, le=65535)
    smtp_enabled: bool = True
    support_addresses: Annotated[tuple[Mailbox, ...], NoDecode] = (Mailbox("support@localhost"),)
    max_message_bytes: int = Field(26_214_400, ge=1024)
    max_attachment_bytes: int = Field(10_485_760, ge=0)
    max_api_body_bytes: int = Field(1_048_576, ge=1024)
    webhook_secret: str | None = None
    mailgun_signing_key: str | None = None
    postmark_inbound_user: str | None = None
    postmark_inbound_password: str | None = None
    sendgrid_inbound_user: str | None = None
    sendgrid_inbound_password: str | None = None
    form_acknowledge: bool = False  # web-form addresses are unproven: no mail unless asked
    # Acknowledgments (SPEC "Replies out"): the display name on all mail DOXA sends, and a
    # folder of texts by mailbox and language (None: the built-in texts).
    support_name: str = "Support"
    ack_templates: Path | None = None
    outbound_smtp_url: str | None = None
    # Agents' mail notifications: changes to one ticket within this many seconds make one
    # mail (SPEC: a minute); tests shorten it.
    notification_window_seconds: float = Field(60, ge=0, le=3600)
    doxa_admin_email: str | None = None
    doxa_admin_password: str | None = None
    sender_hourly_limit: int = Field(20, ge=1)
    # Trust (SPEC "Who wrote it"): an Authentication-Results header is believed only when its
    # authserv-id is listed here and the message came from one of these relays.
    trusted_authserv_ids: Annotated[tuple[str, ...], NoDecode] = ()
    trusted_relays: Annotated[tuple[IPNetwork, ...], NoDecode] = ()
    # Also the header directly below the relay's Received line (Debian's milters put theirs
    # there), and Authentication-Results on mail piped in by `doxa ingest -` (issue 19).
    trusted_ar_below_received: bool = False
    trusted_pipe: bool = False
    ack_hourly_limit_per_recipient: int = Field(3, ge=0)
    ack_hourly_limit: int = Field(200, ge=0)
    # Accounts (issue 8): where mailed links point, and the proxies whose X-Forwarded-For counts.
    public_base_url: str = "http://127.0.0.1:8000"
    forwarded_allow_ips: Annotated[tuple[IPNetwork, ...], NoDecode] = ()
    log_format: Literal["plain", "json"] = "plain"
    # "local": the trainable model; "openai": an OpenAI-compatible endpoint, local as fallback;
    # "none": tickets stay pending (classification switched off).
    ai_provider: Literal["local", "openai", "none"] = "local"
    ai_base_url: str | None = None
    ai_model: str = "gpt-4o-mini"
    ai_api_key: str | None = None
    ai_timeout_seconds: float = Field(10.0, gt=0, le=120)
    # A new ticket whose classification has not come this long after it opened is routed
    # without it (SPEC: 10 s); with AI_PROVIDER=none nothing comes, and tests shorten it.
    routing_fallback_seconds: float = Field(10.0, ge=0, le=3600)
    # Processes beside the server for intake, classification and retraining; 0 runs it all in
    # the server process. Two by default: a slow message in one leaves the other for the rest,
    # and after a flood both cores drain it. PARSER_PROCESSES is its old name, still read.
    worker_processes: int = Field(
        2, ge=0, le=64, validation_alias=AliasChoices("worker_processes", "parser_processes")
    )
    # Hostile input: what one message or one client may cost.
    max_header_bytes: int = Field(262_144, ge=1024)
    max_mime_parts: int = Field(1000, ge=1)
    processing_timeout_seconds: float = Field(60.0, gt=0, le=3600)
    smtp_max_connections: int = Field(200, ge=1)
    smtp_max_connections_per_client: int = Field(20, ge=1)
    # HTTP (issue 19): connections at once (event streams at most half of them), and the
    # bearer token that opens /metrics to a scraper that is not on loopback.
    http_max_connections: int = Field(1000, ge=2)
    # The time a client has to send a request's headers (SPEC: 10 s); tests shorten it.
    http_header_timeout_seconds: float = Field(10.0, gt=0, le=300)
    metrics_token: str | None = None
    # Outbound webhooks (issue 22) reach only global unicast addresses, and these exceptions:
    # host names, IP addresses and networks, comma separated; parsed once, here.
    webhook_allowed_hosts: Annotated[Allowed, NoDecode] = Allowed()
    # Events out (issue 22): browser origins that may call the API and the event stream, and
    # the streams: a comment every so many seconds (the reader is checked again then) and how
    # many one user and one network (IPv4 /24, IPv6 /48) may hold open in a process.
    cors_allowed_origins: Annotated[tuple[str, ...], NoDecode] = ()
    event_stream_keepalive_seconds: float = Field(15.0, gt=0, le=300)
    event_streams_per_user: int = Field(5, ge=1)
    event_streams_per_network: int = Field(250, ge=1)

    @field_validator(
        "jwt_secret",
        "webhook_secret",
        "mailgun_signing_key",
        "postmark_inbound_user",
        "postmark_inbound_password",
        "sendgrid_inbound_user",
        "sendgrid_inbound_password",
        "outbound_smtp_url",
        "doxa_admin_email",
        "doxa_admin_password",
        "ai_base_url",
        "ai_api_key",
        "ack_templates",
        "metrics_token",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `JWT_SECRET=` in a copied .env must mean "not set", never an empty signing key.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("trusted_authserv_ids", mode="before")
    @classmethod
    def _parse_authserv_ids(cls, value: object) -> object:
        value = _comma_list(value)
        return tuple(str(v).lower() for v in value) if isinstance(value, tuple) else value

    @field_validator("trusted_relays", "forwarded_allow_ips", mode="before")
    @classmethod
    def _parse_networks(cls, value: object) -> object:
        value = _comma_list(value)
        if not isinstance(value, tuple):
            return value
        try:
            return tuple(ipaddress.ip_network(str(v), strict=False) for v in value)
        except ValueError as exc:
            raise ValueError(f"a comma list of IP addresses or networks: {exc}") from None

    @field_validator("support_addresses", mode="before")
    @classmethod
    def _parse_mailboxes(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        boxes = []
        for item in filter(None, (part.strip() for part in value.split(","))):
            address, _, category = item.partition("=")
            address = address.strip().lower()
            if "@" not in address or " " in address:
                raise ValueError(f"{address!r} is not an email address")
            boxes.append(Mailbox(address, category.strip() or None))
        if not boxes:
            raise ValueError("at least one address is required")
        return tuple(boxes)

    @field_validator("cors_allowed_origins", mode="before")
    @classmethod
    def _parse_origins(cls, value: object) -> object:
        value = _comma_list(value)
        if not isinstance(value, tuple):
            return value
        origins = []
        for origin in map(str, value):
            if origin == "*":
                # A wildcard would let any site's scripts call the API with a user's token
                # wherever a browser holds one; origins are listed one by one.
                raise ValueError("* is refused: list each origin (https://app.example.com)")
            parts = urlsplit(origin)
            if (
                parts.scheme not in ("http", "https")
                or not parts.hostname
                or parts.path not in ("", "/")
                or parts.query
                or parts.fragment
                or parts.username is not None
            ):
                raise ValueError(f"{origin!r} is not an origin (scheme://host[:port])")
            origins.append(f"{parts.scheme}://{parts.netloc.lower()}")
        return tuple(origins)

    @field_validator("metrics_token")
    @classmethod
    def _strong_token(cls, value: str | None) -> str | None:
        if value is not None and len(value) < MIN_SECRET_LENGTH:  # a guessable token opens it
            raise ValueError(f"must be a random value of at least {MIN_SECRET_LENGTH} characters")
        return value

    @field_validator("webhook_allowed_hosts", mode="before")
    @classmethod
    def _allowed_hosts(cls, value: object) -> object:
        # A typo stops the start rather than refusing every delivery.
        return Allowed.parse(value) if value is None or isinstance(value, str) else value

    @field_validator("outbound_smtp_url")
    @classmethod
    def _relay_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("smtp", "smtps", "smtp+starttls") or not parts.hostname:
                raise ValueError("must look like smtp://host:port, smtp+starttls:// or smtps://")
        return value

    @field_validator("support_name")
    @classmethod
    def _display_name(cls, value: str) -> str:
        value = value.strip()
        if not value or len(value) > MAX_SUPPORT_NAME:
            raise ValueError(f"must be 1 to {MAX_SUPPORT_NAME} characters")
        if any(unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") for char in value):
            raise ValueError("must not contain line breaks or other control characters")
        return value

    @field_validator("ack_templates")
    @classmethod
    def _templates(cls, value: Path | None) -> Path | None:
        if value is not None:
            load_texts(value.resolve())  # a missing folder or a bad file stops the start here
            return value.resolve()
        return value

    @field_validator("public_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise ValueError("must be an http:// or https:// URL without a query")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:// or postgresql:// SQLAlchemy URL")
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            # psycopg 3 is the driver we ship; a plain URL would ask for psycopg2.
            return "postgresql+psycopg://" + value.split("://", 1)[1]
        return value

    @model_validator(mode="after")
    def _template_mailboxes(self) -> Settings:
        if self.ack_templates is not None:
            ours = {box.address for box in self.support_addresses}
            unknown = sorted(mailboxes(load_texts(self.ack_templates)) - ours)
            if unknown:
                raise ValueError(
                    f"ACK_TEMPLATES: {unknown[0]} has texts but is not a mailbox "
                    "of SUPPORT_ADDRESSES"
                )
        return self

    @model_validator(mode="after")
    def _require_secret(self) -> Settings:
        if self.jwt_secret is None:
            if self.doxa_env == "prod":
                raise ValueError("JWT_SECRET: required (or set DOXA_ENV=dev for a random one)")
            log.warning("JWT_SECRET is unset: using a random key; tokens die with the process")
            self.jwt_secret = secrets.token_urlsafe(48)
        elif self.doxa_env == "prod" and (
            len(self.jwt_secret) < MIN_SECRET_LENGTH
            or self.jwt_secret.lower() in _PLACEHOLDER_SECRETS
        ):
            raise ValueError(
                f"JWT_SECRET: must be a random value of at least {MIN_SECRET_LENGTH} characters"
            )
        return self

    @property
    def secret(self) -> str:
        if self.jwt_secret is None:  # the validator always sets it
            raise ConfigError("JWT_SECRET: not set")
        return self.jwt_secret

    @property
    def on_postgresql(self) -> bool:
        return self.database_url.startswith("postgresql")

    def mailbox(self, address: str) -> Mailbox | None:
        """The configured mailbox for an address, plus forms (`support+12@`) included."""
        local, _, domain = address.lower().partition("@")
        base = f"{local.split('+', 1)[0]}@{domain}"
        return next((box for box in self.support_addresses if box.address == base), None)


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment; raise ConfigError with one readable line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        if not first["loc"]:  # model-level checks name their variable themselves
            raise ConfigError(message) from None
        raise ConfigError(f"{str(first['loc'][0]).upper()}: {message}") from None
