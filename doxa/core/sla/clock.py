"""The service-level clock on a ticket: which policy applies, its due times, pauses."""

from __future__ import annotations

from sqlalchemy.orm import Session

from doxa.core.tickets.models import Ticket


def follow(db: Session, ticket: Ticket, changed: set[str]) -> None:
    """After a change to the ticket's fields: apply the policy again (priority, team, channel)
    and pause, resume, resolve or reopen the clock (status)."""
