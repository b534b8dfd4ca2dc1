"""Listing tickets: filters, full-text search and keyset pagination, newest first."""

from __future__ import annotations

import re

from sqlalchemy import ColumnElement, Select, func, literal_column, text
from sqlalchemy.orm import Session, selectinload

from doxa.core.db import is_postgresql
from doxa.core.schemas import MAX_PAGE_SIZE, Page, decode_cursor, encode_cursor
from doxa.core.tickets.access import readable_by
from doxa.core.tickets.models import Ticket
from doxa.core.tickets.schemas import TicketFilters, TicketRead
from doxa.core.users.models import User

_WORD = re.compile(r"\w+", re.UNICODE)
MAX_SEARCH_TERMS = 8
_EQUALITY_FILTERS = (
    "status",
    "priority",
    "category",
    "assignee_id",
    "requester_id",
    "needs_triage",
    "channel",
    "language",
)


def list_tickets(
    db: Session, filters: TicketFilters, *, actor: User, cursor: str | None, limit: int
) -> Page[TicketRead]:
    """A page of the tickets the actor may see; `next_cursor` continues after its last item.

    Ordering by id (creation order) keeps pages stable while new tickets arrive, and the
    cursor is the last id seen, so a deep page costs what the first one does.
    """
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    query = readable_by(actor)
    for name in _EQUALITY_FILTERS:
        value = getattr(filters, name)
        if value is not None:
            query = query.where(getattr(Ticket, name) == value)
    if filters.q is not None:
        query = _matching(db, query, filters.q)
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(Ticket.id < after)
    query = query.options(selectinload(Ticket.requester))  # one query for a page's requesters
    rows = list(db.scalars(query.order_by(Ticket.id.desc()).limit(limit + 1)))
    page = rows[:limit]
    return Page(
        items=[TicketRead.seen_by(t, actor.role) for t in page],
        next_cursor=encode_cursor(page[-1].id) if len(rows) > limit else None,
    )


def _matching(db: Session, query: Select[Ticket], q: str) -> Select[Ticket]:
    """Every word of `q` as a prefix, over the subject and public message text."""
    terms = _WORD.findall(q.lower())[:MAX_SEARCH_TERMS]
    if not terms:
        return query.where(Ticket.id.is_(None))
    return query.where(_fts_condition(db, terms))


def _fts_condition(db: Session, terms: list[str]) -> ColumnElement[bool]:
    if is_postgresql(db):
        # The generated, GIN-indexed column the migration adds (not mapped: PostgreSQL only).
        vector: ColumnElement[str] = literal_column("ticket.search_vector")
        tsquery = func.to_tsquery(
            literal_column("'simple'::regconfig"), " & ".join(f"{t}:*" for t in terms)
        )
        return vector.bool_op("@@")(tsquery)
    match = " AND ".join(f'"{t}"*' for t in terms)
    hits = text("SELECT rowid FROM ticket_fts WHERE ticket_fts MATCH :match").bindparams(
        match=match
    )
    return Ticket.id.in_(hits.columns(literal_column("rowid")).scalar_subquery())
