"""`bench/webhooks.py --subscriptions --streams N`: issue 22's "Events out" under load.

Before `doxa serve` gets the load, everything is set up through its real API, as an admin would:
an admin made with `doxa create-user`, then `POST /users` for N users (agents and clients, each
with a password) and `POST /auth/login` for each one's bearer token, and three subscriptions to
every event (`POST /webhooks`): one receiver that answers 200 at once, one that answers 200
after 2 s, and a port that refuses connections. The three are on 127.0.0.1, 127.0.0.2 and
127.0.0.3 (all loopback on Linux): the outbox is fair per destination *host* (at most
`PER_DESTINATION` sends in flight to one), and three subscriptions of three systems are three
hosts; `--one-host` puts all three on 127.0.0.1 to show what sharing a host does.

Two processes of their own (spawned: the bench forks its posting clients later, and their GIL
must not delay an arrival) record each arrival with the bench's wall clock: the receivers, for
each delivery its `webhook-id` and the body's `id` and `created_at`; the streams (asyncio, one
`GET /events/stream` each with its user's bearer token), for each event its `id` and
`created_at` from the SSE data. The event's `created_at` is the server's wall clock when the
event row was made (in the transaction of the change, before it commits); the server and the
bench run on one machine, so arrival minus `created_at` is the time from the change to its
delivery, commit and the feed's wait for earlier transactions included.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing as mp
import secrets
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

import httpx
import sqlalchemy as sa
from sqlalchemy.orm import Session

from doxa.core.events.models import Event
from doxa.core.webhooks.models import WebhookDelivery

HEALTHY, SLOW, REFUSED = "healthy", "slow", "refused"
SLOW_SECONDS = 2.0
HOSTS = {HEALTHY: "127.0.0.1", SLOW: "127.0.0.2", REFUSED: "127.0.0.3"}
PASSWORD = "bench-" + secrets.token_urlsafe(16)
ADMIN = "bench-admin@example.com"
SETTLE_QUIET_S = 30.0  # the wait for the last deliveries ends after this long without one more

# One arrival: (event id, the event's created_at, arrived), both as Unix seconds.
Arrival = tuple[int, float, float]


def client_email(index: int) -> str:
    """The address of the index-th client: the forms of an events-out run come from these."""
    return f"client{index}@example.org"


def environment(streams: int, clients: int) -> dict[str, str]:
    """The server's settings for these runs (control runs too, so both run the same server):
    loopback receivers allowed, room for the streams, and cheap bcrypt for the setup's
    logins (hashing is not what is measured)."""
    return {
        "WEBHOOK_ALLOWED_HOSTS": ",".join(sorted(set(HOSTS.values()))),
        "EVENT_STREAMS_PER_NETWORK": str(streams + 50),
        "EVENT_STREAMS_PER_USER": "5",
        # Streams may take half of the connections; the posting clients need theirs too.
        "HTTP_MAX_CONNECTIONS": str(max(1000, 2 * (streams + clients) + 100)),
        "BCRYPT_ROUNDS": "4",
    }


def created(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


# --- the receivers (a process of their own) ----------------------------------------------------


class _Receiver(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, host: str, delay: float) -> None:
        super().__init__((host, 0), _Handler)
        self.delay = delay
        self.lock = threading.Lock()
        self.deliveries: list[tuple[str, Arrival]] = []  # (webhook-id, arrival)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        arrived = time.time()
        receiver = cast(_Receiver, self.server)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if receiver.delay:
            time.sleep(receiver.delay)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
        event = json.loads(body)
        arrival = (int(event["id"]), created(event["created_at"]), arrived)
        with receiver.lock:
            receiver.deliveries.append((self.headers.get("webhook-id", ""), arrival))

    def log_message(self, format: str, *args: Any) -> None:
        return


def _refusing_port(host: str) -> int:
    """A port nothing listens on (bound, then closed): connections to it are refused."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def run_receivers(conn: Connection, hosts: dict[str, str]) -> None:
    """Serve the healthy and the slow receiver until told to stop; answer counts meanwhile."""
    servers = {HEALTHY: _Receiver(hosts[HEALTHY], 0.0), SLOW: _Receiver(hosts[SLOW], SLOW_SECONDS)}
    for server in servers.values():
        threading.Thread(target=server.serve_forever, daemon=True).start()
    urls = {name: f"http://{hosts[name]}:{s.server_address[1]}/hook" for name, s in servers.items()}
    urls[REFUSED] = f"http://{hosts[REFUSED]}:{_refusing_port(hosts[REFUSED])}/hook"
    conn.send(urls)
    cpu = time.process_time()
    while (command := conn.recv()) != "stop":
        assert command == "count"
        with servers[HEALTHY].lock:
            conn.send(len({hook_id for hook_id, _ in servers[HEALTHY].deliveries}))
    for server in servers.values():
        server.shutdown()
    conn.send(
        {
            "deliveries": {name: list(s.deliveries) for name, s in servers.items()},
            "cpu_s": time.process_time() - cpu,
        }
    )


# --- the streams (a process of their own) ------------------------------------------------------


@dataclass
class _Stream:
    index: int
    status: int = 0
    error: str = ""
    ended: str = ""  # why it ended before the bench closed it (the server dropped it)
    arrivals: list[Arrival] = field(default_factory=list)
    answered: asyncio.Event = field(default_factory=asyncio.Event)  # status known


async def _read(http: httpx.AsyncClient, url: str, token: str, stream: _Stream) -> None:
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    try:
        async with http.stream("GET", url, headers=headers) as response:
            stream.status = response.status_code
            stream.answered.set()
            if response.status_code != 200:
                stream.error = (await response.aread()).decode(errors="replace")[:200]
                return
            data: list[str] = []
            arrived = 0.0
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    arrived = arrived or time.time()
                    data.append(line[5:].removeprefix(" "))
                elif line.startswith(":") and "dropped" in line:
                    stream.ended = line[1:].strip()
                elif not line and data:
                    event = json.loads("\n".join(data))
                    made = created(event["created_at"])
                    stream.arrivals.append((int(event["id"]), made, arrived))
                    data, arrived = [], 0.0
            stream.ended = stream.ended or "the server closed it"
    except httpx.HTTPError as exc:
        stream.ended = stream.ended or repr(exc)
        stream.status = stream.status or -1
    finally:
        stream.answered.set()


async def _streams(conn: Connection, url: str, tokens: list[str]) -> None:
    limits = httpx.Limits(max_connections=len(tokens) + 10, max_keepalive_connections=0)
    timeout = httpx.Timeout(30.0, read=None)
    streams = [_Stream(n) for n in range(len(tokens))]
    cpu = time.process_time()
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as http:
        tasks = [
            asyncio.create_task(_read(http, url, token, stream))
            for token, stream in zip(tokens, streams, strict=True)
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(s.answered.wait() for s in streams)), 60)
        conn.send({"open": sum(s.status == 200 for s in streams)})
        while (command := await asyncio.to_thread(conn.recv)) != "stop":
            assert command == "count"
            conn.send(sum(len(s.arrivals) for s in streams))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    conn.send(
        {
            "streams": [(s.status, s.error, s.ended, s.arrivals) for s in streams],
            "cpu_s": time.process_time() - cpu,
        }
    )


def run_streams(conn: Connection, url: str, tokens: list[str]) -> None:
    asyncio.run(_streams(conn, url, tokens))


# --- setup through the API ---------------------------------------------------------------------


def _login(http: httpx.Client, base: str, email: str) -> str:
    for _ in range(20):  # the hashing pool answers 429 when full: wait as told
        answer = http.post(f"{base}/auth/login", data={"username": email, "password": PASSWORD})
        if answer.status_code != 429:
            answer.raise_for_status()
            return str(answer.json()["access_token"])
        time.sleep(float(answer.headers.get("Retry-After", "1")))
    raise SystemExit(f"login of {email}: still 429")


def _post(http: httpx.Client, url: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    for _ in range(20):
        answer = http.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
        if answer.status_code != 429:
            if answer.is_error:
                raise SystemExit(f"POST {url}: {answer.status_code} {answer.text[:300]}")
            return cast(dict[str, Any], answer.json())
        time.sleep(float(answer.headers.get("Retry-After", "1")))
    raise SystemExit(f"POST {url}: still 429")


@dataclass(frozen=True)
class Users:
    admin: str  # the admin's token
    clients: list[tuple[int, str]]  # (user id, token), the i-th is client_email(i)
    agents: list[tuple[int, str]]


def make_users(
    base: str, command: list[str], env: dict[str, str], cwd: Path, clients: int, agents: int
) -> Users:
    """An admin by `doxa create-user`, then the agents and clients by `POST /users`, each
    logged in by `POST /auth/login`. `base` is the API's root (…/api/v1)."""
    subprocess.run(  # noqa: S603 - our own command
        [*command, "create-user", "--email", ADMIN, "--role", "ADMIN", "--password-stdin"],
        input=PASSWORD + "\n",
        text=True,
        env=env,
        cwd=cwd,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    with httpx.Client(timeout=60) as http:
        admin = _login(http, base, ADMIN)

        def made(email: str, role: str) -> tuple[int, str]:
            body = {"email": email, "password": PASSWORD, "role": role}
            user = _post(http, f"{base}/users", admin, body)
            return int(user["id"]), _login(http, base, email)

        return Users(
            admin,
            [made(client_email(n), "CLIENT") for n in range(clients)],
            [made(f"agent{n}@example.com", "AGENT") for n in range(agents)],
        )


def subscribe(base: str, admin: str, urls: dict[str, str]) -> dict[str, int]:
    """One subscription to every event per receiver (`POST /webhooks`); their ids by name."""
    with httpx.Client(timeout=60) as http:
        return {
            name: int(
                _post(
                    http,
                    f"{base}/webhooks",
                    admin,
                    {"url": url, "events": ["*"], "description": f"bench: {name}"},
                )["id"]
            )
            for name, url in urls.items()
        }


# --- the run's listeners -----------------------------------------------------------------------


class Listeners:
    """The receivers' and the streams' processes (either may be absent)."""

    def __init__(self, *, receivers: bool, one_host: bool) -> None:
        self._context = mp.get_context("spawn")
        self._receivers: tuple[Connection, Any] | None = None
        self._streams: tuple[Connection, Any] | None = None
        self.urls: dict[str, str] = {}
        if receivers:
            hosts = {name: HOSTS[HEALTHY] for name in HOSTS} if one_host else HOSTS
            self._receivers = self._start(run_receivers, hosts)
            self.urls = self._receivers[0].recv()

    def _start(self, target: Callable[..., None], *args: Any) -> tuple[Connection, Any]:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(target=target, args=(theirs, *args), daemon=True)
        process.start()
        theirs.close()
        return ours, process

    def open_streams(self, url: str, tokens: list[str]) -> int:
        """Open the streams; how many the server accepted (200)."""
        self._streams = self._start(run_streams, url, tokens)
        return int(self._streams[0].recv()["open"])

    @staticmethod
    def _count(side: tuple[Connection, Any] | None) -> int:
        if side is None:
            return 0
        side[0].send("count")
        return int(side[0].recv())

    def delivered(self) -> int:
        """Distinct events the healthy receiver has had so far."""
        return self._count(self._receivers)

    def streamed(self) -> int:
        """Events received on all streams so far."""
        return self._count(self._streams)

    def stop(self) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Stop both; what each recorded."""
        results: list[dict[str, Any] | None] = []
        for side in (self._receivers, self._streams):
            if side is None:
                results.append(None)
                continue
            side[0].send("stop")
            results.append(side[0].recv())
            side[1].join(30)
        self._receivers = self._streams = None
        return results[0], results[1]

    def close(self) -> None:
        for side in (self._receivers, self._streams):
            if side is not None:
                with contextlib.suppress(OSError):
                    side[1].kill()


# --- waiting and figures -----------------------------------------------------------------------


def settle(got: Callable[[], int], wanted: Callable[[], int], quiet: float) -> float:
    """Wait until `got()` reaches `wanted()` or stays still for `quiet` seconds; the seconds
    waited."""
    started = moved = time.monotonic()
    last = -1
    while True:
        now, count = time.monotonic(), got()
        if count >= wanted():
            return round(now - started, 1)
        if count != last:
            last, moved = count, now
        elif now - moved > quiet:
            return round(now - started, 1)
        time.sleep(0.5)


EXPECTED = {
    # What each reader should get of the events made after `first` (SPEC "Who sees what").
    # All but pings, and internal notes (non-public message events): no subscription here asks
    # for them with include_internal.
    "webhook": "type <> 'ping' AND (public OR type <> 'message.created')",
    "agent": "type <> 'ping' AND type NOT LIKE 'intake.%'",
}


def expected_webhook(engine: sa.Engine, first: int) -> int:
    query = f"SELECT count(*) FROM event WHERE id > :first AND {EXPECTED['webhook']}"  # noqa: S608
    with engine.connect() as db:
        return int(db.scalar(sa.text(query), {"first": first}) or 0)


def expected_streams(
    engine: sa.Engine, first: int, client_ids: Sequence[int]
) -> tuple[int, dict[int, int]]:
    """Events each agent's stream should get, and each client's (by user id): the public
    events of the tickets they are the requester of."""
    agent = f"SELECT count(*) FROM event WHERE id > :first AND {EXPECTED['agent']}"  # noqa: S608
    mine = sa.text(
        "SELECT t.requester_id, count(*) FROM event e JOIN ticket t ON t.id = e.ticket_id "
        "WHERE e.id > :first AND e.public GROUP BY t.requester_id"
    )
    with engine.connect() as db:
        per_agent = int(db.scalar(sa.text(agent), {"first": first}) or 0)
        per_client = {int(user): int(n) for user, n in db.execute(mine, {"first": first})}
    return per_agent, {user: per_client.get(user, 0) for user in client_ids}


def made_by_type(engine: sa.Engine, first: int) -> dict[str, int]:
    """Every event made after `first`, by type, a non-public one marked (`type (internal)`)."""
    query = sa.text("SELECT type, public, count(*) FROM event WHERE id > :first GROUP BY 1, 2")
    with engine.connect() as db:
        rows = db.execute(query, {"first": first}).all()
    return {f"{kind}{'' if public else ' (internal)'}": int(n) for kind, public, n in rows}


def stages(
    engine: sa.Engine, subscriptions: dict[str, int], first: int, percentile: Percentile
) -> dict[str, Any]:
    """From the delivery log (server clock): per subscription its deliveries by state and their
    attempts; for the healthy one where the time went, p50/p99 ms: event made -> delivery
    queued (the dispatcher) -> first attempt signed (the outbox's wait), and how many it was
    sent a second (first attempts over their span)."""
    figures: dict[str, Any] = {}
    with Session(engine) as db:
        for name, hook_id in subscriptions.items():
            rows = db.execute(
                sa.select(
                    WebhookDelivery.state,
                    WebhookDelivery.created_at,
                    Event.created_at,
                    WebhookDelivery.attempts,
                )
                .join(Event, Event.id == WebhookDelivery.event_id)
                .where(WebhookDelivery.webhook_id == hook_id, Event.id > first)
            ).all()
            row: dict[str, Any] = dict(Counter(str(state) for state, _, _, _ in rows))
            row["attempts"] = sum(len(attempts) for _, _, _, attempts in rows)
            if name == HEALTHY:
                queued = [(q - made).total_seconds() * 1000 for _, q, made, _ in rows]
                waited = [
                    (datetime.fromisoformat(attempts[0]["at"]) - q).total_seconds() * 1000
                    for _, q, _, attempts in rows
                    if attempts
                ]
                for stage, ms in (("to_queued", queued), ("queued_to_attempt", waited)):
                    row[stage] = {
                        "p50_ms": round(percentile(ms, 50), 1),
                        "p99_ms": round(percentile(ms, 99), 1),
                    }
                # How fast the outbox sent to it: first attempts over their span.
                sent = sorted(datetime.fromisoformat(a[0]["at"]) for *_, a in rows if a)
                span = (sent[-1] - sent[0]).total_seconds() if len(sent) > 1 else 0.0
                row["sent_per_s"] = round((len(sent) - 1) / span, 1) if span else None
            figures[name] = row
    return figures


def latencies(arrivals: list[Arrival], first: int) -> list[float]:
    """Milliseconds from each event's creation to its arrival (events after `first` only)."""
    return [(arrived - made) * 1000 for event_id, made, arrived in arrivals if event_id > first]


Percentile = Callable[[list[float], float], float]


def webhook_figures(
    recorded: dict[str, Any], first: int, made: int, percentile: Percentile
) -> dict[str, Any]:
    """Per receiver: deliveries, distinct events, duplicates; the healthy one's latencies."""
    figures: dict[str, Any] = {"events_made": made, "receiver_cpu_s": round(recorded["cpu_s"], 2)}
    for name, deliveries in recorded["deliveries"].items():
        ours = [(hook_id, a) for hook_id, a in deliveries if a[0] > first]
        seen = Counter(hook_id for hook_id, _ in ours)
        firsts: dict[str, Arrival] = {}
        for hook_id, arrival in ours:
            firsts.setdefault(hook_id, arrival)
        row: dict[str, Any] = {
            "deliveries": len(ours),
            "events": len(seen),
            "duplicates": sum(n - 1 for n in seen.values()),
        }
        if name == HEALTHY:
            ms = latencies(list(firsts.values()), first)
            row |= {
                "p50_ms": round(percentile(ms, 50), 1),
                "p99_ms": round(percentile(ms, 99), 1),
                "max_ms": round(max(ms, default=0.0), 1),
            }
        figures[name] = row
    return figures


def stream_figures(
    recorded: dict[str, Any],
    first: int,
    users: Users,
    engine: sa.Engine,
    percentile: Percentile,
) -> dict[str, Any]:
    """Per kind of reader (the agents' streams come after the clients'): events received of
    those expected, p50/p99 from creation to arrival, streams refused and dropped."""
    streams = recorded["streams"]
    per_agent, per_client = expected_streams(engine, first, [user for user, _ in users.clients])
    kinds = {
        "clients": (streams[: len(users.clients)], [per_client[u] for u, _ in users.clients]),
        "agents": (streams[len(users.clients) :], [per_agent] * len(users.agents)),
    }
    figures: dict[str, Any] = {"reader_cpu_s": round(recorded["cpu_s"], 2)}
    everything: list[float] = []
    for kind, (rows, expected) in kinds.items():
        ms = [m for _, _, _, arrivals in rows for m in latencies(arrivals, first)]
        everything += ms
        got = [sum(1 for a in arrivals if a[0] > first) for _, _, _, arrivals in rows]
        figures[kind] = {
            "streams": len(rows),
            "refused": sum(status != 200 for status, _, _, _ in rows),
            "dropped": sum(bool(ended) for status, _, ended, _ in rows if status == 200),
            "received": sum(got),
            "expected": sum(expected),
            "short_streams": sum(g < e for g, e in zip(got, expected, strict=True)),
            "p50_ms": round(percentile(ms, 50), 1),
            "p99_ms": round(percentile(ms, 99), 1),
            "max_ms": round(max(ms, default=0.0), 1),
        }
        reasons = [ended or error for status, error, ended, _ in rows if ended or status != 200]
        figures[kind]["first_reasons"] = reasons[:3]
    figures["all"] = {
        "p50_ms": round(percentile(everything, 50), 1),
        "p99_ms": round(percentile(everything, 99), 1),
    }
    return figures
