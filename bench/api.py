"""Latency of the ticket API over HTTP, through the ASGI app, on a seeded database.

Usage::

    python bench/api.py                                   # 100,000 tickets, fresh SQLite file
    python bench/api.py --tickets 10000 --requests 200
    python bench/api.py --database-url postgresql://postgres@127.0.0.1:5432/doxa_bench_100k
    python bench/api.py --database-url sqlite:////tmp/bench.db --tickets 10000 --reuse

The database is migrated (`doxa.migrations.upgrade`) and seeded with bulk Core inserts:
clients and agents, then tickets with one to three messages each, their text drawn from word
lists with a fixed random seed (common filler, topic words, product names, rare tokens), and
`search_text` filled the way the service fills it. A PostgreSQL database that does not exist
is created, and VACUUM ANALYZE runs after seeding. `--reuse` skips seeding when the database already
holds at least N tickets; otherwise the database must hold no tickets.

Service levels (issue 21): after seeding, 5 % of the tickets are made open under an SLA policy
with a due time around now, 1 % of them breached, spread over three teams (`seed_sla`, one
UPDATE); the scenarios `sla_state=breached`, `sort=sla_due` and `team_id=…&sort=sla_due` read
their first pages. `--bulk` (PostgreSQL) seeds the tickets with `generate_series` in the
database, without messages (subjects only: a million in about a minute rather than an hour);
`--only-sla` runs only the service-level scenarios.

Each scenario sends a few warm-up requests, then R timed requests one after another with
`httpx.AsyncClient` over `httpx.ASGITransport`, as an AGENT (and, for one scenario, a
CLIENT), and fails unless every response is 200. It prints p50/p99 per scenario and writes
the same rows as JSON lines to bench/results/api-<backend>-<N>.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import re
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

# Run from a checkout without installing the package (`make bench` installs it anyway).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from doxa.core.config import Settings, load_settings
from doxa.core.context import Context
from doxa.core.db import FullText, PostgreSQL, SQLite, backend
from doxa.core.enums import Channel, ClassificationState, Direction, Priority, Role, Status
from doxa.core.models import Base
from doxa.core.tickets.query import parse, to_fts5, to_tsquery
from doxa.main import create_app
from doxa.migrations import upgrade

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 20261127
BATCH = 2_000
PAGE = 25
DEEP_PAGES = 500
WARMUP = 5
CLIENTS_PER_TICKET = 50  # one client per 50 tickets, at least 200
AGENTS = 12
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=700)

# --- word lists -------------------------------------------------------------------------------

_FILLER_TEXT = (
    "the i to a and my is it we not in for this of you on have can with that be please but "
    "when our at was are from an hi hello thanks thank any do get all just now still since "
    "again after yesterday today morning team customer support help issue problem working "
    "tried seems like there some need know could would should also time week last first new "
    "one two see attached screenshot below above same every each way sure let us what why how"
)
FILLER = _FILLER_TEXT.split()
TOPICS: dict[str, tuple[float, tuple[str, ...]]] = {
    "account": (18, ("login", "password", "reset", "locked", "account", "sign", "email", "2fa")),
    "billing": (16, ("invoice", "charge", "refund", "payment", "card", "billing", "receipt")),
    "bug": (20, ("error", "crash", "broken", "bug", "500", "exception", "page", "loading")),
    "feature_request": (10, ("feature", "request", "export", "csv", "dashboard", "report")),
    "technical": (22, ("sync", "timeout", "webhook", "slow", "upload", "attachment", "mobile")),
    "general": (14, ("question", "pricing", "plan", "upgrade", "seats", "trial", "contract")),
}
# Another language in about 4% of tickets, with its accents (searched with and without them).
FOREIGN = (
    *("facture", "remboursement", "réinitialiser", "connexion", "problème", "reçu", "délai"),
    *("compte", "Rückerstattung", "Passwort", "zurücksetzen", "Überweisung", "Konto"),
    *("Rechnung", "Kündigung", "contraseña", "reembolso", "facturación", "cuenta", "añadir"),
    *("configuración", "también"),
)
# Words agents write only in internal notes: a client's search must never find them.
NOTE_WORDS = ("chargebackrisk", "vipaccount", "legalhold", "fraudcheck", "refundapproved")
PRODUCTS = ("zapier", "quickbooks", "salesforce", "shopify", "slack", "jira", "hubspot", "xero")
OPENERS = (
    "Problem with",
    "Question about",
    "Urgent:",
    "Help with",
    "Issue:",
    "Cannot use",
    "Re:",
    "Need help -",
    "Fwd:",
    "About my",
)
STATUS_WEIGHTS = {
    Status.NEW: 10,
    Status.OPEN: 25,
    Status.PENDING: 15,
    Status.RESOLVED: 20,
    Status.CLOSED: 30,
}
PRIORITY_WEIGHTS = {Priority.LOW: 20, Priority.NORMAL: 55, Priority.HIGH: 20, Priority.URGENT: 5}
CHANNEL_WEIGHTS = {
    Channel.EMAIL: 55,
    Channel.FORM: 20,
    Channel.MAILGUN: 8,
    Channel.SENDGRID: 5,
    Channel.POSTMARK: 5,
    Channel.API: 7,
}


def rare_words(count: int = 3_000) -> list[str]:
    """Made-up tokens (part numbers, names); the k-th is drawn with weight 1/k."""
    rng = random.Random(SEED)
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    words = {"".join(rng.choices(syllables, k=3)) for _ in range(count * 2)}
    return sorted(words)[:count]


RARE = rare_words()


class Writer:
    """Subjects and bodies drawn from the word lists, reproducible from the seed."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.filler_weights = list(_zipf_cumulative(len(FILLER)))
        self.rare_weights = list(_zipf_cumulative(len(RARE)))
        self.topics = list(TOPICS)
        self.topic_weights = [weight for weight, _ in TOPICS.values()]

    def topic(self) -> str:
        return self.rng.choices(self.topics, weights=self.topic_weights)[0]

    def subject(self, topic: str) -> str:
        words = self.rng.sample(TOPICS[topic][1], k=self.rng.randint(1, 3))
        if self.rng.random() < 0.05:
            words.append(self.rng.choice(PRODUCTS))
        return f"{self.rng.choice(OPENERS)} {' '.join(words)}"

    def body(self, topic: str, *, requester: int, internal: bool = False) -> str:
        text = self._words(topic)
        extras = []
        if internal and self.rng.random() < 0.5:
            extras.append(self.rng.choice(NOTE_WORDS))
        if self.rng.random() < 0.04:
            extras.extend(self.rng.choices(FOREIGN, k=self.rng.randint(3, 8)))
        if self.rng.random() < 0.15:
            extras.append(f"Order ORD-{self.rng.randint(100_000, 999_999)}.")
        if not internal and self.rng.random() < 0.1:
            extras.append(f"Write to client{requester}@bench.example")
        return " ".join([text, *extras])

    def _words(self, topic: str) -> str:
        keywords = TOPICS[topic][1]
        words = self.rng.choices(
            FILLER, cum_weights=self.filler_weights, k=self.rng.randint(15, 110)
        )
        for index in range(0, len(words), 7):
            words[index] = self.rng.choice(keywords)
        if self.rng.random() < 0.08:
            words.append(self.rng.choice(PRODUCTS))
        if self.rng.random() < 0.3:
            rare = self.rng.choices(RARE, cum_weights=self.rare_weights)[0]
            words.insert(self.rng.randrange(len(words)), rare)
        return " ".join(words).capitalize() + "."


def _zipf_cumulative(count: int) -> Iterator[float]:
    total = 0.0
    for rank in range(1, count + 1):
        total += 1 / rank
        yield total


def _pick(rng: random.Random, weights: dict[Any, int]) -> Any:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


# --- seeding ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class People:
    clients: list[int]
    client_weights: list[float]
    agents: list[int]


def ensure_database(url: str) -> None:
    """Create a PostgreSQL database that does not exist yet (SQLite creates its own file)."""
    target = sa.make_url(url)
    if target.get_backend_name() != "postgresql":
        return
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.scalar(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": target.database}
        )
        if not exists:
            connection.execute(sa.text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


def seed_users(connection: sa.Connection, tickets: int) -> People:
    """A few agents and many clients; a few clients open many tickets (Zipf-like)."""
    clients = max(200, tickets // CLIENTS_PER_TICKET)
    roles = [Role.AGENT] * AGENTS + [Role.CLIENT] * clients
    rows = [
        {
            "id": i + 1,
            "email": f"{role.lower()}{i + 1}@bench.example",
            "full_name": f"User {i + 1}",
            "role": role.value,
            "password_hash": None,
            "is_active": True,
            "created_at": EPOCH,
            "updated_at": EPOCH,
        }
        for i, role in enumerate(roles)
    ]
    connection.execute(Base.metadata.tables["user"].insert(), rows)
    client_ids = list(range(AGENTS + 1, len(roles) + 1))
    return People(
        clients=client_ids,
        client_weights=[1 / (rank**0.7) for rank in range(1, len(client_ids) + 1)],
        agents=list(range(1, AGENTS + 1)),
    )


def ticket_rows(
    first_id: int, count: int, total: int, people: People, writer: Writer
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`count` tickets from `first_id`, each with one to three messages."""
    rng = writer.rng
    tickets: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    requesters = rng.choices(people.clients, weights=people.client_weights, k=count)
    for ticket_id, requester in zip(range(first_id, first_id + count), requesters, strict=True):
        created = EPOCH + SPAN * (ticket_id / total)
        topic = writer.topic()
        subject = writer.subject(topic)
        conversation = _messages(ticket_id, requester, created, topic, people, writer)
        public = [m["full_body"] for m in conversation if not m["internal"]]
        notes = [m["full_body"] for m in conversation if m["internal"]]
        tickets.append(
            _ticket(ticket_id, requester, created, topic, subject, people, rng)
            | {
                "search_text": "\n".join([subject, *public]),
                "note_text": "".join(f"\n{note}" for note in notes),
            }
        )
        messages.extend(conversation)
    return tickets, messages


def _ticket(
    ticket_id: int,
    requester: int,
    created: datetime,
    topic: str,
    subject: str,
    people: People,
    rng: random.Random,
) -> dict[str, Any]:
    status = _pick(rng, STATUS_WEIGHTS)
    return {
        "id": ticket_id,
        "subject": subject,
        "status": status.value,
        "priority": _pick(rng, PRIORITY_WEIGHTS).value,
        "category": topic if rng.random() < 0.8 else None,
        "channel": _pick(rng, CHANNEL_WEIGHTS).value,
        "requester_id": requester,
        "assignee_id": None if status is Status.NEW else rng.choice(people.agents),
        "mailbox": "support@bench.example",
        "pinned_category": None,
        "previous_ticket_id": None,
        "needs_triage": rng.random() < 0.1,
        "classification_state": ClassificationState.DONE.value,
        "ai_category": topic,
        "ai_priority": Priority.NORMAL.value,
        "ai_confidence": round(rng.random(), 3),
        "ai_priority_confidence": round(rng.random(), 3),
        "ai_model_version": "bench-1",
        "classification_attempts": 1,
        "metadata": {},
        "created_at": created,
        "updated_at": created,
    }


def _messages(
    ticket_id: int, requester: int, created: datetime, topic: str, people: People, writer: Writer
) -> list[dict[str, Any]]:
    rng = writer.rng
    rows = []
    for turn in range(rng.choice((1, 1, 2, 2, 2, 3))):
        inbound = turn % 2 == 0
        internal = not inbound and rng.random() < 0.2
        body = writer.body(topic, requester=requester, internal=internal)
        rows.append(
            {
                "ticket_id": ticket_id,
                "author_id": requester if inbound else rng.choice(people.agents),
                "direction": (Direction.IN if inbound else Direction.OUT).value,
                "internal": internal,
                "body": body,
                "full_body": body,
                "html": None,
                "message_id": f"<{ticket_id}.{turn}@bench.example>",
                "in_reply_to": None,
                "threaded_by": None,
                "delivery_state": None,
                "delivery_error": None,
                "notes": [],
                "intake_event_id": None,
                "created_at": created + timedelta(hours=turn * 3),
            }
        )
    return rows


def seed(engine: sa.Engine, total: int) -> None:
    """Users, then tickets and messages in batches of BATCH, each batch one transaction."""
    writer = Writer(random.Random(SEED))
    ticket_table = Base.metadata.tables["ticket"]
    message_table = Base.metadata.tables["message"]
    with engine.begin() as connection:
        people = seed_users(connection, total)
    started = time.perf_counter()
    for first_id in range(1, total + 1, BATCH):
        tickets, messages = ticket_rows(
            first_id, min(BATCH, total - first_id + 1), total, people, writer
        )
        with engine.begin() as connection:
            connection.execute(ticket_table.insert(), tickets)
            connection.execute(message_table.insert(), messages)
        done = first_id + len(tickets) - 1
        print(
            f"\rseeded {done:,}/{total:,} tickets ({time.perf_counter() - started:.0f} s)",
            end="",
            file=sys.stderr,
            flush=True,
        )
    print(file=sys.stderr)
    _after_seeding(engine)


def _after_seeding(engine: sa.Engine) -> None:
    """PostgreSQL: move the id sequences past the explicit ids, then VACUUM ANALYZE (the
    steady state autovacuum keeps: visibility map set, the GIN index's pending list merged)."""
    if not isinstance(backend(engine), PostgreSQL):
        return
    with engine.begin() as connection:
        for name in ("user", "ticket", "message"):
            table = Base.metadata.tables[name]
            sequence = sa.func.pg_get_serial_sequence(f'"{name}"', "id")
            last = sa.select(sa.func.max(table.c.id)).scalar_subquery()
            connection.execute(sa.select(sa.func.setval(sequence, last)))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text("VACUUM (ANALYZE) ticket"))
        connection.execute(sa.text("ANALYZE"))


def seed_bulk(engine: sa.Engine, total: int) -> None:
    """PostgreSQL: users as `seed`, then every ticket in one INSERT … SELECT over
    generate_series (no messages; the subject is the searchable text)."""
    if not isinstance(backend(engine), PostgreSQL):
        raise SystemExit("--bulk seeds PostgreSQL only")
    with engine.begin() as connection:
        people = seed_users(connection, total)
        seed_teams(connection)
        words = sorted({word for _, each in TOPICS.values() for word in each})
        connection.execute(
            sa.text(BULK_TICKETS.replace("TEAM_OF_G", TEAM.replace("id", "g"))),
            {
                "total": total,
                "clients": len(people.clients),
                "first_client": people.clients[0],
                "agents": AGENTS,
                "epoch": EPOCH,
                "span": SPAN.total_seconds(),
                "words": words,
            },
        )
    _after_seeding(engine)


BULK_TICKETS = """
INSERT INTO ticket (id, subject, status, priority, category, channel, requester_id, assignee_id,
    mailbox, cc, needs_triage, classification_state, ai_category, ai_priority, ai_confidence,
    ai_priority_confidence, ai_model_version, classification_attempts, metadata, search_text,
    note_text, authenticated, event_sequence, staff_routed, sla_breached, sla_warned, team_id,
    created_at, updated_at)
SELECT g, 'Problem with ' || w, (ARRAY['new','open','pending','resolved','closed'])[1 + g % 5],
    (ARRAY['low','normal','normal','high','urgent'])[1 + g % 5], NULL, 'email',
    :first_client + (g::bigint * 7919) % :clients, 1 + g % :agents, 'support@bench.example',
    '[]', false, 'done', NULL, 'normal', 0.5, 0.5, 'bench-1', 1, '{}', 'Problem with ' || w,
    '', false, 0, false, '[]', '[]', TEAM_OF_G, t, t
FROM generate_series(1, CAST(:total AS int)) AS g,
    LATERAL (SELECT (CAST(:words AS text[]))[1 + (g * 31) % cardinality(CAST(:words AS text[]))]
            || ' ' || g AS w,
                    CAST(:epoch AS timestamptz)
            + make_interval(secs => CAST(:span AS float8) * g / CAST(:total AS int)) AS t) AS x
"""


# A ticket's team: none for a quarter of them (id % 4 = 0) but those under an SLA
# (id % 20 = 0), which the three teams share.
TEAM = (
    "(CASE WHEN id % 20 = 0 THEN 1 + (id / 20) % 3 WHEN id % 4 = 0 THEN NULL ELSE 1 + id % 3 END)"
)

TEAM_UPDATE = f"UPDATE ticket SET team_id = {TEAM} WHERE team_id IS NULL AND {TEAM} IS NOT NULL"  # noqa: S608


def seed_teams(connection: sa.Connection) -> None:
    """Three teams, which hold three quarters of the tickets (`seed_sla`, or `seed_bulk`'s
    INSERT)."""
    team = Base.metadata.tables["team"]
    if connection.scalar(sa.select(sa.func.count()).select_from(team)):
        return
    rows = [{"id": n, "name": f"Team {n}", "assignment": "manual"} for n in range(1, 4)]
    connection.execute(team.insert(), rows)


def seed_sla(engine: sa.Engine) -> None:
    """Three teams hold three quarters of the tickets; 5 % are open under a policy with a
    first response due within ten days of now, 1 % of all breached (due in the last day)."""
    tables = Base.metadata.tables
    now = datetime.now(UTC)
    with engine.begin() as connection:
        seed_teams(connection)
        connection.execute(
            tables["sla_policy"].insert(),
            [{"id": 1, "name": "Bench", "targets": {"normal": {"first_response": 240}}}],
        )
        connection.execute(sa.text(TEAM_UPDATE))
        kind = type(backend(engine))
        moment = now.isoformat() if kind is PostgreSQL else now.strftime("%Y-%m-%d %H:%M:%S.%f")
        connection.execute(sa.text(SLA_UPDATE[kind]), {"now": moment})
    if isinstance(backend(engine), PostgreSQL):
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(sa.text("VACUUM (ANALYZE) ticket"))


# Due: breached ones up to a day ago, the others up to ten days ahead (minutes from `now`).
_BREACHED = """CASE WHEN id % 100 = 0 THEN '["first_response"]' ELSE '[]' END"""
_DUE_MINUTES = "(CASE WHEN id % 100 = 0 THEN -(id % 1440) ELSE ((id % 14400) * 7919) % 14400 END)"
_DUE = {
    PostgreSQL: f"(CAST(:now AS timestamptz) + make_interval(mins => {_DUE_MINUTES}))",
    SQLite: f"strftime('%Y-%m-%d %H:%M:%f', :now, {_DUE_MINUTES} || ' minutes')",
}
_JSON = {PostgreSQL: "CAST({} AS json)", SQLite: "{}"}
# Built from the constants above only (no input): S608 does not apply.
SLA_UPDATE = {
    kind: "UPDATE ticket SET status = 'open', sla_policy_id = 1, "  # noqa: S608
    "sla_state = CASE WHEN id % 100 = 0 THEN 'breached' ELSE 'ok' END, "
    f"sla_breached = {_JSON[kind].format(_BREACHED)}, "
    f"sla_due_at = {due}, first_response_due_at = {due}, "
    f"sla_alarm_at = CASE WHEN id % 100 = 0 THEN NULL ELSE {due} END WHERE id % 20 = 0"
    for kind, due in _DUE.items()
}


def prepare(context: Context, tickets: int, *, reuse: bool, bulk: bool = False) -> int:
    """Migrate and seed unless reusing; the number of tickets the database then holds."""
    with context.engine.connect() as connection:
        existing = connection.scalar(sa.text("SELECT count(*) FROM ticket")) or 0
    if reuse and existing >= tickets:
        print(f"reusing {existing:,} tickets", file=sys.stderr)
        with context.engine.connect() as connection:
            policies = connection.scalar(sa.text("SELECT count(*) FROM sla_policy"))
        if not policies:
            seed_sla(context.engine)
        return int(existing)
    if existing:
        raise SystemExit(f"the database already holds {existing:,} tickets: use a fresh one")
    started = time.perf_counter()
    (seed_bulk if bulk else seed)(context.engine, tickets)
    seed_sla(context.engine)
    print(f"seeding took {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return tickets


# --- measuring --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    backend: str
    tickets: int
    scenario: str
    requests: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def percentile(samples: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


@dataclass
class Bench:
    http: httpx.AsyncClient
    context: Context
    backend: str
    tickets: int
    requests: int
    rows: list[Row]

    async def get(self, url: str, token: str) -> Any:
        response = await self.http.get(url, headers={"Authorization": f"Bearer {token}"})
        if response.status_code != 200:
            raise SystemExit(f"GET {url}: {response.status_code} {response.text[:300]}")
        return response.json()

    async def measure(self, scenario: str, urls: Callable[[int], str], token: str) -> list[float]:
        """Warm up, then time `requests` sequential GETs of urls(0), urls(1), ..."""
        for index in range(WARMUP):
            await self.get(urls(index), token)
        samples = []
        for index in range(self.requests):
            started = time.perf_counter()
            await self.get(urls(index), token)
            samples.append((time.perf_counter() - started) * 1000)
        self.record(scenario, samples)
        return samples

    def record(self, scenario: str, samples: list[float]) -> None:
        self.rows.append(
            Row(
                self.backend,
                self.tickets,
                scenario,
                len(samples),
                round(percentile(samples, 50), 2),
                round(percentile(samples, 99), 2),
                round(max(samples), 2),
            )
        )


def search_queries(context: Context) -> list[str]:
    """What agents type: common words, a prefix, two words (one pair that seldom meets),
    product names, a rare token, a miss, an order number, an address, phrases (one in both
    orders, one that never occurs, and `"ord order"`: both words in every ticket that names an
    order, never in that order), words of another language (typed with and without accents)
    and a word only internal notes hold."""
    with context.engine.connect() as connection:
        body = connection.scalar(
            sa.text(
                "SELECT body FROM message WHERE body LIKE '%ORD-%' AND ticket_id > :middle "
                "ORDER BY ticket_id LIMIT 1"
            ),
            {"middle": context_tickets(connection) // 2},
        )
        order = re.search(r"ORD-\d+", str(body))
        address = connection.scalar(
            sa.text(
                "SELECT email FROM \"user\" WHERE role = 'CLIENT' ORDER BY id LIMIT 1 OFFSET 40"
            )
        )
    return [
        "password",
        "refund",
        "error",
        "help",
        "reset password",
        "inv",
        "zapier",
        "quickbooks sync",
        "refund crash",
        RARE[100],
        "xylophone",
        order.group() if order else "ORD-000000",
        str(address),
        '"reset password"',
        '"password reset"',
        '"invoice doubled"',
        '"ord order"',
        "réinitialiser",
        "ruckerstattung",
        "vipaccount",
    ]


def client_queries(queries: list[str]) -> list[str]:
    """A client searching their own tickets; the note-only word must find nothing."""
    return [
        "password",
        "invoice",
        "refund crash",
        "xylophone",
        "vipaccount",
        queries[11],
        '"ord order"',
    ]


def context_tickets(connection: sa.Connection) -> int:
    return int(connection.scalar(sa.text("SELECT max(id) FROM ticket")) or 0)


def q_url(query: str, **params: object) -> str:
    return f"/api/v1/tickets?{urlencode({'limit': PAGE, 'q': query, **params})}"


async def deep_cursor(bench: Bench, token: str) -> tuple[int, str]:
    """The cursor of page DEEP_PAGES (or of the last page, for fewer tickets)."""
    url = f"/api/v1/tickets?limit={PAGE}"
    page, cursor = 1, ""
    while page < DEEP_PAGES:
        next_cursor = (await bench.get(url + cursor, token))["next_cursor"]
        if next_cursor is None:
            break
        page, cursor = page + 1, f"&cursor={next_cursor}"
    return page, url + cursor


async def measure_queries(bench: Bench, scenario: str, queries: list[str], token: str) -> None:
    samples = await bench.measure(scenario, lambda i: q_url(queries[i % len(queries)]), token)
    for offset, query in enumerate(queries):
        kind = " (prefix)" if (terms := parse(query)) and terms[-1].prefix else ""
        bench.record(f"  q={query}{kind}", samples[offset :: len(queries)])


async def search_cursor(bench: Bench, query: str, token: str, pages: int = 20) -> str:
    """The cursor of page `pages` of a search."""
    cursor = ""
    for _ in range(pages - 1):
        params = {"cursor": cursor} if cursor else {}
        cursor = (await bench.get(q_url(query, **params), token))["next_cursor"]
    return cursor


async def sla_scenarios(bench: Bench, agent: str) -> None:
    """What breaches next: breached tickets, the soonest due, a team's soonest due. Each first
    page is checked against the database (the team's too: the filter must be applied)."""
    base = f"/api/v1/tickets?limit={PAGE}"
    await bench.measure("sla_state=breached", lambda _: base + "&sla_state=breached", agent)
    await bench.measure("sort=sla_due", lambda _: base + "&sort=sla_due", agent)
    team = f"{base}&team_id=2&sort=sla_due"
    page = await bench.get(team, agent)
    ticket = Base.metadata.tables["ticket"]
    with bench.context.sessions() as db:
        expected = list(
            db.scalars(
                sa.select(ticket.c.id)
                .where(ticket.c.team_id == 2, ticket.c.sla_due_at.is_not(None))
                .order_by(ticket.c.sla_due_at, ticket.c.id)
                .limit(PAGE)
            )
        )
    if [item["id"] for item in page["items"]] != expected:
        print(
            "team_id is not a filter of GET /tickets here: team scenario skipped", file=sys.stderr
        )
        return
    await bench.measure("team_id=2&sort=sla_due", lambda _: team, agent)


async def run_scenarios(bench: Bench, agent: str, client: str) -> None:
    await sla_scenarios(bench, agent)
    base = f"/api/v1/tickets?limit={PAGE}"
    await bench.measure("first page", lambda _: base, agent)
    page, deep_url = await deep_cursor(bench, agent)
    await bench.measure(f"page {page}", lambda _: deep_url, agent)
    await bench.measure("filtered page", lambda _: base + "&status=open&priority=high", agent)
    queries = search_queries(bench.context)
    await measure_queries(bench, "q search (mix)", queries, agent)
    mine = client_queries(queries)
    await measure_queries(bench, "client q search (mix)", mine, client)
    for query in ("vipaccount", "chargebackrisk"):
        if (await bench.get(q_url(query), client))["items"]:
            raise SystemExit(f"a client found a ticket by the note-only word {query!r}")
    client_id = actors(bench.context)[1]
    compared = await verify_first_pages(bench, queries, agent, None)
    compared += await verify_first_pages(bench, mine, client, client_id)
    print(f"first pages of {compared} searches equal to a plain scan's", file=sys.stderr)
    cursor = await search_cursor(bench, "help", agent)
    await bench.measure("q=help page 20", lambda _: q_url("help", cursor=cursor), agent)
    rng = random.Random(SEED)
    ids = [rng.randint(1, bench.tickets) for _ in range(bench.requests + WARMUP)]
    await bench.measure("get", lambda i: f"/api/v1/tickets/{ids[i]}", agent)
    await bench.measure("client first page", lambda _: base, client)


# --- wiring -----------------------------------------------------------------------------------


def build_settings(url: str) -> Settings:
    # No intake worker processes: no mail arrives here, and their start (each imports the
    # whole service) took the CPU from the first scenario (first page p99 30 ms, 7 without).
    return load_settings(
        doxa_env="test",
        database_url=url,
        jwt_secret=secrets.token_urlsafe(48),
        smtp_enabled=False,
        parser_processes=0,
        _env_file=None,
    )


def actors(context: Context) -> tuple[int, int]:
    """An agent's id, and the id of the client with the most tickets."""
    with context.engine.connect() as connection:
        agent = connection.scalar(sa.text("SELECT min(id) FROM \"user\" WHERE role = 'AGENT'"))
        busiest = "SELECT requester_id FROM ticket GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
        client = connection.scalar(sa.text(busiest))
    assert agent is not None and client is not None
    return int(agent), int(client)


def tokens_for(context: Context) -> tuple[str, str]:
    """An agent's token, and the token of the client with the most tickets."""
    agent, client = actors(context)
    return context.tokens.issue(agent), context.tokens.issue(client)


async def verify_first_pages(
    bench: Bench, queries: list[str], token: str, client: int | None
) -> int:
    """Each query's first page through the API against a plain scan of the stored texts (no
    index, no plan of the search's own): the faster plans must not change the answer. Raises on
    the first difference; returns the number of queries compared."""
    ticket = Base.metadata.tables["ticket"]
    for query in queries:
        got = [item["id"] for item in (await bench.get(q_url(query), token))["items"]]
        with bench.context.sessions() as db:
            if isinstance(backend(db), PostgreSQL):
                db.execute(sa.text("SET LOCAL enable_indexscan = off"))
                db.execute(sa.text("SET LOCAL enable_bitmapscan = off"))
            plain = sa.select(ticket.c.id).where(plain_match(db, query, staff=client is None))
            if client is not None:
                plain = plain.where(ticket.c.requester_id == client)
            expected = list(db.scalars(plain.order_by(ticket.c.id.desc()).limit(PAGE)))
        if got != expected:
            raise SystemExit(
                f"q={query!r}: the API answered {got[:5]}..., a scan {expected[:5]}..."
            )
    return len(queries)


def plain_match(db: Session, q: str, *, staff: bool) -> sa.ColumnElement[bool]:
    """`q` as a plain WHERE condition on ticket (no plan of the search's own), e.g. to count
    matches: the stored vector (PostgreSQL) or the FTS5 table (SQLite) against the query."""
    ticket = Base.metadata.tables["ticket"]
    terms = parse(q)
    if not terms:
        return ticket.c.id.is_(None)
    if backend(db).full_text is FullText.TSVECTOR:
        config: sa.ColumnElement[str] = sa.literal_column("'doxa_search'::regconfig")
        tsquery = sa.func.to_tsquery(config, to_tsquery(terms, staff=staff))
        return sa.literal_column("ticket.search_vector").bool_op("@@")(tsquery)
    fts: sa.ColumnElement[str] = sa.literal_column("ticket_fts")
    rowid: sa.ColumnElement[int] = sa.literal_column("rowid")
    matches = sa.select(rowid).select_from(sa.table("ticket_fts"))
    return ticket.c.id.in_(matches.where(fts.bool_op("MATCH")(to_fts5(terms, staff=staff))))


def match_counts(context: Context, queries: list[str]) -> dict[str, int]:
    """How many tickets each query matches for staff, with the service's plain condition."""
    ticket = Base.metadata.tables["ticket"]
    counts = {}
    with context.sessions() as db:
        for query in queries:
            condition = plain_match(db, query, staff=True)
            counts[query] = (
                db.scalar(sa.select(sa.func.count()).select_from(ticket).where(condition)) or 0
            )
    return counts


async def bench_app(
    context: Context, tickets: int, requests: int, *, only_sla: bool = False
) -> list[Row]:
    app = create_app(context.settings, context=context)
    agent, client = tokens_for(context)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
        bench = Bench(http, context, context.engine.dialect.name, tickets, requests, [])
        if only_sla:  # with the plain first page as the control, measured alongside
            await bench.measure("first page", lambda _: f"/api/v1/tickets?limit={PAGE}", agent)
            await sla_scenarios(bench, agent)
        else:
            await run_scenarios(bench, agent, client)
    return bench.rows


def report(rows: list[Row], counts: dict[str, int]) -> None:
    table = Table(title="DOXA API latency (sequential requests through the ASGI app)")
    for column in ("backend", "tickets", "scenario", "requests", "p50 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="left" if column == "scenario" else "right", no_wrap=True)
    for row in rows:
        table.add_row(
            row.backend,
            f"{row.tickets:,}",
            row.scenario,
            str(row.requests),
            f"{row.p50_ms:.2f}",
            f"{row.p99_ms:.2f}",
            f"{row.max_ms:.2f}",
        )
    console = Console()
    console.print(table)
    console.print("tickets matching each q: " + ", ".join(f"{q}={n:,}" for q, n in counts.items()))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"api-{rows[0].backend}-{rows[0].tickets}.jsonl"
    path.write_text("".join(json.dumps(asdict(row)) + "\n" for row in rows))
    console.print(f"wrote {path}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--database-url", help="default: a fresh SQLite file in a temp dir")
    parser.add_argument("--tickets", type=int, default=100_000, help="N (default 100,000)")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per scenario")
    parser.add_argument("--reuse", action="store_true", help="skip seeding if >= N tickets exist")
    parser.add_argument("--seed-only", action="store_true", help="seed, then stop")
    parser.add_argument("--bulk", action="store_true", help="PostgreSQL: generate_series seeding")
    parser.add_argument("--only-sla", action="store_true", help="the service-level scenarios only")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="doxa-bench-") as scratch:
        url = args.database_url or f"sqlite:///{scratch}/bench.db"
        settings = build_settings(url)
        ensure_database(settings.database_url)
        upgrade(settings.database_url)
        context = Context.build(settings)
        try:
            tickets = prepare(context, args.tickets, reuse=args.reuse, bulk=args.bulk)
            if args.seed_only:
                return
            rows = asyncio.run(bench_app(context, tickets, args.requests, only_sla=args.only_sla))
            counts = {} if args.only_sla else match_counts(context, search_queries(context))
            report(rows, counts)
        finally:
            context.engine.dispose()


if __name__ == "__main__":
    main()
