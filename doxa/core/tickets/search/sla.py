"""Listing by service level: `sla_state` and `sla_due_before` narrow any list; `sort=sla_due`
pages the tickets with a running target, soonest due first, by the `(sla_due_at, id)` indexes
(`(team_id, sla_due_at, id)` for a team's), the cursor carrying both."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from sqlalchemy import Select, literal, tuple_

from doxa.core.db import UTCDateTime
from doxa.core.errors import InvalidInput
from doxa.core.tickets.models import Ticket
from doxa.core.tickets.schemas import TicketFilters

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def narrow(query: Select[Ticket], filters: TicketFilters) -> Select[Ticket]:
    if filters.sla_state is not None:
        query = query.where(Ticket.sla_state == filters.sla_state)
    if filters.sla_due_before is not None:
        query = query.where(Ticket.sla_due_at < filters.sla_due_before)
    return query


def by_due(query: Select[Ticket], cursor: str | None) -> Select[Ticket]:
    """The tickets of `query` with a running target, soonest due first, after the cursor."""
    query = query.where(Ticket.sla_due_at.is_not(None))
    after = decode_cursor(cursor)
    if after is not None:
        due, last_id = after
        query = query.where(
            tuple_(Ticket.sla_due_at, Ticket.id) > tuple_(literal(due, UTCDateTime()), last_id)
        )
    return query.order_by(Ticket.sla_due_at, Ticket.id)


def encode_cursor(ticket: Ticket) -> str:
    micros = ((ticket.sla_due_at or EPOCH) - EPOCH) // _MICROSECOND
    text = f"due:{micros}:{ticket.id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime, int] | None:
    """(due time, id) a `sort=sla_due` cursor points after; InvalidInput for anything else."""
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, micros, last_id = text.split(":")
        if kind != "due" or not last_id.isdigit() or len(last_id) > 10:
            raise ValueError(kind)
        return EPOCH + int(micros) * _MICROSECOND, int(last_id)
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
        raise InvalidInput("cursor is not valid (for sort=sla_due)") from None


_MICROSECOND = datetime.resolution
