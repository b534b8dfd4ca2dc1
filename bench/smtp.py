"""SMTP intake under load: the running service next to a bare "store the bytes" aiosmtpd server.

Usage::

    python bench/smtp.py                                  # fresh SQLite file, 8 clients, 400 mails
    python bench/smtp.py --database-url postgresql://postgres@127.0.0.1:5432/doxa_bench_smtp
    python bench/smtp.py --clients 8 --messages 400 --attachment-every 5 --big
    python bench/smtp.py --mix small --database-url postgresql://...  # 1-4 KB, 1 in 10 +32 KB
    python bench/smtp.py --mix small --duration 60      # a sustained flood, stored/classified per s

One run, in this order:

1. Generates M messages with the `email` package, a distinct sender and a unique Message-ID
   each: the current mix (plain text, multipart/alternative with HTML, every Nth with a
   50 KB-2 MB random attachment) or, with `--mix small`, plain text bodies of 1-4 KB, one in ten
   with a 32 KB attachment. A PostgreSQL database given by URL is dropped and created afresh.
2. Bare baseline: `python bench/smtp.py --bare-server` in a subprocess, an aiosmtpd server whose
   DATA hook only INSERTs the raw bytes into a one-blob table and COMMITs (psycopg on
   PostgreSQL; sqlite3 in WAL mode with synchronous=FULL on SQLite), then answers 250.
3. DOXA: `doxa serve` in a subprocess (DOXA_ENV=dev, free ports, a large SENDER_HOURLY_LIMIT,
   an admin from DOXA_ADMIN_EMAIL/PASSWORD) and a small warm-up batch so the ticket list is
   not empty. A probe subprocess (its own GIL) times `GET /api/v1/tickets?limit=25` back to
   back: 5 s idle, then while the same M messages are sent, then while they are processed;
   `GET /api/v1/intake?status=received` is polled until every accepted message is processed,
   and tickets and intake outcomes are counted in the database.
4. `--big`: one message just under 25 MiB (MAX_MESSAGE_BYTES) and the serve process's peak RSS
   (VmHWM) before and after it.

Both servers get N `smtplib` clients, one thread and one connection each. Latency is "end of
DATA to reply": from the moment the last body bytes and the final "." were written to the
socket to the moment the reply was read (a `smtplib.SMTP` subclass notes both); the whole
`smtp.data()` call, including the transfer of the body, is reported too, and the p99 of the
messages without attachments. Rate is messages over the wall time of the sending phase (MAIL,
RCPT and DATA for every message). The table is printed and the run appended as one JSON line
to bench/results/smtp-<backend>.jsonl.
`--serve-command "..."` runs another command instead of `doxa serve` (a patched launcher, to
test a fix without editing the service).

`--duration SECONDS` replaces steps 2-4 by a sustained flood: the warm-up's tickets are
classified first (a fresh install trains its first model at start), then the bare server and
DOXA each take the N clients' mail for that long, the M messages sent in turn, each as a new
message (its Message-ID and sender made unique). While DOXA is flooded, and after until every
accepted message is a classified ticket, the database is sampled every second
(bench/lib/endtoend.py): tickets stored and classified per second over the flood and its second
half, the backlog at its end, when all were stored and classified, and the accepted messages
over the whole way through, beside both servers' accept rates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import secrets
import shlex
import smtplib
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formataddr, formatdate, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Run from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import psycopg
import sqlalchemy as sa
from lib.endtoend import Progress, wait_settled
from rich.console import Console
from rich.table import Table

from doxa.core.config import Settings

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

RESULTS = Path(__file__).resolve().parent / "results"
SUPPORT = "support@example.com"
ADMIN_EMAIL = "bench-admin@example.com"
MAX_MESSAGE_BYTES = 26_214_400
BIG_TARGET = MAX_MESSAGE_BYTES - 16 * 1024  # just under the limit, headers included
BARE_TABLE = "bench_bare_raw"
SEED = 20261127
WARMUP_MESSAGES = 40
IDLE_SECONDS = 5.0  # the API probe's idle window, before the load
PROBE_PAUSE = 0.01  # seconds between API probe requests
TICKETS_URL = "/api/v1/tickets?limit=25"
SMALL_MESSAGE = 40_000  # bytes; generated messages without an attachment are smaller
SMALL_BODY = (1024, 4096)  # the small mix: body bytes, uniform
SMALL_ATTACHMENT = 32 * 1024  # the small mix: one message in ten carries this many bytes
SETTLE_TIMEOUT = 300.0  # seconds for the warm-up's tickets to be classified
# A generated message's Message-ID, its header folded or not.
MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)

_FIRST = "anna ben chloe david emma felix grace hugo iris jonas kira liam mia noah olga paul"
_LAST = "meyer smith garcia novak rossi tanaka dubois silva kowalski jensen okafor"
FIRST, LAST = _FIRST.split(), _LAST.split()
DOMAINS = ["example.org", "customer.example", "mail.example.net", "acme.example", "corp.example"]
TOPICS = [
    "Cannot log in after the password reset",
    "Invoice charged twice this month",
    "Export to CSV crashes with error 500",
    "Question about the enterprise plan",
    "Printer driver does not install on Windows 11",
    "Sync stuck at 99% since yesterday",
    "Refund for the cancelled order",
    "Grüße aus München: Rechnung fehlt",
    "Two-factor codes never arrive",
    "Feature request: dark mode for the dashboard",
]
_WORDS = (
    "hello team we have a problem with the account since this morning and nothing seems to "
    "work the page shows an error when I try to open the report please help us quickly because "
    "our customers are waiting I attached a screenshot and the log file thanks in advance the "
    "invoice number is on the attached pdf naïve café déjà vu über straße"
)
WORDS = _WORDS.split()
ATTACHMENT_KINDS = [
    ("application", "pdf", "invoice.pdf"),
    ("image", "png", "screenshot.png"),
    ("application", "zip", "logs.zip"),
    ("text", "csv", "export.csv"),
]


# --- messages ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outgoing:
    sender: str
    raw: bytes


def paragraphs(rng: random.Random, count: int) -> list[str]:
    return [
        " ".join(rng.choices(WORDS, k=rng.randint(20, 80))).capitalize() + "." for _ in range(count)
    ]


def attachment_size(rng: random.Random) -> int:
    """50 KB to 2 MB, log-uniform: most attachments are small, a few are large."""
    return int(math.exp(rng.uniform(math.log(50_000), math.log(2_000_000))))


def _addressed(rng: random.Random, index: int, kind: str) -> tuple[str, str, EmailMessage]:
    """A customer's first name, address, and a message from them with its headers set."""
    first, last, domain = rng.choice(FIRST), rng.choice(LAST), rng.choice(DOMAINS)
    sender = f"{first}.{last}.{index}@{domain}"
    msg = EmailMessage()
    msg["From"] = formataddr((f"{first.title()} {last.title()}", sender))
    msg["To"] = SUPPORT
    msg["Subject"] = f"{rng.choice(TOPICS)} (case {index})"
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(idstring=f"{kind}{index}", domain=domain)
    return first, sender, msg


def build_message(rng: random.Random, index: int, *, attach: bool) -> Outgoing:
    first, sender, msg = _addressed(rng, index, "bench")
    text = paragraphs(rng, rng.randint(1, 6))
    msg.set_content("Hi,\n\n" + "\n\n".join(text) + f"\n\n-- \n{first.title()}\n")
    if index % 3:
        html = "".join(f"<p>{p}</p>" for p in text)
        msg.add_alternative(f"<html><body><p>Hi,</p>{html}</body></html>", subtype="html")
    if attach:
        maintype, subtype, filename = rng.choice(ATTACHMENT_KINDS)
        msg.add_attachment(
            rng.randbytes(attachment_size(rng)),
            maintype=maintype,
            subtype=subtype,
            filename=filename,
        )
    return Outgoing(sender, msg.as_bytes(policy=SMTP_POLICY))


def build_messages(count: int, attachment_every: int, *, seed: int) -> list[Outgoing]:
    rng = random.Random(seed)
    every = attachment_every or count + 1
    return [build_message(rng, i, attach=i % every == every - 1) for i in range(count)]


def build_small_message(rng: random.Random, index: int, *, attach: bool) -> Outgoing:
    """The small mix: a plain-text body of 1-4 KB, and a 32 KB attachment when `attach`."""
    first, sender, msg = _addressed(rng, index, "small")
    size, text = rng.randint(SMALL_BODY[0], SMALL_BODY[1]), "Hi,\n\n"
    while len(text.encode()) < size:
        text += paragraphs(rng, 1)[0] + "\n\n"
    msg.set_content(text.encode()[:size].decode(errors="ignore") + f"\n-- \n{first.title()}\n")
    if attach:
        maintype, subtype, filename = rng.choice(ATTACHMENT_KINDS)
        msg.add_attachment(
            rng.randbytes(SMALL_ATTACHMENT), maintype=maintype, subtype=subtype, filename=filename
        )
    return Outgoing(sender, msg.as_bytes(policy=SMTP_POLICY))


def renumbered(item: Outgoing, number: int) -> Outgoing:
    """`item` as a new message: Message-ID and sender made unique by `number` (a new ticket,
    and no sender's rate limit or duplicate check met)."""
    found = MESSAGE_ID.search(item.raw)
    assert found, "generated messages carry a Message-ID"
    old_id = found.group(1)
    raw = item.raw.replace(old_id, b"<f" + str(number).encode() + b"." + old_id[1:], 1)
    sender = f"f{number}.{item.sender}"
    return Outgoing(sender, raw.replace(item.sender.encode(), sender.encode(), 1))


@dataclass(frozen=True)
class Flood:
    """One client's messages for `seconds` from the first one taken: `templates` in turn from
    `first`, every `step`-th, each renumbered as a new message."""

    templates: list[Outgoing]
    first: int
    step: int
    seconds: float

    def __iter__(self) -> Iterator[Outgoing]:
        ends, number = time.monotonic() + self.seconds, self.first
        while time.monotonic() < ends:
            yield renumbered(self.templates[number % len(self.templates)], number)
            number += self.step


def build_mix(mix: str, count: int, attachment_every: int, *, seed: int) -> list[Outgoing]:
    """The messages of one mix: `current` (see build_message) or `small`."""
    if mix == "current":
        return build_messages(count, attachment_every, seed=seed)
    rng = random.Random(seed)
    return [build_small_message(rng, i, attach=i % 10 == 9) for i in range(count)]


def big_message(rng: random.Random) -> Outgoing:
    """One message just under MAX_MESSAGE_BYTES, nearly all of it a base64 attachment."""
    payload = (BIG_TARGET - 4096) * 57 // 78  # base64: 57 bytes per 76-character line + CRLF
    while True:
        msg = EmailMessage()
        msg["From"], msg["To"] = "Big Sender <big.sender@example.org>", SUPPORT
        msg["Subject"], msg["Date"] = "Full disk image attached", formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(idstring="bench-big", domain="example.org")
        msg.set_content("The image of the failing disk is attached.\n")
        msg.add_attachment(
            rng.randbytes(payload),
            maintype="application",
            subtype="octet-stream",
            filename="disk.img",
        )
        raw = msg.as_bytes(policy=SMTP_POLICY)
        if len(raw) <= BIG_TARGET:
            return Outgoing("big.sender@example.org", raw)
        payload -= (len(raw) - BIG_TARGET) * 3 // 4 + 1024


# --- SMTP clients -----------------------------------------------------------------------------


class TimedSMTP(smtplib.SMTP):
    """Notes when the last bytes were written and when the last reply was read."""

    sent_at = 0.0
    replied_at = 0.0

    def send(self, s: ReadableBuffer | str) -> None:
        super().send(s)
        self.sent_at = time.monotonic()

    def getreply(self) -> tuple[int, bytes]:
        reply = super().getreply()
        self.replied_at = time.monotonic()
        return reply


@dataclass
class SendResult:
    reply_ms: list[float] = field(default_factory=list)  # end of DATA to the reply
    data_ms: list[float] = field(default_factory=list)  # the whole smtp.data() call
    refused: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    started: float = 0.0
    accepted_at: list[float] = field(default_factory=list)
    small_reply_ms: list[float] = field(default_factory=list)  # messages without attachments


def send_one(smtp: TimedSMTP, item: Outgoing, result: SendResult) -> None:
    try:
        smtp.mail(item.sender)
        smtp.rcpt(SUPPORT)
        started = time.monotonic()
        smtp.data(item.raw)
    except smtplib.SMTPResponseException as exc:
        result.refused.append(f"{exc.smtp_code} {exc.smtp_error!r}")
        smtp.rset()
        return
    result.data_ms.append((smtp.replied_at - started) * 1000)
    result.reply_ms.append((smtp.replied_at - smtp.sent_at) * 1000)
    result.accepted_at.append(smtp.replied_at)
    if len(item.raw) < SMALL_MESSAGE:
        result.small_reply_ms.append(result.reply_ms[-1])


def client(
    port: int, share: Iterable[Outgoing], result: SendResult, ready: threading.Barrier
) -> None:
    """One connection, kept open for this client's whole share."""
    try:
        with TimedSMTP("127.0.0.1", port, timeout=300) as smtp:
            smtp.ehlo("bench.example")
            ready.wait()
            for item in share:
                send_one(smtp, item, result)
    except Exception as exc:
        with suppress(threading.BrokenBarrierError):
            ready.abort()
        result.refused.append(f"client error: {exc!r}")


def send_all(port: int, messages: list[Outgoing], clients: int) -> SendResult:
    """N threads, each with its share; the clock starts once every client is connected."""
    return send_shares(port, [messages[i::clients] for i in range(clients)])


def flood(port: int, templates: list[Outgoing], clients: int, seconds: float) -> SendResult:
    """N clients send `templates` in turn, each as a new message, for `seconds`."""
    return send_shares(port, [Flood(templates, i, clients, seconds) for i in range(clients)])


def send_shares(port: int, shares: list[Iterable[Outgoing]]) -> SendResult:
    result = SendResult()
    ready = threading.Barrier(len(shares) + 1)
    threads = [
        threading.Thread(target=client, args=(port, share, result, ready)) for share in shares
    ]
    for thread in threads:
        thread.start()
    with suppress(threading.BrokenBarrierError):
        ready.wait()
    result.started = time.monotonic()
    for thread in threads:
        thread.join()
    result.wall_s = time.monotonic() - result.started
    return result


# --- the bare baseline server (subprocess mode) -----------------------------------------------


def sqlite_path(url: str) -> str:
    return url.split("///", 1)[1]


def libpq_url(url: str) -> str:
    """postgresql+psycopg://... or postgres://... as a plain libpq URL."""
    return "postgresql://" + url.split("://", 1)[1]


def sqlalchemy_url(url: str) -> str:
    """The URL with the psycopg 3 driver named, as the service's settings do."""
    return url if url.startswith("sqlite") else "postgresql+psycopg://" + url.split("://", 1)[1]


def bare_connect(url: str) -> tuple[Any, str]:
    """A DB-API connection for the bare server and its parameter marker."""
    if url.startswith("sqlite"):
        connection = sqlite3.connect(sqlite_path(url), timeout=30, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        return connection, "?"
    return psycopg.connect(libpq_url(url)), "%s"


def bare_create_table(url: str) -> None:
    connection, _ = bare_connect(url)
    blob = "blob" if url.startswith("sqlite") else "bytea"
    key = "integer primary key" if url.startswith("sqlite") else "bigserial primary key"
    connection.execute(f"DROP TABLE IF EXISTS {BARE_TABLE}")
    connection.execute(f"CREATE TABLE {BARE_TABLE} (id {key}, raw {blob} NOT NULL)")
    connection.commit()
    connection.close()


class BareHandler:
    """DATA: one INSERT and COMMIT of the raw bytes on a worker thread, then 250."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.local = threading.local()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.to_thread(self.store, envelope.original_content or b"")
        return "250 2.0.0 Stored"

    def store(self, raw: bytes) -> None:
        if not hasattr(self.local, "connection"):
            self.local.connection, self.local.marker = bare_connect(self.url)
        connection = self.local.connection
        insert = f"INSERT INTO {BARE_TABLE} (raw) VALUES ({self.local.marker})"  # noqa: S608
        connection.execute(insert, (raw,))
        connection.commit()


def run_bare_server(url: str, port: int) -> None:
    from aiosmtpd.smtp import SMTP

    bare_create_table(url)
    handler = BareHandler(url)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(
                handler,
                data_size_limit=MAX_MESSAGE_BYTES,
                enable_SMTPUTF8=True,
                hostname="bare.bench",
                ident="bare ESMTP",
                loop=loop,
            ),
            "127.0.0.1",
            port,
        )
        print("bare server ready", flush=True)
        await server.serve_forever()

    asyncio.run(serve())


# --- processes and databases ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def recreate_postgres(url: str) -> None:
    """Drop and create the scratch database named in the URL (never `test` or test_doxa_*)."""
    base, _, name = libpq_url(url).rpartition("/")
    if name == "test" or name.startswith("test_doxa") or not name.replace("_", "").isalnum():
        raise SystemExit(f"refusing to recreate database {name!r}")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"process exited with {process.returncode} before listening")
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port} after {timeout:.0f}s")


@contextmanager
def bare_server(url: str, log: Path) -> Iterator[int]:
    port = free_port()
    args = [sys.executable, __file__, "--bare-server", "--database-url", url, "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        wait_for_port(port, process)
        yield port
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Service:
    process: subprocess.Popen[bytes]
    http: httpx.Client
    smtp_port: int
    log: Path


def service_env(url: str, http_port: int, smtp_port: int, password: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    env.update(
        DATABASE_URL=url,
        DOXA_ENV="dev",
        JWT_SECRET=secrets.token_urlsafe(48),
        HTTP_PORT=str(http_port),
        SMTP_PORT=str(smtp_port),
        SUPPORT_ADDRESSES=SUPPORT,
        SENDER_HOURLY_LIMIT="1000000",
        DOXA_ADMIN_EMAIL=ADMIN_EMAIL,
        DOXA_ADMIN_PASSWORD=password,
    )
    return env


def doxa_command(command: str | None) -> list[str]:
    """`.venv/bin/doxa serve`, or `python -m doxa.cli serve` from a checkout not installed."""
    if command:
        return shlex.split(command)
    beside = Path(sys.executable).with_name("doxa")
    if beside.exists():
        return [str(beside), "serve"]
    return [sys.executable, "-m", "doxa.cli", "serve"]


@contextmanager
def doxa_service(url: str, scratch: Path, command: str | None) -> Iterator[Service]:
    """`doxa serve` on free ports (cwd: the scratch dir, so no .env is read); logged in."""
    http_port, smtp_port, password = free_port(), free_port(), secrets.token_urlsafe(16)
    log = scratch / "doxa-serve.log"
    env = service_env(url, http_port, smtp_port, password)
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603
            doxa_command(command),
            env=env,
            cwd=scratch,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    http = httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=60)
    try:
        wait_ready(http, process, log)
        form = {"username": ADMIN_EMAIL, "password": password}
        token = http.post("/api/v1/auth/login", data=form).raise_for_status().json()
        http.headers["Authorization"] = f"Bearer {token['access_token']}"
        yield Service(process, http, smtp_port, log)
    finally:
        http.close()
        stop(process)


def wait_ready(http: httpx.Client, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise SystemExit(f"doxa serve exited with {process.returncode}:\n{tail}")
        with suppress(httpx.HTTPError):
            if http.get("/readyz").status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit("doxa serve did not become ready in 120 s")


def memory_kib(pid: int) -> dict[str, int]:
    """VmHWM (peak RSS) and VmRSS of a process, in KiB, from /proc."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            fields[name] = int(value.split()[0])
    return fields


# --- measuring the service --------------------------------------------------------------------


def percentile(samples: list[float], pct: float) -> float:
    """Nearest-rank percentile (0 when there are no samples)."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def timed_get(http: httpx.Client) -> float:
    started = time.monotonic()
    response = http.get(TICKETS_URL)
    elapsed = (time.monotonic() - started) * 1000
    if response.status_code != 200:
        raise SystemExit(f"GET {TICKETS_URL}: {response.status_code} {response.text[:300]}")
    return elapsed


def run_probe(base_url: str, out: Path) -> None:
    """Subprocess mode: time GET /tickets back to back until killed; a "start ms" line each.

    A process of its own, so that the SMTP client threads do not hold its GIL.
    """
    headers = {"Authorization": os.environ["DOXA_BENCH_AUTH"]}
    with (
        httpx.Client(base_url=base_url, timeout=60, headers=headers) as http,
        out.open("a") as sink,
    ):
        while True:
            started = time.monotonic()
            elapsed = timed_get(http)
            sink.write(f"{started} {elapsed}\n")
            sink.flush()
            time.sleep(PROBE_PAUSE)


@contextmanager
def api_probe(service: Service) -> Iterator[Path]:
    out = service.log.with_name("api-probe.txt")
    env = {**os.environ, "DOXA_BENCH_AUTH": service.http.headers["Authorization"]}
    args = [sys.executable, __file__, "--api-probe", "--base-url", str(service.http.base_url)]
    process = subprocess.Popen([*args, "--out", str(out)], env=env)  # noqa: S603
    try:
        deadline = time.monotonic() + 60
        while not (out.exists() and out.stat().st_size) and process.poll() is None:
            if time.monotonic() > deadline:
                raise SystemExit("the API probe did not start")
            time.sleep(0.05)
        yield out
    finally:
        stop(process)


def probe_samples(out: Path, start: float, end: float) -> list[float]:
    """Latencies (ms) of the probe's requests that started in [start, end)."""
    rows = [line.split() for line in out.read_text().splitlines()]
    return [float(row[1]) for row in rows if len(row) == 2 and start <= float(row[0]) < end]


def wait_drained(http: httpx.Client, timeout: float = 1800.0) -> float:
    """Poll the intake log until no event is `received`; return when that was first seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = http.get("/api/v1/intake", params={"status": "received", "limit": 1})
        if not page.raise_for_status().json()["items"]:
            return time.monotonic()
        time.sleep(0.1)
    raise SystemExit(f"events still `received` after {timeout:.0f}s")


def outcome_counts(url: str) -> dict[str, int]:
    """Tickets, ticket messages and intake outcomes, counted in the database."""
    engine = sa.create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as db:
            query = "SELECT status, count(*) FROM intake_event GROUP BY status"
            counts = {f"intake_{s}": int(n) for s, n in db.execute(sa.text(query)).all()}
            counts["tickets"] = int(db.scalar(sa.text("SELECT count(*) FROM ticket")) or 0)
            distinct = "SELECT count(DISTINCT message_id) FROM message WHERE message_id IS NOT NULL"
            counts["distinct_message_ids"] = int(db.scalar(sa.text(distinct)) or 0)
    finally:
        engine.dispose()
    return counts


def bare_rows(url: str) -> int:
    connection, _ = bare_connect(url)
    try:
        count = f"SELECT count(*) FROM {BARE_TABLE}"  # noqa: S608
        return int(connection.execute(count).fetchone()[0])
    finally:
        if not url.startswith("sqlite"):
            connection.execute(f"DROP TABLE {BARE_TABLE}")
            connection.commit()
        connection.close()


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Report:
    backend: str
    clients: int
    messages: int
    attachment_every: int
    mbytes: float
    mix: str = "current"
    run_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    figures: dict[str, Any] = field(default_factory=dict)

    def smtp(self, who: str, result: SendResult) -> None:
        sent = len(result.reply_ms)
        self.figures |= {
            f"{who}_accepted": sent,
            f"{who}_refused": len(result.refused),
            f"{who}_refusals": sorted(set(result.refused))[:5],
            f"{who}_rate": round(sent / result.wall_s, 2),
            f"{who}_wall_s": round(result.wall_s, 2),
            f"{who}_reply_p50_ms": round(percentile(result.reply_ms, 50), 1),
            f"{who}_reply_p99_ms": round(percentile(result.reply_ms, 99), 1),
            f"{who}_reply_p99_small_ms": round(percentile(result.small_reply_ms, 99), 1),
            f"{who}_data_p50_ms": round(percentile(result.data_ms, 50), 1),
            f"{who}_data_p99_ms": round(percentile(result.data_ms, 99), 1),
        }

    def api(self, phase: str, samples: list[float]) -> None:
        self.figures |= {
            f"api_{phase}_requests": len(samples),
            f"api_{phase}_p50_ms": round(percentile(samples, 50), 1),
            f"api_{phase}_p99_ms": round(percentile(samples, 99), 1),
        }


def run_bare(
    url: str,
    messages: list[Outgoing],
    clients: int,
    report: Report,
    scratch: Path,
    service: Service,
) -> None:
    """The bare server takes the load while the probe times DOXA's API, idle in its own process:
    the machine's share of the API's slowdown (clients, PostgreSQL and a server on 2 cores)."""
    with bare_server(url, scratch / "bare-server.log") as port, api_probe(service) as samples:
        time.sleep(IDLE_SECONDS)
        started = time.monotonic()
        result = send_all(port, messages, clients)
        sent = time.monotonic()
    report.api("control_idle", probe_samples(samples, started - IDLE_SECONDS, started))
    report.api("control_sending", probe_samples(samples, started, sent))
    report.smtp("bare", result)
    report.figures["bare_rows_stored"] = bare_rows(url)


def warm_up(service: Service, clients: int, report: Report) -> None:
    """A few tickets first, so that the API's list is not empty when it is timed."""
    warmup = send_all(service.smtp_port, build_messages(WARMUP_MESSAGES, 0, seed=1), clients)
    wait_drained(service.http)
    report.figures["warmup_accepted"] = len(warmup.reply_ms)


def commit_groups(http: httpx.Client) -> tuple[float, float]:
    """Groups the SMTP listener committed so far, and the messages in them (from /metrics;
    zeros from a server without group commit)."""
    found = {"count": 0.0, "sum": 0.0}
    for line in http.get("/metrics").raise_for_status().text.splitlines():
        name, _, value = line.partition(" ")
        for part in found:
            if name == f"doxa_smtp_commit_group_messages_{part}":
                found[part] = float(value)
    return found["count"], found["sum"]


def run_doxa(service: Service, messages: list[Outgoing], clients: int, report: Report) -> None:
    pid = service.process.pid
    with api_probe(service) as samples:
        idle = time.monotonic()
        time.sleep(IDLE_SECONDS)
        report.figures["rss_before_load_kib"] = memory_kib(pid)
        groups_before = commit_groups(service.http)
        started = time.monotonic()
        result = send_all(service.smtp_port, messages, clients)
        sent = time.monotonic()
        (groups, grouped), before = commit_groups(service.http), groups_before
        groups, grouped = groups - before[0], grouped - before[1]
        drained = wait_drained(service.http)
    phases = {"idle": (idle, started), "sending": (started, sent), "draining": (sent, drained)}
    for phase, (start, end) in phases.items():
        report.api(phase, probe_samples(samples, start, end))
    report.smtp("doxa", result)
    report.figures["drain_s"] = round(drained - started, 2)
    report.figures["drain_after_last_reply_s"] = round(drained - max(result.accepted_at), 2)
    report.figures["processed_rate"] = round(len(result.reply_ms) / (drained - started), 2)
    report.figures["rss_after_load_kib"] = memory_kib(pid)
    report.figures["commit_groups"] = int(groups)
    report.figures["messages_per_group"] = round(grouped / groups, 2) if groups else 0


def run_big(service: Service, report: Report) -> None:
    """One message just under 25 MiB; the serve process's peak RSS before and after."""
    item = big_message(random.Random(SEED + 1))
    before = memory_kib(service.process.pid)
    result = send_all(service.smtp_port, [item], 1)
    wait_drained(service.http)
    after = memory_kib(service.process.pid)
    report.figures |= {
        "big_bytes": len(item.raw),
        "big_accepted": len(result.reply_ms),
        "big_refusals": result.refused,
        "big_reply_ms": round(percentile(result.reply_ms, 50), 1),
        "big_rss_before_kib": before,
        "big_rss_after_kib": after,
        "big_hwm_growth_mib": round((after["VmHWM"] - before["VmHWM"]) / 1024, 1),
    }


def run_flood(args: argparse.Namespace, scratch: Path) -> Report:
    """`--duration`: each server flooded for that long; DOXA's tickets stored and classified
    per second, end to end, read from the database while it runs and until it is done."""
    url = args.database_url or f"sqlite:///{scratch}/doxa.db"
    backend = "sqlite" if url.startswith("sqlite") else "postgresql"
    if backend == "postgresql":
        recreate_postgres(url)
    bare_url = f"sqlite:///{scratch}/bare.db" if backend == "sqlite" else url
    templates = build_mix(args.mix, args.messages, args.attachment_every, seed=SEED)
    size = sum(len(m.raw) for m in templates) / 2**20
    report = Report(
        backend, args.clients, args.messages, args.attachment_every, round(size, 1), mix=args.mix
    )
    report.figures["duration_s"] = args.duration
    report.figures["load_average_before"] = [round(x, 2) for x in os.getloadavg()]
    Console().print(
        f"{args.mix} mix: {len(templates)} messages in turn ({size:.1f} MiB), {args.duration:g} s "
        "to the bare server, then to DOXA"
    )
    with doxa_service(url, scratch, args.serve_command) as service:
        warm_up(service, args.clients, report)
        wait_settled(sqlalchemy_url(url), SETTLE_TIMEOUT)
        with bare_server(bare_url, scratch / "bare-server.log") as port:
            report.smtp("bare", flood(port, templates, args.clients, args.duration))
        report.figures["bare_rows_stored"] = bare_rows(bare_url)
        with Progress(sqlalchemy_url(url)) as progress:
            first = progress.samples[0]
            result = flood(service.smtp_port, templates, args.clients, args.duration)
            ended = progress.sample().at
            accepted = len(result.reply_ms)
            progress.wait_done(first.events + accepted, SETTLE_TIMEOUT, args.drain_wait)
        report.smtp("doxa", result)
        report.figures["flow"] = progress.figures(first, result.started, ended, accepted)
        report.figures |= outcome_counts(url)
    report.figures["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    report.figures["expected_tickets"] = report.figures["warmup_accepted"] + accepted
    return report


def run(args: argparse.Namespace, scratch: Path) -> Report:
    url = args.database_url or f"sqlite:///{scratch}/doxa.db"
    backend = "sqlite" if url.startswith("sqlite") else "postgresql"
    if backend == "postgresql":
        recreate_postgres(url)
    bare_url = f"sqlite:///{scratch}/bare.db" if backend == "sqlite" else url
    messages = build_mix(args.mix, args.messages, args.attachment_every, seed=SEED)
    size = sum(len(m.raw) for m in messages) / 2**20
    report = Report(
        backend, args.clients, args.messages, args.attachment_every, round(size, 1), mix=args.mix
    )
    report.figures["load_average_before"] = [round(x, 2) for x in os.getloadavg()]
    Console().print(
        f"{args.mix} mix: {len(messages)} messages, {size:.1f} MiB; bare server first, then DOXA"
    )
    with doxa_service(url, scratch, args.serve_command) as service:
        warm_up(service, args.clients, report)
        run_bare(bare_url, messages, args.clients, report, scratch, service)
        run_doxa(service, messages, args.clients, report)
        if args.big:
            run_big(service, report)
        report.figures |= outcome_counts(url)
    report.figures["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    report.figures["expected_tickets"] = (
        report.figures["warmup_accepted"]
        + report.figures["doxa_accepted"]
        + report.figures.get("big_accepted", 0)
    )
    return report


# --- output -----------------------------------------------------------------------------------


def verdicts(f: dict[str, Any], mix: str) -> list[tuple[str, str, bool]]:
    """Issue 10's targets: the rate against the same run's bare server (70 % with the small
    mix, 100 % with the current one), reply p99, the API's p99 against the same run's control,
    and everything processed within 20 s of the last 250."""
    ratio = f["doxa_rate"] / f["bare_rate"]
    wanted = 0.7 if mix == "small" else 1.0
    api_ratio = f["api_sending_p99_ms"] / f["api_control_sending_p99_ms"]
    p99 = f["doxa_reply_p99_ms"]
    drain = f["drain_after_last_reply_s"]
    tickets = f"{f['tickets']} / {f['expected_tickets']}"
    no_loss = f["tickets"] == f["expected_tickets"] == f.get("intake_ticket_created")
    refused = f"{f['doxa_refused']} DOXA, {f['bare_refused']} bare"
    checks = [
        (f"rate >= {wanted:.0%} of bare", f"{ratio:.0%}", ratio >= wanted),
        ("SMTP reply p99 < 100 ms", f"{p99:.0f} ms", p99 < 100),
        (
            "API p99 while sending <= 1.25x control",
            f"{api_ratio:.2f}x ({f['api_sending_p99_ms']} / {f['api_control_sending_p99_ms']} ms)",
            api_ratio <= 1.25,
        ),
        ("all processed <= 20 s after the last 250", f"{drain:.1f} s", drain <= 20),
        ("tickets = messages accepted", tickets, no_loss),
        ("nothing refused", refused, f["doxa_refused"] == f["bare_refused"] == 0),
    ]
    if "big_hwm_growth_mib" in f:
        growth, limit = f["big_hwm_growth_mib"], 2 * f["big_bytes"] / 2**20
        met = f["big_accepted"] == 1 and growth < limit
        checks.append((f"25 MiB mail: peak RSS grows < {limit:.0f} MiB", f"+{growth:.0f} MiB", met))
    return checks


def pair(first: object, second: object, sep: str = " / ") -> str:
    return f"{first}{sep}{second}"


def mib(kib: dict[str, int]) -> int:
    return kib["VmHWM"] // 1024


def figures_table(report: Report) -> Table:
    f = report.figures
    title = (
        f"SMTP intake, {report.backend}, {report.mix} mix: {report.clients} clients, "
        f"{report.messages} messages"
    )
    table = Table(title=f"{title} ({report.mbytes} MiB)")
    table.add_column("figure")
    table.add_column("DOXA", justify="right")
    table.add_column("bare aiosmtpd", justify="right")
    add = table.add_row
    add(
        "accepted / refused",
        pair(f["doxa_accepted"], f["doxa_refused"]),
        pair(f["bare_accepted"], f["bare_refused"]),
    )
    add("messages/s", f"{f['doxa_rate']:.1f}", f"{f['bare_rate']:.1f}")
    add("ratio DOXA / bare", f"{f['doxa_rate'] / f['bare_rate']:.0%}", "")
    for name, label in (("reply", "end of DATA -> reply"), ("data", "whole smtp.data()")):
        add(
            f"{label} p50 / p99 ms",
            pair(f[f"doxa_{name}_p50_ms"], f[f"doxa_{name}_p99_ms"]),
            pair(f[f"bare_{name}_p50_ms"], f[f"bare_{name}_p99_ms"]),
        )
    add(
        "  p99 ms, messages without attachments",
        str(f["doxa_reply_p99_small_ms"]),
        str(f["bare_reply_p99_small_ms"]),
    )
    for phase in ("idle", "sending", "draining"):
        label = f"GET /tickets p50 / p99 ms, {phase} (n={f[f'api_{phase}_requests']})"
        add(label, pair(f[f"api_{phase}_p50_ms"], f[f"api_{phase}_p99_ms"]), "")
    for phase, label in (("idle", "idle"), ("sending", "the bare server takes the load")):
        samples = f[f"api_control_{phase}_requests"]
        add(
            f"  control: DOXA idle while {label} (n={samples})"
            if phase == "sending"
            else f"  control: DOXA idle (n={samples})",
            "",
            pair(f[f"api_control_{phase}_p50_ms"], f[f"api_control_{phase}_p99_ms"]),
        )
    add(
        "commit groups, messages per group",
        pair(f.get("commit_groups", "-"), f.get("messages_per_group", "-"), ", "),
        "",
    )
    add("all processed, s after the first send", str(f["drain_s"]), "")
    add("  ... s after the last 250", str(f["drain_after_last_reply_s"]), "")
    add("processed messages/s", str(f["processed_rate"]), "")
    add(
        "tickets / expected",
        pair(f["tickets"], f["expected_tickets"]),
        f"{f['bare_rows_stored']} rows",
    )
    before, after = f["load_average_before"], f["load_average_after"]
    load = f"{before[0]}, {before[1]} -> {after[0]}, {after[1]}"
    add("load average (1, 5 min) before -> after", load, "")
    add(
        "peak RSS before / after load (MiB)",
        pair(mib(f["rss_before_load_kib"]), mib(f["rss_after_load_kib"])),
        "",
    )
    if "big_bytes" in f:
        add(f"{f['big_bytes']:,} B message: reply ms", str(f["big_reply_ms"]), "")
        before, after = mib(f["big_rss_before_kib"]), mib(f["big_rss_after_kib"])
        add("  peak RSS before -> after (MiB)", pair(before, after, " -> "), "")
    return table


def flood_table(report: Report) -> Table:
    """`--duration`: the accept rates and DOXA's flow (see bench/lib/endtoend.py)."""
    f, flow = report.figures, report.figures["flow"]
    title = (
        f"SMTP intake, {report.backend}, {report.mix} mix: {report.clients} clients, "
        f"a {f['duration_s']:g} s flood"
    )
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("DOXA", justify="right")
    table.add_column("bare aiosmtpd", justify="right")
    add = table.add_row
    add(
        "accepted / refused",
        pair(f["doxa_accepted"], f["doxa_refused"]),
        pair(f["bare_accepted"], f["bare_refused"]),
    )
    add("accepted messages/s", f"{f['doxa_rate']:.1f}", f"{f['bare_rate']:.1f}")
    add("ratio DOXA / bare", f"{f['doxa_rate'] / f['bare_rate']:.0%}", "")
    add(
        "end of DATA -> reply p50 / p99 ms",
        pair(f["doxa_reply_p50_ms"], f["doxa_reply_p99_ms"]),
        pair(f["bare_reply_p50_ms"], f["bare_reply_p99_ms"]),
    )
    add(
        "tickets stored / classified per s, the flood",
        pair(flow["stored_per_s"], flow["classified_per_s"]),
        "",
    )
    add(
        "  ... its second half",
        pair(flow["steady_stored_per_s"], flow["steady_classified_per_s"]),
        "",
    )
    add(
        "at its end, not yet stored / classified",
        pair(flow["backlog_stored"], flow["backlog_classified"]),
        "",
    )
    add(
        "after the flood: stored / classified per s",
        pair(flow["after_stored_per_s"], flow["after_classified_per_s"]),
        "",
    )
    add(
        f"  ... left after waiting {flow['waited_after_s']} s",
        pair(flow["left_stored"], flow["left_classified"]),
        "",
    )
    add(
        "all stored / classified, s after the flood",
        pair(flow["all_stored_after_s"] or "-", flow["all_classified_after_s"] or "-"),
        "",
    )
    add(
        "stored and classified per s, first mail to last classification",
        str(flow["end_to_end_per_s"] or "-"),
        "",
    )
    add(
        "tickets / expected",
        pair(f["tickets"], f["expected_tickets"]),
        f"{f['bare_rows_stored']} rows",
    )
    before, after = f["load_average_before"], f["load_average_after"]
    add(
        "load average (1, 5 min) before -> after",
        f"{before[0]}, {before[1]} -> {after[0]}, {after[1]}",
        "",
    )
    return table


def print_report(report: Report) -> None:
    console = Console()
    if "flow" in report.figures:
        console.print(flood_table(report))
    else:
        console.print(figures_table(report))
        targets = Table(title="targets")
        for column in ("target", "measured", "met"):
            targets.add_column(column)
        for name, measured, met in verdicts(report.figures, report.mix):
            targets.add_row(name, measured, "yes" if met else "[bold red]NO[/]")
        console.print(targets)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"smtp-{report.backend}-{report.mix}.jsonl"
    with path.open("a") as out:
        out.write(json.dumps(asdict(report)) + "\n")
    console.print(f"appended to {path}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--database-url", help="default: a fresh SQLite file in a temp dir")
    parser.add_argument("--clients", type=int, default=8, help="concurrent SMTP clients")
    parser.add_argument("--messages", type=int, default=400, help="messages to send")
    parser.add_argument(
        "--mix",
        choices=["current", "small"],
        default="current",
        help="current: varied sizes, 50 KB-2 MB attachments; small: 1-4 KB "
        "bodies, one in ten with a 32 KB attachment",
    )
    parser.add_argument(
        "--attachment-every",
        type=int,
        default=5,
        help="current mix: every Nth has an attachment (0: none)",
    )
    parser.add_argument("--big", action="store_true", help="also send one 25 MiB message")
    parser.add_argument(
        "--duration",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="a sustained flood of SECONDS instead (the messages sent in turn, "
        "each as a new one): tickets stored and classified per second",
    )
    parser.add_argument(
        "--drain-wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="--duration: wait at most SECONDS after the flood for every ticket to be stored and "
        "classified (default: until done, or nothing moved for 5 minutes)",
    )
    parser.add_argument("--serve-command", help="run this instead of `doxa serve` (experiments)")
    parser.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--api-probe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.bare_server:
        run_bare_server(args.database_url, args.port)
        return
    if args.api_probe:
        run_probe(args.base_url, args.out)
        return
    with tempfile.TemporaryDirectory(prefix="doxa-bench-smtp-") as scratch:
        report = (run_flood if args.duration else run)(args, Path(scratch))
        print_report(report)


if __name__ == "__main__":
    main()
