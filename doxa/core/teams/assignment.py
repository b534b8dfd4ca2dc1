"""Assignment: a ticket in a round-robin or least-open team goes to an available member with
room (SPEC "Routing, assignment and service levels")."""

from __future__ import annotations

from sqlalchemy.orm import Session

from doxa.core.tickets.models import Ticket


def follow(db: Session, ticket: Ticket, changed: set[str]) -> None:
    """After a change to the ticket's fields: place it when it landed in a team unassigned."""
