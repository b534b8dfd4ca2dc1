"""`GET /events` pages at a million events: a client's page must cost what their own tickets'
events cost, never a walk of the whole feed (SPEC: a client sees the public events of their
own tickets).

Usage::

    python bench/events_feed.py    # PostgreSQL database doxa_bench_feed on the local server

The database is made afresh and seeded with bulk inserts: 1,000 clients, 100,000 tickets (two
of them the first client's, ~100 each for the others) and `--events` events (10 a ticket,
spread over many writing transactions). Then, through `core.events.views.page` as the route
calls it, p50/p99 of a first page (50 events) from the start and from the end of the feed, for
a client with 2 tickets, a client with ~100 and an agent; and the plan of the small client's
query (its tickets first, then their events by index: never the feed's order index).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from doxa.core.config import load_settings
from doxa.core.context import Context
from doxa.core.enums import Role
from doxa.core.events import feed, views
from doxa.core.events.models import Event
from doxa.core.users.models import User
from doxa.migrations import upgrade

USERS = """INSERT INTO "user" (email, full_name, role, is_active, token_version, available,
    notifications, created_at, updated_at)
SELECT 'client' || g || '@bench.example', 'Client', 'CLIENT', true, 0, true, '{}', now(), now()
FROM generate_series(1, 1000) AS g"""
# The first client owns tickets 1 and 2; the others ~100 each.
TICKETS = """INSERT INTO ticket (id, subject, status, priority, channel, requester_id, mailbox,
    cc, needs_triage, classification_state, ai_priority, classification_attempts, metadata,
    search_text, note_text, authenticated, event_sequence, staff_routed, sla_breached,
    sla_warned, created_at, updated_at)
SELECT g, 'Problem ' || g, 'new', 'normal', 'email', CASE WHEN g <= 2 THEN 1 ELSE 2 + g % 999 END,
    'support@bench.example', '[]', false, 'done', 'normal', 1, '{}', 'Problem', '', false, 10,
    false, '[]', '[]', now(), now()
FROM generate_series(1, :tickets) AS g"""
# Ten events a ticket, interleaved in the feed; 50 events a writing transaction.
EVENTS = """INSERT INTO event (type, ticket_id, sequence, actor_type, data, public, created_at,
    xact)
SELECT 'ticket.updated', 1 + g % :tickets, g / :tickets + 1, 'system', '{}', g % 7 <> 0, now(),
    1000 + g / 50
FROM generate_series(0, :events - 1) AS g"""


def seed(url: str, events: int) -> None:
    server = make_url(url)
    admin = sa.create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{server.database}" WITH (FORCE)'))
        connection.execute(sa.text(f'CREATE DATABASE "{server.database}"'))
    admin.dispose()
    upgrade(url)
    engine = sa.create_engine(url)
    tickets = events // 10
    with engine.begin() as connection:
        connection.execute(sa.text(USERS))
        connection.execute(sa.text(TICKETS), {"tickets": tickets})
        connection.execute(sa.text(EVENTS), {"tickets": tickets, "events": events})
        connection.execute(sa.text(f"SELECT setval('ticket_id_seq', {tickets})"))
        connection.execute(
            sa.text("""INSERT INTO "user" (email, full_name, role, is_active, token_version,
                available, notifications, created_at, updated_at)
                VALUES ('agent@bench.example', 'Agent', 'AGENT', true, 0, true, '{}', now(),
                now())""")
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text("ANALYZE"))
    engine.dispose()


def timed(
    context: Context, user_id: int, start: feed.Position, runs: int
) -> tuple[int, list[float]]:
    seconds = []
    count = 0
    with context.sessions() as db:
        user = db.get_one(User, user_id)
        for _ in range(runs):
            began = time.perf_counter()
            count = len(views.page(db, user, start, limit=50).items)
            seconds.append(time.perf_counter() - began)
    return count, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/doxa_bench_feed"
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    began = time.perf_counter()
    seed(args.database_url, args.events)
    print(f"seeded {args.events:,} events in {time.perf_counter() - began:.0f} s")
    settings = load_settings(
        database_url=args.database_url, jwt_secret="bench-" + "x" * 40, _env_file=None
    )
    context = Context.build(settings)
    with context.sessions() as db:
        end = feed.latest(db)
        agent = db.scalars(sa.select(User.id).where(User.role == Role.AGENT)).one()
    print(f"{'reader':<28} {'from':<6} {'events':>6} {'p50 ms':>7} {'p99 ms':>7}")
    for name, user_id in (("client with 2 tickets", 1), ("client with ~100 tickets", 2)):
        for where, start in (("start", feed.START), ("end", end)):
            count, seconds = timed(context, user_id, start, args.runs)
            p50 = statistics.median(seconds) * 1000
            p99 = statistics.quantiles(seconds, n=100)[98] * 1000
            print(f"{name:<28} {where:<6} {count:>6} {p50:>7.1f} {p99:>7.1f}")
    count, seconds = timed(context, agent, feed.START, args.runs)
    p50, p99 = statistics.median(seconds) * 1000, statistics.quantiles(seconds, n=100)[98] * 1000
    print(f"{'agent':<28} {'start':<6} {count:>6} {p50:>7.1f} {p99:>7.1f}")
    with context.sessions() as db:
        query = (
            sa.select(Event)
            .where(views.visible_to(db.get_one(User, 1)))
            .where(sa.tuple_(Event.xact, Event.id) > sa.tuple_(0, 0))
            .order_by(Event.xact, Event.id)
            .limit(50)
        )
        sql = str(
            query.compile(dialect=db.get_bind().dialect, compile_kwargs={"literal_binds": True})
        )
        print("plan of the small client's page:")
        for (line,) in db.execute(sa.text("EXPLAIN " + sql)):
            print("  " + line)
    context.close()


if __name__ == "__main__":
    main()
