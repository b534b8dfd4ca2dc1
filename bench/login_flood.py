"""The API's latency while logins flood it: bcrypt must not take the CPU that requests need.

Usage::

    python bench/login_flood.py                      # SQLite in a temp dir, 16 flooders
    python bench/login_flood.py --requests 300 --flooders 16 --rounds 12

Starts the real server (`doxa serve`, uvicorn) on a free loopback port with a fresh SQLite
database, one AGENT to probe with and one CLIENT whose correct password the flood sends (a
successful login is the costliest: no failure limit stops it, and it always runs bcrypt; from one
network it gets only that network's share of the hashing pool). It times R
authenticated `GET /api/v1/users/me` one after another while idle, then again while F
concurrent clients (in a separate process, so their CPU is not the probe's GIL) post logins
as fast as the server answers. Prints p50/p99 of both runs, the p99 ratio, and what the flood
got (200s, 429s). Loopback only; bounded by R and a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from doxa.core.config import load_settings
from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.enums import Role
from doxa.core.models import User
from doxa.migrations import upgrade

PASSWORD = "flood test password"
TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def seed(url: str, rounds: int) -> None:
    upgrade(url)
    settings = load_settings(
        _env_file=None,
        doxa_env="dev",
        jwt_secret="bench-" + "x" * 40,
        database_url=url,
        bcrypt_rounds=rounds,
    )
    context = Context.build(settings)
    with transaction(context.sessions) as db:
        for email, role in (("probe@example.com", Role.AGENT), ("flood@example.com", Role.CLIENT)):
            db.add(User(email=email, role=role, password_hash=context.passwords.hash(PASSWORD)))
    context.close()


def start_server(url: str, port: int, rounds: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DOXA_ENV": "dev",
        "DATABASE_URL": url,
        "JWT_SECRET": "bench-" + "x" * 40,
        "BCRYPT_ROUNDS": str(rounds),
        "SMTP_ENABLED": "false",
        "PARSER_PROCESSES": "0",
        "AI_PROVIDER": "none",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(port),
    }
    doxa = Path(sys.executable).with_name("doxa")
    server = subprocess.Popen(  # noqa: S603 - our own entry point, fixed arguments
        [str(doxa), "serve", "--no-migrate"],
        env=env,
        cwd=tempfile.gettempdir(),  # no .env from the checkout
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the server did not start")


def probe(base: str, token: str, requests: int) -> list[float]:
    """R authenticated GETs one after another; milliseconds each."""
    samples = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
        for _ in range(10):
            http.get("/api/v1/users/me")
        for _ in range(requests):
            start = time.perf_counter()
            response = http.get("/api/v1/users/me")
            samples.append((time.perf_counter() - start) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"probe got {response.status_code}")
    return samples


def flood(
    base: str, flooders: int, stop: mp.synchronize.Event, counts: mp.Queue[dict[int, int]]
) -> None:
    async def one(http: httpx.AsyncClient, seen: Counter[int]) -> None:
        form = {"username": "flood@example.com", "password": PASSWORD}
        while not stop.is_set():
            seen[(await http.post("/api/v1/auth/login", data=form)).status_code] += 1

    async def run() -> None:
        seen: Counter[int] = Counter()
        limits = httpx.Limits(max_connections=flooders)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as http:
            await asyncio.gather(*(one(http, seen) for _ in range(flooders)))
        counts.put(dict(seen))

    asyncio.run(run())


def flooded_probe(
    base: str, token: str, args: argparse.Namespace
) -> tuple[list[float], Counter[int], float]:
    """One probe run while a separate process floods logins."""
    stop = mp.Event()
    counts: mp.Queue[dict[int, int]] = mp.Queue()
    flooder = mp.Process(target=flood, args=(base, args.flooders, stop, counts))
    flooder.start()
    time.sleep(1.0)  # let the flood reach its pace
    started = time.monotonic()
    samples = probe(base, token, args.requests)
    seconds = time.monotonic() - started + 1.0
    stop.set()
    seen = Counter(counts.get(timeout=TIMEOUT))
    flooder.join(TIMEOUT)
    return samples, seen, seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500, help="timed GETs per run")
    parser.add_argument("--cycles", type=int, default=3, help="idle and flood runs, alternating")
    parser.add_argument("--flooders", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=12, help="bcrypt cost, as in production")
    args = parser.parse_args(argv)
    idle: list[float] = []
    loaded: list[float] = []
    seen: Counter[int] = Counter()
    seconds = 0.0
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/flood.db"
        seed(url, args.rounds)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(url, port, args.rounds)
        try:
            form = {"username": "probe@example.com", "password": PASSWORD}
            login = httpx.post(f"{base}/api/v1/auth/login", data=form, timeout=30)
            token = login.json()["access_token"]
            # Alternating runs spread the machine's other load over both conditions alike.
            for _ in range(args.cycles):
                idle += probe(base, token, args.requests)
                samples, counted, took = flooded_probe(base, token, args)
                loaded, seen, seconds = loaded + samples, seen + counted, seconds + took
        finally:
            server.terminate()
            server.wait(30)
    report(args, idle, loaded, seen, seconds)
    print(f"  load average (1 min) before and after: {load_before:.1f}, {os.getloadavg()[0]:.1f}")


def report(
    args: argparse.Namespace,
    idle: list[float],
    loaded: list[float],
    seen: dict[int, int],
    seconds: float,
) -> None:
    print(
        f"GET /api/v1/users/me, {args.cycles} x {args.requests} sequential requests per "
        f"condition, bcrypt cost {args.rounds}, {os.cpu_count()} cores"
    )
    for name, samples in (("idle", idle), (f"{args.flooders} login floods", loaded)):
        p50, p99 = percentile(samples, 50), percentile(samples, 99)
        print(f"  {name:>16}: p50 {p50:6.1f} ms   p99 {p99:6.1f} ms")
    print(f"  p99 ratio (flood / idle): {percentile(loaded, 99) / percentile(idle, 99):.2f}")
    print(f"  p50 ratio (flood / idle): {percentile(loaded, 50) / percentile(idle, 50):.2f}")
    logins = ", ".join(f"{count} x {status}" for status, count in sorted(seen.items()))
    print(f"  the flood's logins in about {seconds:.1f} s: {logins}")


if __name__ == "__main__":
    main()
