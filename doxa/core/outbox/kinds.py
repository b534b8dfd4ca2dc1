"""The outbox of a configured process: one courier per kind of item, over one relay."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from doxa.core.config import Settings
from doxa.core.notifications.mail import AgentMail
from doxa.core.outbound import TicketMail
from doxa.core.outbox.models import OutboxKind
from doxa.core.outbox.relay import Relay
from doxa.core.outbox.sender import Courier, Outbox
from doxa.core.users.mail import AccountMailCourier


def build_outbox(settings: Settings, sessions: sessionmaker[Session]) -> Outbox | None:
    """The outbox, or None when OUTBOUND_SMTP_URL is not set (nothing is queued then)."""
    if settings.outbound_smtp_url is None:
        return None
    relay = Relay.parse(settings.outbound_smtp_url)
    couriers: dict[OutboxKind, Courier] = {
        OutboxKind.TICKET_MAIL: TicketMail(settings, relay),
        OutboxKind.ACCOUNT_MAIL: AccountMailCourier(settings, relay),
        OutboxKind.AGENT_MAIL: AgentMail(settings, relay),
    }
    return Outbox(sessions, couriers)
