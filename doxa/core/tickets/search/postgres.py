"""Ticket search on PostgreSQL: generated tsvector columns with GIN indexes (the migration).

A search costs what its matches cost, not what the table holds (issue 12: at a million
tickets PostgreSQL walked the whole primary key, 0.7-1.3 s, for a word that matched nothing).
Plans are chosen by what the matches met so far say:

1. the walk: the newest WALK tickets the filters let through (primary key, or a filter's
   `(column, id)` index, newest first), each checked against the stored vector. A common term
   fills the page here; a scope smaller than the walk (a client's own tickets) is answered
   whole;
2. windows: when the walk met matches, but too few, the index looks up what it can cheaply
   (a phrase's adjacent word pairs, `search_pairs`, else the whole words) in a window of ids
   as wide as the density met says the page needs, then wider, checking only the window's
   candidates whole. A phrase goes here even unmet: its pairs are about its matches;
3. the bitmap: otherwise (a term that missed the walk has few matches) the rest from the GIN
   bitmap, then a top-N sort (the planner is told not to walk the primary key); where the
   only lookup is a prefix the walk may go on by the density met, up to WALK_MAX tickets.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, cast, func, literal_column, select, text
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlalchemy.orm import Session

from doxa.core.tickets.models import Ticket
from doxa.core.tickets.query import Term, to_tsquery, to_tsquery_words

# Costs in walk steps (a walk checks a ticket in about 2.5 us): the bitmap fetches and checks
# a candidate in about 4, and reads a prefix's posting lists at about 0.4 per ticket holding it
# (PostgreSQL, a million tickets, in shared buffers).
WALK = 500
WALK_MAX = 40_000
BITMAP_COST = 4
PREFIX_COST = 0.4
# The generated, GIN-indexed columns the migration adds (not mapped: PostgreSQL only).
_VECTOR: ColumnElement[str] = literal_column("ticket.search_vector")
_PAIRS: ColumnElement[str] = literal_column("ticket.search_pairs")
# The vector as an expression no index serves: checked on the rows another lookup found.
_UNINDEXED: ColumnElement[str] = func.coalesce(_VECTOR, literal_column("''::tsvector"))
# The pair a ticket with too many pairs to index keeps instead (see the migration).
_ANY_PAIR = "~"


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
    term (at least one), newest first."""
    if after is not None:
        scope = scope.where(Ticket.id < after)
    return _pg_newest(db, scope, terms, staff=staff, want=want)


def matching(terms: list[Term], *, staff: bool) -> ColumnElement[bool]:
    """The query as a condition on ticket rows (for orders other than newest first)."""
    return _pg_match(_VECTOR, terms, staff)


def _pg_newest(
    db: Session, scope: Select[Ticket], terms: list[Term], *, staff: bool, want: int
) -> list[int]:
    """Walk the newest tickets; when the walk met matches, but too few, the rest by windows of
    what the index looks up cheaply; otherwise walk on while what the walk met says that is
    cheaper than the bitmap, then take the rest from the GIN bitmap."""
    newest = scope.with_only_columns(Ticket.id).order_by(Ticket.id.desc())
    pairs = _pairs_query(db, terms)
    lookup = _lookup(terms, pairs)
    found: list[int] = []
    walked, size, below, top = 0, WALK, newest, 0
    candidates = prefixed = rest = 0
    while size:
        walk = _walk(db, below.limit(size), terms, staff, want - len(found))
        found += walk.hits
        if len(found) == want or walk.seen < size:
            return found  # a full page, or the walk saw the whole scope
        top = top or walk.newest
        walked += walk.seen
        below = newest.where(Ticket.id < walk.oldest)
        if lookup is not None and (found or pairs is not None):
            # Met, but too seldom to fill the page (or a phrase): the rest by the index
            return found + _by_windows(
                db,
                newest.where(lookup),
                terms,
                staff,
                want - len(found),
                per_id=max(len(found), 0.5) / (top - walk.oldest + 1),
                high=walk.oldest,
            )
        candidates, prefixed = candidates + walk.candidates, prefixed + walk.prefixed
        rest += walk.rest
        # Tickets of the scope older than the walk, at the density of ids the walk crossed.
        older = walk.oldest * walked // max(1, top - walk.oldest)
        bitmap_cost = (BITMAP_COST * candidates * older + PREFIX_COST * prefixed * top) / walked
        size = _walk_on(walked, len(found), want, bitmap=bitmap_cost)
    condition = _pg_match(_VECTOR, terms, staff)
    others = _without_prefix(terms)
    # A common prefix costs the bitmap all its posting lists; when the other words are rarer
    # (`ORD-123 refund`), the index looks up those alone and the prefix is checked on the rows.
    if others and 2 * BITMAP_COST * max(rest, 1) * older < PREFIX_COST * prefixed * top:
        indexed = _VECTOR.bool_op("@@")(_tsquery(to_tsquery_words(others)))
        condition = indexed & _pg_match(_UNINDEXED, terms, staff)
    return found + _from_bitmap(db, below.where(condition).limit(want - len(found)))


def _lookup(terms: list[Term], pairs: str | None) -> ColumnElement[bool] | None:
    """What the index can look up cheaply for the query: a phrase's pairs, else its whole
    words (None when a prefix is all there is: its posting lists are the dear part)."""
    if pairs is not None:
        return _has_pairs(_PAIRS, pairs)
    words = _without_prefix(terms) if terms[-1].prefix else terms
    return _VECTOR.bool_op("@@")(_tsquery(to_tsquery_words(words))) if words else None


def _by_windows(
    db: Session,
    looked_up: Select[int],
    terms: list[Term],
    staff: bool,
    want: int,
    *,
    per_id: float,
    high: int,
) -> list[int]:
    """The newest matches below `high` of what the index looks up (`looked_up`), each then
    checked whole, first in a window of ids: only the window's candidates are read. Walking
    on reads every ticket's vector instead (`quickbooks sync`, 0.5% of a million: 70 ms; `"password
    reset"`: 80 ms), and the whole table's bitmap every candidate (the pair of that phrase:
    6,000 heap visits, 33 ms; the words' own bitmap is never built for a phrase: `password`
    and `reset` share 139,000 tickets, 37 ms). The window is three times what the density of
    matches met says the page needs (half a match when none was: a phrase); what it lacks
    comes from the rest of the table at once."""
    checked = looked_up.where(_pg_match(_UNINDEXED, terms, staff))
    low = max(1, high - max(WALK, int(3 * want / per_id)))
    with _bitmap_plans(db):
        window = checked.where(Ticket.id >= low, Ticket.id < high)  # its key range ANDed
        found = list(db.scalars(window.limit(want)))
        if len(found) < want and low > 1:
            # The rest with its bound only checked on the rows: as an index range it made a
            # bitmap of every id below it (78,000 ids: 7 ms; a million: about 90).
            rest = checked.where(Ticket.id + 0 < low)
            found += db.scalars(rest.limit(want - len(found)))
    return found


def _pairs_query(db: Session, terms: list[Term]) -> str | None:
    """A tsquery of the adjacent word pairs the query's phrases need (None without any), each
    normalized by the function that indexed them; a ticket with too many pairs to index always
    passes. It narrows what the index hands out; the phrase itself is still checked."""
    phrases = [" ".join(term.words) for term in terms if len(term.words) > 1 and not term.prefix]
    if not phrases:
        return None
    empty: ColumnElement[str] = literal_column("''::tsvector")
    found = db.execute(
        select(
            *(
                func.tsvector_to_array(func.doxa_pair_vector(_to_tsvector(phrase), empty))
                for phrase in phrases
            )
        )
    ).one()
    pairs = sorted({pair for listed in found for pair in listed})
    if not pairs:
        return None  # only words too long to pair
    return f"({' & '.join(map(_lexeme, pairs))}) | {_lexeme(_ANY_PAIR)}"


def _lexeme(text: str) -> str:
    """`text` as one quoted tsquery lexeme (normalized words hold letters and digits, but a
    dictionary's output is escaped anyway)."""
    escaped = text.replace("\\", "\\\\").replace("'", "''")
    return f"'{escaped}'"


def _has_pairs(column: ColumnElement[str], pairs: str) -> ColumnElement[bool]:
    return column.bool_op("@@")(cast(pairs, TSQUERY))


def _without_prefix(terms: list[Term]) -> list[Term]:
    """The terms with the prefix word left out (none when the prefix is all there is)."""
    last = terms[-1]
    if not last.prefix:
        return []
    rest = [*terms[:-1], Term(last.words[:-1])] if len(last.words) > 1 else terms[:-1]
    return rest


def _walk_on(walked: int, hits: int, want: int, *, bitmap: float) -> int:
    """How many more tickets to walk, 0 for the bitmap: as many as the density of matches met
    says the page needs (with a margin), when that costs less than the bitmap would. Without
    a match met, the bitmap: the term is rare, or the walk could run to the end of the table
    (and a client's tickets, scattered over the table, cost a page read each)."""
    if hits == 0:
        return 0
    needed = 3 * (want - hits) * walked // (2 * hits)
    return needed if needed < bitmap and walked + needed <= WALK_MAX else 0


@dataclass(frozen=True, slots=True)
class _Walked:
    hits: list[int]  # matches, newest first, at most the number asked for
    seen: int  # tickets in the window
    newest: int
    oldest: int
    candidates: int  # tickets holding every word, which the bitmap would have to check
    prefixed: int  # tickets holding the prefix: the bitmap reads all of them, table-wide
    rest: int  # tickets holding every word but the prefix


def _walk(db: Session, window: Select[int], terms: list[Term], staff: bool, want: int) -> _Walked:
    """The window's tickets checked against the query, in one round trip."""
    rows = window.add_columns(_VECTOR.label("vector")).cte("walk")
    matching = (
        select(rows.c.id)
        .where(_pg_match(rows.c.vector, terms, staff))
        .order_by(rows.c.id.desc())
        .limit(want)
        .subquery()
    )
    words: ColumnElement[bool] = rows.c.vector.bool_op("@@")(_tsquery(to_tsquery_words(terms)))
    last = terms[-1]
    prefix = rows.c.vector.bool_op("@@")(_tsquery(f"'{last.words[-1]}':*"))
    others = _without_prefix(terms)
    rest: ColumnElement[bool] | None = None
    if others:
        rest = rows.c.vector.bool_op("@@")(_tsquery(to_tsquery_words(others)))
    seen, newest, oldest, candidates, prefixed, rest_count, hits = db.execute(
        select(
            select(func.count()).select_from(rows).scalar_subquery(),
            select(func.max(rows.c.id)).scalar_subquery(),
            select(func.min(rows.c.id)).scalar_subquery(),
            select(func.count()).select_from(rows).where(words).scalar_subquery(),
            select(func.count()).select_from(rows).where(prefix).scalar_subquery()
            if last.prefix
            else literal_column("0"),
            select(func.count()).select_from(rows).where(rest).scalar_subquery()
            if rest is not None
            else literal_column("0"),
            select(func.array_agg(matching.c.id)).scalar_subquery(),
        )
    ).one()
    return _Walked(
        hits=sorted(hits or (), reverse=True),
        seen=int(seen),
        newest=newest or 0,
        oldest=oldest or 0,
        candidates=int(candidates),
        prefixed=int(prefixed),
        rest=int(rest_count),
    )


def _pg_match(vector: ColumnElement[str], terms: list[Term], staff: bool) -> ColumnElement[bool]:
    return vector.bool_op("@@")(_tsquery(to_tsquery(terms, staff=staff)))


def _tsquery(query: str) -> ColumnElement[str]:
    return func.to_tsquery(literal_column("'doxa_search'::regconfig"), query)


def _to_tsvector(words: str) -> ColumnElement[str]:
    return func.to_tsvector(literal_column("'doxa_search'::regconfig"), words)


def _from_bitmap(db: Session, query: Select[int]) -> list[int]:
    with _bitmap_plans(db):
        return list(db.scalars(query))


@contextmanager
def _bitmap_plans(db: Session) -> Iterator[None]:
    """Queries run inside go through the GIN bitmap and a sort, never an ordered primary-key
    walk: the walk already showed matches are too sparse for one."""
    saved = db.execute(text(_PLAN_BITMAP)).one()
    try:
        yield
    finally:
        db.execute(text(_PLAN_RESTORE), dict(zip(_PLAN, saved[: len(_PLAN)], strict=True)))


# Planner settings for the bitmap query, restored afterwards. work_mem: a prefix's posting lists
# go into one bitmap; at 4 MB it turned lossy at a million tickets and every page of it was
# rechecked (`refund crash:*`: 560 ms, 170 ms at 32 MB). plan_cache_mode: psycopg prepares a
# statement met five times, and PostgreSQL's generic plan for it, blind to the cursor's value,
# ANDed the bitmap with a million-entry primary-key range (+55 ms a search). jit: compiling
# costs more than these queries.
_PLAN = {
    "enable_indexscan": "off",
    "enable_seqscan": "off",
    "work_mem": "32MB",
    "plan_cache_mode": "force_custom_plan",
    "jit": "off",
}
_PLAN_BITMAP = "SELECT " + ", ".join(
    [f"current_setting('{name}')" for name in _PLAN]
    + [f"set_config('{name}', '{value}', true)" for name, value in _PLAN.items()]
)
_PLAN_RESTORE = "SELECT " + ", ".join(f"set_config('{name}', :{name}, true)" for name in _PLAN)
