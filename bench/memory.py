"""DOXA's memory from outside (issue 23): proportional set size of every DOXA process.

Usage::

    python bench/memory.py                          # fresh SQLite file, then 10,000 mails
    python bench/memory.py --database-url postgresql://postgres@127.0.0.1:5432/doxa_bench_memory
    python bench/memory.py --mails 0                # "idle" only

`doxa migrate` and `doxa serve` with default settings (only ports, secrets and the database
given), then:

1. idle: one mail through SMTP, waited for until it is a classified ticket, then 5 s quiet;
2. after `--mails` distinct small mails over `--clients` SMTP connections, each a new ticket
   from its own sender, waited for until every one is a classified ticket, then 5 s quiet.

Each time the PSS (Pss in /proc/PID/smaps_rollup: a page shared by N processes counts 1/N in
each, so the sum is what the tree really takes) of the server and each of its child processes,
and their sum. PostgreSQL's own processes are not counted (they are the database's).
"""

from __future__ import annotations

import argparse
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa
from webhooks import (
    _children,
    backend,
    doxa,
    doxa_env,
    free_port,
    recreate_database,
    server,
    sqlalchemy_url,
)

QUIET_SECONDS = 5.0
WAIT_SECONDS = 900.0
MIB = 1024 * 1024


def pss(pid: int) -> int:
    """Bytes of the process's proportional set size; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def name(pid: int) -> str:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    text = " ".join(part.decode(errors="replace") for part in args if part)
    for marker, label in (
        (" serve", "server"),
        ("resource_tracker", "tracker"),
        ("forkserver", "forkserver"),
        ("multiprocessing", "worker"),
    ):
        if marker in text:
            return label
    return text[:40]


def tree(pid: int) -> list[tuple[str, int]]:
    """(name, PSS bytes) of the server and every process below it."""
    found, todo = [], [pid]
    while todo:
        each = todo.pop()
        found.append((name(each), pss(each)))
        todo.extend(_children(each))
    return found


def mail(index: int, smtp_to: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Customer {index} <customer{index}@memory.example>"
    message["To"] = smtp_to
    message["Subject"] = f"Order {index} has not arrived"
    message["Message-ID"] = f"<memory-{index}@memory.example>"
    message.set_content(
        f"Hello,\n\nmy order ORD-{index} was due last week and has not arrived yet.\n"
        "Could you tell me where it is?\n\nThanks\n"
    )
    return message


def send(port: int, first: int, count: int, clients: int) -> None:
    def share(offset: int) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
            for index in range(first + offset, first + count, clients):
                smtp.send_message(mail(index, "support@example.com"))

    threads = [threading.Thread(target=share, args=(n,)) for n in range(min(clients, count))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def wait_classified(url: str, tickets: int) -> float:
    """Seconds until `tickets` tickets exist and none waits for its classification."""
    engine = sa.create_engine(sqlalchemy_url(url))
    query = sa.text(
        "SELECT count(*), count(*) FILTER (WHERE classification_state = 'pending') FROM ticket"
    )
    began = time.monotonic()
    try:
        while time.monotonic() - began < WAIT_SECONDS:
            with engine.connect() as db:
                made, pending = db.execute(query).one()
            if made >= tickets and not pending:
                return time.monotonic() - began
            time.sleep(0.5)
    finally:
        engine.dispose()
    raise SystemExit(f"not every ticket classified after {WAIT_SECONDS:.0f} s")


def report(moment: str, processes: list[tuple[str, int]]) -> None:
    total = sum(size for _, size in processes)
    parts = ", ".join(f"{each} {size / MIB:.0f}" for each, size in processes)
    print(f"{moment:<24} total {total / MIB:6.0f} MiB  ({parts})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="sqlite")
    parser.add_argument("--mails", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="doxa-memory-") as folder:
        scratch = Path(folder)
        url = args.database_url
        if url == "sqlite":
            url = f"sqlite:///{scratch}/doxa.db"
        else:
            recreate_database(url)
        env = doxa_env(url, free_port())
        smtp_port = int(env["SMTP_PORT"])
        ready = f"http://127.0.0.1:{env['HTTP_PORT']}/readyz"
        migrate = subprocess.run(doxa("migrate"), env=env, cwd=scratch, check=False)  # noqa: S603
        if migrate.returncode:
            raise SystemExit("doxa migrate failed")
        print(f"DOXA memory, {backend(url)}, default settings")
        with server(doxa("serve", "--no-migrate"), ready, scratch / "doxa.log", env) as process:
            send(smtp_port, 0, 1, 1)
            wait_classified(url, 1)
            time.sleep(QUIET_SECONDS)
            report("idle (one mail)", tree(process.pid))
            if args.mails:
                began = time.monotonic()
                send(smtp_port, 1, args.mails, args.clients)
                waited = wait_classified(url, 1 + args.mails)
                took = time.monotonic() - began
                print(
                    f"{args.mails} mails sent and classified in {took:.0f} s ({waited:.0f} s wait)"
                )
                time.sleep(QUIET_SECONDS)
                report(f"after {args.mails} mails", tree(process.pid))


if __name__ == "__main__":
    main()
