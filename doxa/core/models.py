"""Every table, imported in one place so Alembic and the tests see the whole metadata."""

from doxa.core.db import Base
from doxa.core.events.models import Event, StreamTicket
from doxa.core.intake.models import IntakeEvent, IntakeKey
from doxa.core.notifications.models import AgentNotice
from doxa.core.outbox.models import OutboxItem
from doxa.core.routing.models import Rule
from doxa.core.sla.models import Calendar, SlaPolicy
from doxa.core.teams.models import Team, TeamMember
from doxa.core.tickets.models import Attachment, Message, Ticket, TicketTag
from doxa.core.triage.models import (
    ClassificationCorrection,
    ClassifierCategory,
    ClassifierModel,
    TrainingExample,
)
from doxa.core.users.models import AccountMail, AccountNetwork, AccountToken, User
from doxa.core.webhooks.models import Webhook, WebhookDelivery

__all__ = [
    "AccountMail",
    "AccountNetwork",
    "AccountToken",
    "AgentNotice",
    "Attachment",
    "Base",
    "Calendar",
    "ClassificationCorrection",
    "ClassifierCategory",
    "ClassifierModel",
    "Event",
    "IntakeEvent",
    "IntakeKey",
    "Message",
    "OutboxItem",
    "Rule",
    "SlaPolicy",
    "StreamTicket",
    "Team",
    "TeamMember",
    "Ticket",
    "TicketTag",
    "TrainingExample",
    "User",
    "Webhook",
    "WebhookDelivery",
]
