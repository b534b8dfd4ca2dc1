"""Value sets shared by models, schemas and services."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    CLIENT = "CLIENT"
    AGENT = "AGENT"
    ADMIN = "ADMIN"


class Status(StrEnum):
    NEW = "new"
    OPEN = "open"
    PENDING = "pending"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class Channel(StrEnum):
    EMAIL = "email"
    FORM = "form"
    MAILGUN = "mailgun"
    SENDGRID = "sendgrid"
    POSTMARK = "postmark"
    API = "api"


class ClassificationState(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class ThreadedBy(StrEnum):
    REFERENCES = "references"
    SUBJECT_TOKEN = "subject_token"  # noqa: S105 - a threading rule's name, not a secret
    PLUS_ADDRESS = "plus_address"
    NEW = "new"


class DeliveryState(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"
    NOT_SENT = "not_sent"


class WebhookDeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class IntakeStatus(StrEnum):
    RECEIVED = "received"  # raw bytes committed, not processed yet (a crash leaves this)
    TICKET_CREATED = "ticket_created"
    FOLLOWUP = "followup"
    DUPLICATE = "duplicate"
    HELD = "held"
    REJECTED = "rejected"
    FAILED = "failed"


# The classifier's default labels; a retrained model may bring its own.
DEFAULT_CATEGORIES = ("account", "billing", "bug", "feature_request", "general", "technical")


class TokenPurpose(StrEnum):
    VERIFY = "verify"
    RESET = "reset"


class EventType(StrEnum):
    TICKET_CREATED = "ticket.created"
    TICKET_UPDATED = "ticket.updated"
    TICKET_CLASSIFIED = "ticket.classified"
    TICKET_ASSIGNED = "ticket.assigned"
    MESSAGE_CREATED = "message.created"
    SLA_WARNING = "sla.warning"
    SLA_BREACHED = "sla.breached"
    INTAKE_HELD = "intake.held"
    INTAKE_REJECTED = "intake.rejected"
    PING = "ping"


class ActorType(StrEnum):
    USER = "user"
    RULE = "rule"
    SYSTEM = "system"


class Assignment(StrEnum):
    MANUAL = "manual"
    ROUND_ROBIN = "round_robin"
    LEAST_OPEN = "least_open"


class SlaState(StrEnum):
    OK = "ok"
    WARNING = "warning"
    BREACHED = "breached"
    PAUSED = "paused"
    MET = "met"
