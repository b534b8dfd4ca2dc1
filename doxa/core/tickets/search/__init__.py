"""Listing tickets: filters, full-text search and keyset pagination, newest first.

Each backend searches its own way (`backend(db).full_text`), behind one signature,
`MatchingIds`: `postgres` walks the newest tickets and chooses the index's plan by what it met,
`sqlite` reads FTS5's matches newest first.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, selectinload

from doxa.core.db import FullText, backend
from doxa.core.schemas import MAX_PAGE_SIZE, Page, decode_cursor, encode_cursor
from doxa.core.tickets.access import readable_by
from doxa.core.tickets.models import Ticket, TicketTag
from doxa.core.tickets.query import Term, parse
from doxa.core.tickets.schemas import TicketFilters, TicketRead
from doxa.core.tickets.search import postgres, sla, sqlite
from doxa.core.users.models import User

_EQUALITY_FILTERS = (
    "status",
    "priority",
    "category",
    "assignee_id",
    "requester_id",
    "team_id",
    "needs_triage",
    "channel",
    "language",
)


class MatchingIds(Protocol):
    def __call__(
        self,
        db: Session,
        scope: Select[Ticket],
        terms: list[Term],
        *,
        staff: bool,
        after: int | None,
        want: int,
    ) -> list[int]:
        """The ids of the newest `want` tickets of `scope` older than `after` that match every
        term (at least one), newest first."""
        ...


_BY_ENGINE: dict[FullText, MatchingIds] = {
    FullText.TSVECTOR: postgres.matching_ids,
    FullText.FTS5: sqlite.matching_ids,
}


_MATCHING = {FullText.TSVECTOR: postgres.matching, FullText.FTS5: sqlite.matching}


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
    if filters.tag is not None:  # the (tag, ticket_id) index
        tagged = select(TicketTag.ticket_id).where(TicketTag.tag == filters.tag)
        query = query.where(Ticket.id.in_(tagged))
    query = sla.narrow(query, filters)
    # One query each for a page's requesters, teams and tags.
    related = (
        selectinload(Ticket.requester),
        selectinload(Ticket.team),
        selectinload(Ticket.tag_rows),
    )
    if filters.sort == "sla_due":
        return _by_due(
            db, query.options(*related), filters, actor=actor, cursor=cursor, limit=limit
        )
    after = decode_cursor(cursor)
    if filters.q is None:
        if after is not None:
            query = query.where(Ticket.id < after)
        page_query = query.options(*related).order_by(Ticket.id.desc()).limit(limit + 1)
        rows = list(db.scalars(page_query))
    else:
        terms = parse(filters.q)
        ids = matching_ids(db, query, terms, staff=actor.is_staff, after=after, want=limit + 1)
        found = query.where(Ticket.id.in_(ids)).options(*related).order_by(Ticket.id.desc())
        rows = list(db.scalars(found)) if ids else []
    page = rows[:limit]
    return Page(
        items=[TicketRead.seen_by(t, actor.role) for t in page],
        next_cursor=encode_cursor(page[-1].id) if len(rows) > limit else None,
    )


def _by_due(
    db: Session,
    query: Select[Ticket],
    filters: TicketFilters,
    *,
    actor: User,
    cursor: str | None,
    limit: int,
) -> Page[TicketRead]:
    """`sort=sla_due`: what breaches next, a page at a time (with `q`, of the matches)."""
    if filters.q is not None:
        terms = parse(filters.q)
        if not terms:
            return Page(items=[])
        query = query.where(_MATCHING[backend(db).full_text](terms, staff=actor.is_staff))
    rows = list(db.scalars(sla.by_due(query, cursor).limit(limit + 1)))
    page = rows[:limit]
    return Page(
        items=[TicketRead.seen_by(t, actor.role) for t in page],
        next_cursor=sla.encode_cursor(page[-1]) if len(rows) > limit else None,
    )


def matching_ids(
    db: Session,
    scope: Select[Ticket],
    terms: list[Term],
    *,
    staff: bool,
    after: int | None,
    want: int,
) -> list[int]:
    """The ids of the newest `want` tickets of `scope` older than `after` that match every
    term, newest first."""
    if not terms:
        return []
    search = _BY_ENGINE[backend(db).full_text]
    return search(db, scope, terms, staff=staff, after=after, want=want)
