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


def _servers(folder: Path) -> Iterator[Serve]:
    """Start `doxa serve` (HTTP only) with extra environment; the HTTP port once it serves."""
    servers: list[subprocess.Popen[bytes]] = []

    def start(**environment: str) -> int:
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{folder}/doxa.db",
            "DOXA_ENV": "dev",
            "JWT_SECRET": secrets.token_urlsafe(48),
            "SMTP_ENABLED": "false",
            "PARSER_PROCESSES": "0",
            **environment,
        }
        log = folder / f"serve-{port}.log"
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


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    yield from _servers(tmp_path)


@pytest.fixture(scope="class")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The port of one server with HTTP_MAX_CONNECTIONS=4 for a class's tests (its start-up
    takes seconds); each test closes the connections it opened."""
    for start in _servers(tmp_path_factory.mktemp("capped")):
        yield start(HTTP_MAX_CONNECTIONS="4")


@pytest.fixture
def clients() -> Iterator[list[socket.socket]]:
    """Connections a test opens, closed after it even when it fails (a shared server must not
    start the next test full)."""
    opened: list[socket.socket] = []
    yield opened
    for connection in opened:
        connection.close()


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


# The header timeout the slow clients meet: SPEC's 10 s (TestSetting checks the default) would
# only make the test wait; 3 s leaves a loaded machine time to open the 600 first.
HEADER_TIMEOUT = 3.0


@pytest.mark.timing
class TestSlowHeaders:
    def test_600_slow_clients_leave_the_server_serving_and_are_closed_after_their_time(
        self, serve: Serve
    ) -> None:
        _enough_descriptors(2000)
        port = serve(HTTP_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT))
        slow: dict[socket.socket, float] = {}
        for _ in range(600):
            connection = socket.create_connection(("127.0.0.1", port), timeout=10)
            connection.sendall(PARTIAL)
            slow[connection] = time.monotonic()
        answers = [_get(port) for _ in range(5)]  # new clients, beside the 600
        assert all(answer.startswith(b"HTTP/1.1 200") for answer, _ in answers)
        assert statistics.median(took for _, took in answers) < 0.1
        deadline = max(slow.values()) + HEADER_TIMEOUT + 5
        closed = self._trickle_until_closed(slow, deadline=deadline)
        assert len(closed) == 600
        lasted = [closed[connection][0] - opened for connection, opened in slow.items()]
        assert min(lasted) >= HEADER_TIMEOUT - 0.1 and max(lasted) <= HEADER_TIMEOUT + 3
        assert all(answer.startswith(b"HTTP/1.1 408") for _, answer in closed.values())

    @staticmethod
    def _trickle_until_closed(
        slow: dict[socket.socket, float], *, deadline: float
    ) -> dict[socket.socket, tuple[float, bytes]]:
        """Send each open connection one more header line every sixth of the timeout (so only
        a limit on the whole header block closes them); when and with what each was closed."""
        closed: dict[socket.socket, tuple[float, bytes]] = {}
        received = {connection: bytearray() for connection in slow}
        selector = selectors.DefaultSelector()
        for connection in slow:
            selector.register(connection, selectors.EVENT_READ)
        every = HEADER_TIMEOUT / 6
        next_line = time.monotonic() + every
        while len(closed) < len(slow) and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.1):
                assert isinstance(key.fileobj, socket.socket)
                connection = key.fileobj
                if _read_until_closed(connection, received[connection]):
                    closed[connection] = (time.monotonic(), bytes(received[connection]))
                    selector.unregister(connection)
            if time.monotonic() >= next_line:
                next_line += every
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
        self, capped: int, clients: list[socket.socket]
    ) -> None:
        port = capped
        idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(4)]
        clients += idle
        idle[0].sendall(PARTIAL)
        answer, _ = _get(port)
        assert answer.startswith(b"HTTP/1.1 200")
        time.sleep(0.5)
        assert _closed(idle[0]) == b""  # the oldest made room, long before its 10 s
        assert all(_closed(connection) is None for connection in idle[1:])

    def test_past_the_cap_with_every_connection_busy_a_new_one_gets_503_problem(
        self, capped: int, clients: list[socket.socket]
    ) -> None:
        port = capped
        busy = []
        for _ in range(4):  # logins whose bodies are still on their way: requests under way
            connection = socket.create_connection(("127.0.0.1", port), timeout=10)
            clients.append(connection)
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


class TestSetting:
    def test_a_client_has_10_s_for_a_requests_headers_by_default(self) -> None:
        assert load_settings(doxa_env="dev", _env_file=None).http_header_timeout_seconds == 10

    @pytest.mark.parametrize("value", ["1", "many"])
    def test_a_bad_http_max_connections_stops_the_start_naming_it(self, value: str) -> None:
        with pytest.raises(ConfigError, match=r"^HTTP_MAX_CONNECTIONS: "):
            load_settings(doxa_env="dev", http_max_connections=value, _env_file=None)
