"""An event's `data`: the object after the change, as the API shows it to staff, in JSON.

Taken when the event is recorded (after its change is applied), so each event of a
transaction shows the object as that change left it; EventRead.seen_by narrows it to what a
client may read.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import to_jsonable_python

from doxa.core.enums import Role
from doxa.core.intake.models import IntakeEvent
from doxa.core.tickets.models import Message, Ticket
from doxa.core.tickets.schemas import MessageRead, TicketRead

Snapshot = dict[str, Any]


def of_ticket(ticket: Ticket) -> Snapshot:
    """The ticket as staff read it through the API."""
    return TicketRead.seen_by(ticket, Role.AGENT).model_dump(mode="json")


def of_message(message: Message) -> Snapshot:
    """The message as staff read it through the API (an internal note included)."""
    return MessageRead.seen_by(message, Role.AGENT).model_dump(mode="json")


def of_intake(event: IntakeEvent) -> Snapshot:
    """What an admin needs to find a held or rejected input in the intake log."""
    return {
        "id": event.id,
        "channel": str(event.channel),
        "status": str(event.status),
        "reason": event.reason,
    }


def jsonable(changes: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """`{field: [before, after]}` with enums, dates and the like as the API writes them."""
    result: dict[str, list[Any]] = to_jsonable_python(changes)
    return result
