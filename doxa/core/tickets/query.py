"""The `q` language of `GET /tickets`, parsed once and written for each backend's index.

Words are runs of letters and digits, compared without case or accents: the same split the
index makes (FTS5's unicode61 tokenizer; on PostgreSQL the migration turns every other
character into a space before `to_tsvector`). So a chunk like `ORD-123` or `jane@example.com`
is a phrase of adjacent words, and it matches whole on either backend.

- every term must match (AND);
- `"…"` is a phrase: its words adjacent, in order;
- the last term, when it is a bare word of 3+ characters, also matches as a prefix;
- internal notes count for staff only; a phrase never runs from public text into a note.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_TERMS = 8
MAX_WORDS_PER_TERM = 8
MIN_PREFIX = 3

_CHUNK = re.compile(r'"([^"]*)"?|([^\s"]+)')
_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True, slots=True)
class Term:
    """Words that must appear adjacent and in order; the last one may be a prefix."""

    words: tuple[str, ...]
    prefix: bool = False


def parse(q: str) -> list[Term]:
    """The terms of `q`; an empty list when it holds no word at all."""
    terms: list[Term] = []
    last_bare = False
    for quoted, bare in _CHUNK.findall(q):
        words = tuple(_WORD.findall((quoted or bare).lower()))[:MAX_WORDS_PER_TERM]
        if words:
            terms.append(Term(words, prefix=False))
            last_bare = not quoted and len(words) == 1 and len(words[0]) >= MIN_PREFIX
        if len(terms) == MAX_TERMS:
            break
    if terms and last_bare:
        terms[-1] = Term(terms[-1].words, prefix=True)
    return terms


def to_tsquery(terms: list[Term], *, staff: bool) -> str:
    """PostgreSQL `to_tsquery` text. Public words carry weight A, notes' words D; a client's
    operands ask for A, a staff phrase for all-A or all-D words."""
    if staff:
        return " & ".join(_pg_staff_term(term) for term in terms)
    return " & ".join(_pg_phrase(term, "A") for term in terms)


def to_tsquery_words(terms: list[Term]) -> str:
    """Every word of every term, ANDed, without phrases or weights: what the GIN index alone
    can tell (the rows it hands out before a recheck)."""
    return " & ".join(
        f"'{word}':*" if term.prefix and index == len(term.words) - 1 else f"'{word}'"
        for term in terms
        for index, word in enumerate(term.words)
    )


def _pg_staff_term(term: Term) -> str:
    if len(term.words) == 1:
        return _pg_phrase(term, "")
    return f"({_pg_phrase(term, 'A')} | {_pg_phrase(term, 'D')})"


def _pg_phrase(term: Term, weight: str) -> str:
    # Words hold letters and digits only, so quoting them needs no escaping.
    operands = [f"'{word}':{weight}" if weight else f"'{word}'" for word in term.words]
    if term.prefix:
        operands[-1] = f"'{term.words[-1]}':*{weight}"
    joined = " <-> ".join(operands)
    return f"({joined})" if len(operands) > 1 else joined


def to_fts5(terms: list[Term], *, staff: bool) -> str:
    """An FTS5 MATCH expression; clients search the public column only."""
    column = "" if staff else "search_text : "
    phrases = [f'{column}"{" ".join(term.words)}"{"*" if term.prefix else ""}' for term in terms]
    return " AND ".join(phrases)
