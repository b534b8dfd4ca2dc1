"""Listing tickets: filters, full-text search and keyset pagination, newest first.

A search's cost follows its matches, not the table. Two plans, tried in this order:

1. the walk: the newest WALK tickets the filters let through (primary key, or a filter's
   `(column, id)` index, newest first), each checked against the query. Common terms fill a
   page here in a few milliseconds, and a scope smaller than WALK (a client's own tickets) is
   answered exactly;
2. the index: every match older than the walk's last ticket, straight from the full-text
   index (PostgreSQL: the GIN bitmap, then a top-N sort; SQLite: FTS5's doclists, newest
   first). Terms rare enough to miss the walk have few matches, so this is cheap too.

Without step 1 PostgreSQL walked the whole primary key for a word that matched nothing
(0.7-1.3 s at a million tickets, issue 12); without step 2 a rare word would cost the same.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, func, literal_column, select, table, text
from sqlalchemy.orm import Session

from doxa.core.db import is_postgresql
from doxa.core.schemas import MAX_PAGE_SIZE, Page, decode_cursor, encode_cursor
from doxa.core.tickets.access import readable_by
from doxa.core.tickets.models import Ticket
from doxa.core.tickets.query import Term, parse, to_fts5, to_tsquery
from doxa.core.tickets.schemas import TicketFilters, TicketRead
from doxa.core.users.models import User

WALK = 2_000
_EQUALITY_FILTERS = (
    "status",
    "priority",
    "category",
    "assignee_id",
    "requester_id",
    "needs_triage",
    "channel",
)
_FTS = table("ticket_fts", literal_column("rowid"))
# The generated, GIN-indexed column the migration adds (not mapped: PostgreSQL only).
_VECTOR: ColumnElement[str] = literal_column("ticket.search_vector")


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
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(Ticket.id < after)
    if filters.q is None:
        rows = list(db.scalars(query.order_by(Ticket.id.desc()).limit(limit + 1)))
    else:
        ids = matching_ids(db, query, parse(filters.q), staff=actor.is_staff, want=limit + 1)
        found = query.where(Ticket.id.in_(ids)).order_by(Ticket.id.desc())
        rows = list(db.scalars(found)) if ids else []
    page = rows[:limit]
    return Page(
        items=[TicketRead.model_validate(t) for t in page],
        next_cursor=encode_cursor(page[-1].id) if len(rows) > limit else None,
    )


def matching_ids(
    db: Session, scope: Select[Ticket], terms: list[Term], *, staff: bool, want: int
) -> list[int]:
    """The ids of the newest `want` tickets of `scope` that match every term, newest first."""
    if not terms:
        return []
    postgresql = is_postgresql(db)
    newest = scope.with_only_columns(Ticket.id).order_by(Ticket.id.desc())
    if postgresql:
        window = newest.add_columns(_VECTOR.label("vector")).limit(WALK).subquery()
        walk_matches = _pg_match(window.c.vector, terms, staff)
        condition = _pg_match(_VECTOR, terms, staff)
    else:
        window = newest.limit(WALK).subquery()
        walk_matches = _fts_match(window.c.id, terms, staff)
        condition = _fts_match(Ticket.id, terms, staff)
    walked = select(window.c.id).where(walk_matches).order_by(window.c.id.desc())
    found = list(db.scalars(walked.limit(want)))
    if len(found) == want:
        return found
    seen, oldest = db.execute(select(func.count(), func.min(window.c.id))).one()
    if seen < WALK:
        return found  # the walk saw the whole scope
    older = newest.where(Ticket.id < oldest, condition).limit(want - len(found))
    if postgresql:
        return found + _from_bitmap(db, older)
    return found + list(db.scalars(older))


def match_condition(db: Session, q: str, *, staff: bool) -> ColumnElement[bool]:
    """`q` as a plain WHERE condition on ticket (no plan chosen), e.g. to count matches."""
    terms = parse(q)
    if not terms:
        return Ticket.id.is_(None)
    if is_postgresql(db):
        return _pg_match(_VECTOR, terms, staff)
    return _fts_match(Ticket.id, terms, staff)


def _pg_match(vector: ColumnElement[str], terms: list[Term], staff: bool) -> ColumnElement[bool]:
    tsquery = func.to_tsquery(
        literal_column("'doxa_search'::regconfig"), to_tsquery(terms, staff=staff)
    )
    return vector.bool_op("@@")(tsquery)


def _fts_match(
    ticket_id: ColumnElement[int], terms: list[Term], staff: bool
) -> ColumnElement[bool]:
    hits = select(_FTS.c.rowid).where(
        literal_column("ticket_fts").bool_op("MATCH")(to_fts5(terms, staff=staff))
    )
    return ticket_id.in_(hits.scalar_subquery())


def _from_bitmap(db: Session, query: Select[tuple[int]]) -> list[int]:
    """Run `query` through the GIN bitmap and a sort, never an ordered primary-key walk:
    the walk already showed matches are too sparse for one."""
    db.execute(text("SET LOCAL enable_indexscan = off"))
    db.execute(text("SET LOCAL enable_seqscan = off"))
    try:
        return list(db.scalars(query))
    finally:
        db.execute(text("RESET enable_indexscan"))
        db.execute(text("RESET enable_seqscan"))
