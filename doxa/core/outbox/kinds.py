"""The outbox of a configured process: one courier per kind of item."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from doxa.core.config import Settings
from doxa.core.notifications.mail import AgentMail
from doxa.core.outbound import TicketMail
from doxa.core.outbox.models import OutboxKind
from doxa.core.outbox.relay import Relay
from doxa.core.outbox.sender import Courier, Outbox
from doxa.core.users.mail import AccountMailCourier
from doxa.core.webhooks.courier import WebhookCourier


def build_outbox(
    settings: Settings,
    sessions: sessionmaker[Session],
    *,
    webhook_outcome: Callable[[str], None] | None = None,
) -> Outbox:
    """The outbox: webhooks always; mail only when OUTBOUND_SMTP_URL is set (no mail is
    queued without it, and a process without the relay claims none). `webhook_outcome` hears
    each delivery's outcome (metrics)."""
    allowed = settings.webhook_allowed_hosts
    couriers: dict[OutboxKind, Courier] = {
        OutboxKind.WEBHOOK: WebhookCourier(allowed=allowed, observe=webhook_outcome),
    }
    if settings.outbound_smtp_url is not None:
        relay = Relay.parse(settings.outbound_smtp_url)
        couriers[OutboxKind.TICKET_MAIL] = TicketMail(settings, relay)
        couriers[OutboxKind.ACCOUNT_MAIL] = AccountMailCourier(settings, relay)
        couriers[OutboxKind.AGENT_MAIL] = AgentMail(settings, relay)
    return Outbox(sessions, couriers)
