"""Every table, imported in one place so Alembic and the tests see the whole metadata."""

from doxa.core.db import Base
from doxa.core.intake.models import IntakeEvent, IntakeKey
from doxa.core.outbox.models import OutboxItem
from doxa.core.tickets.models import Attachment, Message, Ticket, TicketEvent
from doxa.core.triage.models import (
    ClassificationCorrection,
    ClassifierCategory,
    ClassifierModel,
    TrainingExample,
)
from doxa.core.users.models import AccountMail, AccountNetwork, AccountToken, User

__all__ = [
    "AccountMail",
    "AccountNetwork",
    "AccountToken",
    "Attachment",
    "Base",
    "ClassificationCorrection",
    "ClassifierCategory",
    "ClassifierModel",
    "IntakeEvent",
    "IntakeKey",
    "Message",
    "OutboxItem",
    "Ticket",
    "TicketEvent",
    "TrainingExample",
    "User",
]
