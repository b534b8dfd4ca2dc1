"""One pass of the service-level sweep, with 1,000 tickets near their due time among many.

Usage::

    python bench/sla_sweep.py                       # fresh SQLite file, 100,000 other tickets
    python bench/sla_sweep.py --database-url postgresql://postgres@127.0.0.1:5432/doxa_bench_sweep

The database is migrated and seeded with bulk Core inserts: `--others` tickets without a clock
(closed, no alarm), and 1,000 open tickets under a policy whose alarms come one a second from
now on (their warnings already given: each alarm is a breach). Then, in transactions timed
with their commit:

- `quiet`: a pass when nothing has come (what most passes are);
- `10 s of alarms`: passes as the Periodic job runs them, each 10 s later than the last, each
  firing the ~10 breaches that came meanwhile (20 passes);
- `burst`: a pass after all 1,000 have come at once (BATCH tickets a pass: a second pass
  takes the rest), the worst case after the service was down.

Every breach is checked to have been recorded once. PostgreSQL: the plan of the pass's read is
printed (an index scan on `sla_alarm_at`, never the table).
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa

from doxa.core.config import load_settings
from doxa.core.context import Context
from doxa.core.db import PostgreSQL, backend, transaction
from doxa.core.models import Base
from doxa.core.sla import sweep
from doxa.migrations import upgrade

NEAR = 1_000
BATCH = 5_000


def seed(context: Context, others: int, now: datetime) -> None:
    tables = Base.metadata.tables
    with context.engine.begin() as connection:
        connection.execute(
            tables["user"].insert(),
            [{"id": 1, "email": "ann@bench.example", "role": "CLIENT", "is_active": True}],
        )
        targets = {"normal": {"first_response": 60}}
        connection.execute(
            tables["sla_policy"].insert(), [{"id": 1, "name": "Bench", "targets": targets}]
        )
    rows = []
    for n in range(1, others + NEAR + 1):
        near = n > others
        due = now + timedelta(seconds=n - others) if near else None
        rows.append(
            {
                "id": n,
                "subject": f"Ticket {n}",
                "status": "open" if near else "closed",
                "priority": "normal",
                "channel": "email",
                "requester_id": 1,
                "classification_state": "done",
                "metadata": {},
                "search_text": "",
                "note_text": "",
                "sla_policy_id": 1 if near else None,
                "sla_state": "warning" if near else None,
                "first_response_due_at": due,
                "sla_due_at": due,
                "sla_alarm_at": due,
                "sla_warned": ["warning:first_response"] if near else [],
                "created_at": now - timedelta(hours=1),
                "updated_at": now - timedelta(hours=1),
            }
        )
        if len(rows) == BATCH:
            with context.engine.begin() as connection:
                connection.execute(tables["ticket"].insert(), rows)
            rows = []
    if rows:
        with context.engine.begin() as connection:
            connection.execute(tables["ticket"].insert(), rows)
    if isinstance(backend(context.engine), PostgreSQL):
        with context.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(
                sa.text("SELECT setval(pg_get_serial_sequence('ticket', 'id'), :n)"),
                {"n": others + NEAR},
            )
            c.execute(sa.text("VACUUM (ANALYZE) ticket"))


CPU: list[float] = []  # this process's CPU time of each timed pass (the machine is shared)


def timed_pass(context: Context, now: datetime) -> tuple[float, int]:
    started, cpu = time.perf_counter(), time.process_time()
    with transaction(context.sessions) as db:
        fired, _ = sweep.sweep(db, now=now)
    CPU.append((time.process_time() - cpu) * 1000)
    return (time.perf_counter() - started) * 1000, fired


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    return f"median {ordered[len(ordered) // 2]:.1f} ms, max {ordered[-1]:.1f} ms"


def explain(context: Context, now: datetime) -> None:
    if not isinstance(backend(context.engine), PostgreSQL):
        return
    with context.engine.connect() as connection:
        plan = connection.execute(
            sa.text(
                "EXPLAIN SELECT * FROM ticket WHERE sla_alarm_at <= :now "
                "ORDER BY sla_alarm_at LIMIT 500 FOR UPDATE SKIP LOCKED"
            ),
            {"now": now},
        ).scalars()
        print("plan of the read:\n  " + "\n  ".join(plan))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--database-url")
    parser.add_argument("--others", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="doxa-sweep-") as scratch:
        url = args.database_url or f"sqlite:///{scratch}/sweep.db"
        settings = load_settings(
            doxa_env="test",
            database_url=url,
            jwt_secret=secrets.token_urlsafe(48),
            smtp_enabled=False,
            _env_file=None,
        )
        upgrade(settings.database_url)
        context = Context.build(settings)
        try:
            now = datetime.now(UTC).replace(microsecond=0)
            started = time.perf_counter()
            seed(context, args.others, now)
            print(f"seeded {args.others + NEAR:,} tickets in {time.perf_counter() - started:.0f} s")
            explain(context, now)
            quiet = [timed_pass(context, now - timedelta(seconds=1))[0] for _ in range(20)]
            steady, fired = [], 0
            for step in range(1, 21):
                ms, count = timed_pass(context, now + timedelta(seconds=10 * step))
                steady.append(ms)
                fired += count
            burst = now + timedelta(seconds=NEAR + 1)
            first_ms, first = timed_pass(context, burst)
            second_ms, second = timed_pass(context, burst)
            with context.sessions() as db:
                events = db.scalar(
                    sa.text("SELECT count(*) FROM event WHERE type = 'sla.breached'")
                )
            assert events == NEAR == fired + first + second, (events, fired, first, second)
            name = context.engine.dialect.name
            print(f"{name}, {args.others + NEAR:,} tickets, {NEAR} near their due time:")
            print(f"  quiet pass (nothing come): {summary(quiet)}; CPU {summary(CPU[:20])}")
            print(f"  10 s of alarms: {summary(steady)} ({fired} breaches in 20 passes)")
            print(f"    CPU of this process: {summary(CPU[20:40])}")
            print(f"  burst: {first} breaches in {first_ms:.0f} ms, {second} in {second_ms:.0f} ms")
            print(f"    CPU of this process: {CPU[40]:.0f} ms, {CPU[41]:.0f} ms")
        finally:
            context.engine.dispose()


if __name__ == "__main__":
    main()
