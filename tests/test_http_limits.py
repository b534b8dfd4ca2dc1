"""HTTP connections under attack, from outside: `doxa serve` on a free port, real sockets."""

from __future__ import annotations

import contextlib
import os
import resource
import secrets
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from doxa.core.config import ConfigError, load_settings
from tests.relays import free_port

DOXA = str(Path(sys.executable).with_name("doxa"))
PARTIAL = b"GET /healthz HTTP/1.1\r\nHost: doxa\r\n"  # the blank line never comes
Serve = Callable[..., int]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """Start `doxa serve` (HTTP only) with extra environment; the HTTP port once it serves."""
    servers: list[subprocess.Popen[bytes]] = []

    def start(**environment: str) -> int:
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp_path}/doxa.db",
            "DOXA_ENV": "dev",
            "JWT_SECRET": secrets.token_urlsafe(48),
            "SMTP_ENABLED": "false",
            "PARSER_PROCESSES": "0",
            **environment,
        }
        log = tmp_path / f"serve-{port}.log"
        with log.open("w") as output:
            server = subprocess.Popen(
                [DOXA, "serve", "--port", str(port)],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        servers.append(server)
        deadline = time.monotonic() + 90
        while "DOXA HTTP on" not in log.read_text():
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        return port

    yield start
    for server in servers:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)


def _enough_descriptors(count: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(count, hard), hard))


def _get(port: int, path: str = "/healthz") -> tuple[bytes, float]:
    """A new client's whole answer, and how long it took."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(f"GET {path} HTTP/1.1\r\nHost: doxa\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    return answer, time.perf_counter() - started


def _read_until_closed(connection: socket.socket, received: bytearray) -> bool:
    """Add what has arrived to `received`; True once the server has closed the connection."""
    connection.setblocking(False)
    try:
        while chunk := connection.recv(65536):
            received += chunk
    except BlockingIOError:
        return False
    except ConnectionResetError:
        pass
    return True


def _closed(connection: socket.socket) -> bytes | None:
    """What the server sent before it closed the connection; None: still open."""
    received = bytearray()
    return bytes(received) if _read_until_closed(connection, received) else None


@pytest.mark.timing
class TestSlowHeaders:
    def test_600_slow_clients_leave_the_server_serving_and_are_closed_after_their_10_s(
        self, serve: Serve
    ) -> None:
        _enough_descriptors(2000)
        port = serve()
        slow: dict[socket.socket, float] = {}
        for _ in range(600):
            connection = socket.create_connection(("127.0.0.1", port), timeout=10)
            connection.sendall(PARTIAL)
            slow[connection] = time.monotonic()
        answers = [_get(port) for _ in range(5)]  # new clients, beside the 600
        assert all(answer.startswith(b"HTTP/1.1 200") for answer, _ in answers)
        assert statistics.median(took for _, took in answers) < 0.1
        closed = self._trickle_until_closed(slow, deadline=max(slow.values()) + 15)
        assert len(closed) == 600
        lasted = [closed[connection][0] - opened for connection, opened in slow.items()]
        assert min(lasted) >= 9.9 and max(lasted) <= 13
        assert all(answer.startswith(b"HTTP/1.1 408") for _, answer in closed.values())

    @staticmethod
    def _trickle_until_closed(
        slow: dict[socket.socket, float], *, deadline: float
    ) -> dict[socket.socket, tuple[float, bytes]]:
        """Send each open connection one more header line a second (so only a limit on the
        whole header block closes them); when and with what each was closed."""
        closed: dict[socket.socket, tuple[float, bytes]] = {}
        received = {connection: bytearray() for connection in slow}
        selector = selectors.DefaultSelector()
        for connection in slow:
            selector.register(connection, selectors.EVENT_READ)
        next_line = time.monotonic() + 1
        while len(closed) < len(slow) and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.2):
                assert isinstance(key.fileobj, socket.socket)
                connection = key.fileobj
                if _read_until_closed(connection, received[connection]):
                    closed[connection] = (time.monotonic(), bytes(received[connection]))
                    selector.unregister(connection)
            if time.monotonic() >= next_line:
                next_line += 1
                for connection in set(slow) - set(closed):
                    with contextlib.suppress(OSError):  # closed: the selector reports it
                        connection.send(b"X-Slow: 1\r\n")
        selector.close()
        for connection in slow:
            connection.close()
        return closed


@pytest.mark.timing
class TestConnectionCap:
    def test_past_the_cap_a_new_client_takes_the_place_of_the_longest_waiting(
        self, serve: Serve
    ) -> None:
        port = serve(HTTP_MAX_CONNECTIONS="20")
        idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(20)]
        idle[0].sendall(PARTIAL)
        answer, _ = _get(port)
        assert answer.startswith(b"HTTP/1.1 200")
        time.sleep(0.5)
        assert _closed(idle[0]) == b""  # the oldest made room, long before its 10 s
        assert all(_closed(connection) is None for connection in idle[1:])
        for connection in idle:
            connection.close()

    def test_past_the_cap_with_every_connection_busy_a_new_one_gets_503_problem(
        self, serve: Serve
    ) -> None:
        port = serve(HTTP_MAX_CONNECTIONS="4")
        busy = []
        for _ in range(4):  # logins whose bodies are still on their way: requests under way
            connection = socket.create_connection(("127.0.0.1", port), timeout=10)
            connection.sendall(
                b"POST /api/v1/auth/login HTTP/1.1\r\nHost: doxa\r\nContent-Length: 100\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n\r\nusername="
            )
            busy.append(connection)
        time.sleep(0.5)
        answer, _ = _get(port)
        assert answer.startswith(b"HTTP/1.1 503")
        assert b"content-type: application/problem+json" in answer.lower()
        busy.pop().close()
        time.sleep(0.5)
        answer, _ = _get(port)
        assert answer.startswith(b"HTTP/1.1 200")
        for connection in busy:
            connection.close()


class TestSetting:
    @pytest.mark.parametrize("value", ["1", "many"])
    def test_a_bad_http_max_connections_stops_the_start_naming_it(self, value: str) -> None:
        with pytest.raises(ConfigError, match=r"^HTTP_MAX_CONNECTIONS: "):
            load_settings(doxa_env="dev", http_max_connections=value, _env_file=None)
