"""Listing tickets: filters, full-text search and keyset pagination, newest first.

A search costs what its matches cost, not what the table holds (issue 12: at a million
tickets PostgreSQL walked the whole primary key, 0.7-1.3 s, for a word that matched nothing).

PostgreSQL, two plans chosen by what the matches met so far say:

1. the walk: the newest WALK tickets the filters let through (primary key, or a filter's
   `(column, id)` index, newest first), each checked against the stored vector. A common term
   fills the page here; a scope smaller than the walk (a client's own tickets) is answered
   whole. When the walk met some matches but too few, it walks on as far as their density says
   the page needs, up to WALK_MAX tickets (a phrase of common words: the index would have to
   recheck every ticket holding both words);
2. the index: the rest from the GIN bitmap, then a top-N sort (the planner is told not to walk
   the primary key): a term that missed the walk has few matches.

SQLite: FTS5 hands out matches newest first (rowid descending) and stops at the page, joining
each to its ticket for the filters; checking tickets one by one against FTS5 instead costs
16-450 ms per 2,000 tickets at 100,000, reading its doclists 0.1-18 ms.
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

# A walk checks a ticket in about 2.5 us, the bitmap fetches and checks a match in about
# 8 us (PostgreSQL, 100,000 tickets): at a million tickets they cost the same near 0.3% of
# tickets matching, some 9,000 tickets into a walk.
WALK = 500
WALK_MAX = 12_000
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
    if filters.q is None:
        if after is not None:
            query = query.where(Ticket.id < after)
        rows = list(db.scalars(query.order_by(Ticket.id.desc()).limit(limit + 1)))
    else:
        terms = parse(filters.q)
        ids = matching_ids(db, query, terms, staff=actor.is_staff, after=after, want=limit + 1)
        found = query.where(Ticket.id.in_(ids)).order_by(Ticket.id.desc())
        rows = list(db.scalars(found)) if ids else []
    page = rows[:limit]
    return Page(
        items=[TicketRead.model_validate(t) for t in page],
        next_cursor=encode_cursor(page[-1].id) if len(rows) > limit else None,
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
    if is_postgresql(db):
        if after is not None:
            scope = scope.where(Ticket.id < after)
        return _pg_newest(db, scope, terms, staff=staff, want=want)
    return _fts_newest(db, scope, terms, staff=staff, after=after, want=want)


def _pg_newest(
    db: Session, scope: Select[Ticket], terms: list[Term], *, staff: bool, want: int
) -> list[int]:
    """Walk the newest tickets while the matches met so far say a walk fills the page soon;
    otherwise take the rest from the GIN bitmap."""
    newest = scope.with_only_columns(Ticket.id).order_by(Ticket.id.desc())
    found: list[int] = []
    walked, size, below = 0, WALK, newest
    while size:
        hits, seen, oldest = _walk(db, below.limit(size), terms, staff, want - len(found))
        found += hits
        if len(found) == want or seen < size:
            return found  # a full page, or the walk saw the whole scope
        walked, below = walked + seen, newest.where(Ticket.id < oldest)
        size = _next_walk(walked, len(found), want)
    condition = _pg_match(_VECTOR, terms, staff)
    older = below.where(condition).limit(want - len(found))
    return found + _from_bitmap(db, older)


def _walk(
    db: Session, window: Select[int], terms: list[Term], staff: bool, want: int
) -> tuple[list[int], int, int]:
    """The matches among `window`'s tickets (newest first, at most `want`), how many tickets
    the window held and the oldest of them: one round trip."""
    rows = window.add_columns(_VECTOR.label("vector")).cte("walk")
    matching = (
        select(rows.c.id)
        .where(_pg_match(rows.c.vector, terms, staff))
        .order_by(rows.c.id.desc())
        .limit(want)
        .subquery()
    )
    seen, oldest, hits = db.execute(
        select(
            select(func.count()).select_from(rows).scalar_subquery(),
            select(func.min(rows.c.id)).scalar_subquery(),
            select(func.array_agg(matching.c.id)).scalar_subquery(),
        )
    ).one()
    return sorted(hits or (), reverse=True), int(seen), int(oldest or 0)


def _next_walk(walked: int, hits: int, want: int) -> int:
    """How far to walk on: as far as the density met so far needs to fill the page (twice
    that, for luck), when that stays under WALK_MAX; 0 sends the rest to the bitmap."""
    if hits == 0:
        return 0
    needed = 2 * (want - hits) * walked // hits
    return needed if walked + needed <= WALK_MAX else 0


def _fts_newest(
    db: Session,
    scope: Select[Ticket],
    terms: list[Term],
    *,
    staff: bool,
    after: int | None,
    want: int,
) -> list[int]:
    """FTS5's matches newest first, each joined to its ticket for the scope, up to `want`."""
    query = (
        scope.with_only_columns(Ticket.id)
        .select_from(_FTS)
        .join(Ticket, Ticket.id == _FTS.c.rowid)
        .where(_fts_match(terms, staff))
    )
    if after is not None:
        query = query.where(_FTS.c.rowid < after)
    return list(db.scalars(query.order_by(_FTS.c.rowid.desc()).limit(want)))


def match_condition(db: Session, q: str, *, staff: bool) -> ColumnElement[bool]:
    """`q` as a plain WHERE condition on ticket (no plan chosen), e.g. to count matches."""
    terms = parse(q)
    if not terms:
        return Ticket.id.is_(None)
    if is_postgresql(db):
        return _pg_match(_VECTOR, terms, staff)
    return Ticket.id.in_(select(_FTS.c.rowid).where(_fts_match(terms, staff)).scalar_subquery())


def _pg_match(vector: ColumnElement[str], terms: list[Term], staff: bool) -> ColumnElement[bool]:
    tsquery = func.to_tsquery(
        literal_column("'doxa_search'::regconfig"), to_tsquery(terms, staff=staff)
    )
    return vector.bool_op("@@")(tsquery)


def _fts_match(terms: list[Term], staff: bool) -> ColumnElement[bool]:
    return literal_column("ticket_fts").bool_op("MATCH")(to_fts5(terms, staff=staff))


def _from_bitmap(db: Session, query: Select[int]) -> list[int]:
    """Run `query` through the GIN bitmap and a sort, never an ordered primary-key walk:
    the walk already showed matches are too sparse for one."""
    saved = db.execute(text(_PLAN_BITMAP)).one()
    try:
        return list(db.scalars(query))
    finally:
        db.execute(text(_PLAN_RESTORE), {"index": saved.index, "seq": saved.seq})


_PLAN_BITMAP = (
    "SELECT current_setting('enable_indexscan') AS index, "
    "current_setting('enable_seqscan') AS seq, "
    "set_config('enable_indexscan', 'off', true), set_config('enable_seqscan', 'off', true)"
)
_PLAN_RESTORE = (
    "SELECT set_config('enable_indexscan', :index, true), set_config('enable_seqscan', :seq, true)"
)
