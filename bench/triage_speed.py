"""Per-ticket triage work and the similar-tickets index, timed on one core.

Usage::

    python bench/triage_speed.py               # 100,000 indexed tickets
    python bench/triage_speed.py --tickets 20000
    # end to end: bench/api.py's 100k tickets (seeded when missing), vectors filled in once
    python bench/triage_speed.py --database-url sqlite:////tmp/bench-100k.db

Classification: what the background classifier does per ticket (language, the text vector for
similar tickets, category and priority with the explanation), one ticket at a time, with the
seed model, over the texts of ../shared/corpus/tickets/multilingual-helpdesk-tickets-600 (or the
seed set when that corpus is absent). Similar: the in-memory ranking `/similar` runs per request
over N stored vectors (the SQL part is one primary-key lookup and one `id IN (...)` of 15 rows);
with `--database-url`, `SimilarTickets.find` itself, as the route calls it, over a seeded
database: the first call (loading every vector into the process) and then warm calls.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from api import build_settings, prepare

from doxa.core.context import Context
from doxa.core.models import Base, Ticket, User
from doxa.core.triage import language, similar
from doxa.core.triage.data import seed_examples
from doxa.core.triage.text_classifier import train

CORPUS = Path(__file__).resolve().parents[2] / "shared/corpus/tickets"


def _texts() -> list[str]:
    path = CORPUS / "multilingual-helpdesk-tickets-600/helpdesk_customer_tickets.csv"
    if not path.is_file():
        return [example.text for example in seed_examples()]
    with path.open(encoding="utf-8") as handle:
        return [f"{row['subject']}\n{row['body']}" for row in csv.DictReader(handle)]


def _percentiles(seconds: list[float]) -> str:
    ms = np.array(seconds) * 1000
    return f"p50 {np.percentile(ms, 50):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--database-url", help="also measure find() over a seeded database")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    model, texts = train(seed_examples()), _texts()
    language.load()
    similar.vector("warm up")
    model.predict_texts(["warm up"])
    spent, cpu = [], []
    for text in texts:
        start, start_cpu = time.perf_counter(), time.thread_time()
        language.detect(text)
        similar.vector(text)
        model.predict_texts([text])
        spent.append(time.perf_counter() - start)
        cpu.append(time.thread_time() - start_cpu)
    # Wall time includes waiting for the core on a busy machine; CPU time is the work itself.
    print(
        f"classification + language + explanation + vector, {len(texts)} tickets: "
        f"wall {_percentiles(spent)}; CPU {_percentiles(cpu)}"
    )

    index = similar._Index()
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.tickets, similar.DIMENSIONS)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    start = time.perf_counter()
    index._append(np.arange(1, args.tickets + 1), vectors.astype(np.float16))
    print(f"index of {args.tickets} vectors built in {time.perf_counter() - start:.2f} s")
    spent = []
    for row in rng.integers(0, args.tickets, 200):
        start = time.perf_counter()
        index.nearest(vectors[row], 15)
        spent.append(time.perf_counter() - start)
    print(f"similar ranking over {args.tickets} tickets: {_percentiles(spent)}")
    if args.database_url:
        end_to_end(args.database_url, args.tickets)


def end_to_end(url: str, tickets: int) -> None:
    from doxa.migrations import upgrade

    upgrade(url)
    context = Context.build(build_settings(url))
    total = prepare(context, tickets, reuse=True)
    _fill_vectors(context)
    finder = similar.SimilarTickets()
    with context.sessions() as db:
        agent = db.scalars(sa.select(User).where(User.role == "AGENT").limit(1)).one()
        start = time.perf_counter()
        finder.find(db, 1, actor=agent)
        print(
            f"first /similar in a process (loads {total} vectors): "
            f"{time.perf_counter() - start:.2f} s"
        )
        spent = []
        for ticket_id in np.random.default_rng(1).integers(1, total + 1, 200):
            start = time.perf_counter()
            finder.find(db, int(ticket_id), actor=agent)
            spent.append(time.perf_counter() - start)
    print(f"similar, find() with its queries over {total} tickets: {_percentiles(spent)}")


def _fill_vectors(context: Context) -> None:
    message = Base.metadata.tables["message"]
    first = (
        sa.select(message.c.body)
        .where(message.c.ticket_id == Ticket.id)
        .order_by(message.c.id)
        .limit(1)
        .scalar_subquery()
    )
    missing = sa.select(Ticket.id, Ticket.subject, first).where(Ticket.text_vector.is_(None))
    with context.engine.connect() as connection:
        rows = connection.execute(missing).all()
    started = time.perf_counter()
    table = Base.metadata.tables["ticket"]
    update = table.update().where(table.c.id == sa.bindparam("tid"))
    for offset in range(0, len(rows), 2000):
        batch = [
            {"tid": tid, "text_vector": similar.vector(f"{subject}\n{body or ''}")}
            for tid, subject, body in rows[offset : offset + 2000]
        ]
        with context.engine.begin() as connection:
            connection.execute(update, batch)
    if rows:
        print(f"vectors for {len(rows)} tickets in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
