"""Similar tickets: the same word and character n-grams the classifier reads, made comparable.

Each ticket's text (subject and first message) is hashed, with random signs, into
`DIMENSIONS` buckets: half for word 1-2-grams, half for character 3-5-grams, each half of unit
length. Hashing depends on no trained model, so a stored vector never goes stale when the
classifier is retrained. The vector is computed when the
ticket is classified and kept on the ticket; each process keeps the vectors in memory and
adds only the rows it has not seen, so a query is one matrix-vector product over every ticket
(100k x 256 floats: a few milliseconds) and one query for the winners.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select
from sqlalchemy.orm import Session

from doxa.core.enums import Role, Status
from doxa.core.tickets.access import get_readable, readable_by
from doxa.core.tickets.models import Ticket
from doxa.core.tickets.service import first_body
from doxa.core.users.models import User
from doxa.core.users.service import require_role

if TYPE_CHECKING:
    from sklearn.feature_extraction import FeatureHasher

DIMENSIONS = 256
_DONE = (Status.RESOLVED, Status.CLOSED)
_WORD = r"(?u)\b\w+\b"  # as the classifier's: one-letter words count

Analyze = Callable[[str], Iterable[str]]


@functools.cache
def _steps() -> list[tuple[Analyze, FeatureHasher]]:
    """The two halves' analyzers and hashers, built on first use: scikit-learn takes 0.8 s to
    import, and a process that never vectorizes a ticket (a parsing worker) never pays it.

    Each half is what `HashingVectorizer.transform` returns (its analyzer, the hasher it builds,
    rows of unit length) without the union's and the normaliser's input checks: a third of the
    time (p50 0.4-0.75 ms a ticket instead of 1.25-1.85, one core). Signed feature hashing into
    few buckets is itself a random projection (inner products are kept in expectation), and
    costs only the hashing: a tenth of hashing wide and projecting."""
    from sklearn.feature_extraction import FeatureHasher
    from sklearn.feature_extraction.text import HashingVectorizer

    halves = (
        HashingVectorizer(ngram_range=(1, 2), n_features=DIMENSIONS // 2, token_pattern=_WORD),
        HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), n_features=DIMENSIONS // 2),
    )
    return [
        (
            half.build_analyzer(),
            FeatureHasher(
                n_features=half.n_features,
                input_type="string",
                dtype=half.dtype,
                alternate_sign=half.alternate_sign,
            ),
        )
        for half in halves
    ]


def vector(text: str) -> bytes:
    """The ticket's text as `DIMENSIONS` float16 values of unit length, for storing."""
    from sklearn.utils.sparsefuncs_fast import inplace_csr_row_normalize_l2

    halves = []
    for analyze, hasher in _steps():
        half = hasher.transform([analyze(text)])
        inplace_csr_row_normalize_l2(half)
        halves.append(half.toarray()[0])
    dense = np.concatenate(halves).astype(np.float32)
    norm = float(np.linalg.norm(dense))
    return bytes((dense / norm if norm else dense).astype(np.float16).tobytes())


@dataclass(frozen=True)
class Similar:
    ticket: Ticket
    similarity: float


@dataclass
class _Index:
    """The vectors this process has seen, by ticket id; tickets not yet vectorised are holes."""

    # Grown by doubling: a new ticket appends a row instead of copying every vector.
    ids: NDArray[np.int64] = field(default_factory=lambda: np.zeros(1024, dtype=np.int64))
    matrix: NDArray[np.float32] = field(
        default_factory=lambda: np.zeros((1024, DIMENSIONS), dtype=np.float32)
    )
    size: int = 0
    last_id: int = 0
    holes: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def refresh(self, db: Session) -> None:
        # Two queries, not one with OR: each is a primary-key range or lookup (an OR makes
        # SQLite scan the table: 150 ms at 100k tickets).
        query = select(Ticket.id, Ticket.text_vector)
        rows = list(db.execute(query.where(Ticket.id > self.last_id).order_by(Ticket.id)))
        if self.holes:
            rows += db.execute(query.where(Ticket.id.in_(sorted(self.holes)[:1000]))).all()
        new = [(i, blob) for i, blob in rows if blob is not None]
        self.holes = (self.holes | {i for i, blob in rows if blob is None}) - {i for i, _ in new}
        self.last_id = max([self.last_id, *(i for i, _ in rows)])
        if new:
            vectors = np.frombuffer(b"".join(blob for _, blob in new), dtype=np.float16)
            self._append(np.array([i for i, _ in new]), vectors.reshape(-1, DIMENSIONS))

    def _append(self, ids: NDArray[np.int64], vectors: NDArray[np.float16]) -> None:
        end = self.size + len(ids)
        if end > len(self.ids):
            capacity = max(end, 2 * len(self.ids))
            self.ids = np.resize(self.ids, capacity)
            self.matrix = np.resize(self.matrix, (capacity, DIMENSIONS))
        self.ids[self.size : end], self.matrix[self.size : end] = ids, vectors
        self.size = end

    def nearest(self, query: NDArray[np.float32], count: int) -> list[tuple[int, float]]:
        if not self.size:
            return []
        scores = self.matrix[: self.size] @ query
        count = min(count, len(scores))
        top = np.argpartition(-scores, count - 1)[:count]
        return [(int(self.ids[i]), float(scores[i])) for i in top]


class SimilarTickets:
    """One process's index of ticket vectors, held by its TriageRunner (one per app)."""

    def __init__(self) -> None:
        self._index = _Index()

    def find(self, db: Session, ticket_id: int, *, actor: User, limit: int = 10) -> list[Similar]:
        """The `limit` most similar other tickets, resolved (or closed) ones first, each group
        most similar first: an agent looks at how a like ticket was solved before anything."""
        require_role(actor, Role.AGENT, Role.ADMIN)
        ticket = get_readable(db, ticket_id, actor=actor)
        blob = ticket.text_vector or vector(ticket_text(db, ticket))
        query = np.frombuffer(blob, dtype=np.float16).astype(np.float32)
        with self._index.lock:
            self._index.refresh(db)
            # A few spare: the ticket itself, and rows deleted since they were indexed.
            nearest = dict(self._index.nearest(query, limit + 5))
        nearest.pop(ticket.id, None)
        rows = db.scalars(readable_by(actor).where(Ticket.id.in_(nearest)))
        found = sorted((Similar(row, nearest[row.id]) for row in rows), key=_closest)[:limit]
        return sorted(found, key=lambda s: (s.ticket.status not in _DONE, _closest(s)))


def _closest(similar: Similar) -> float:
    return -similar.similarity


def ticket_text(db: Session, ticket: Ticket) -> str:
    return f"{ticket.subject}\n{first_body(db, ticket.id)}"
