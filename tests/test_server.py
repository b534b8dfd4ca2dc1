"""`doxa serve` as an operator meets it: a taken port, the banner, Ctrl-C."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.probes import imported
from tests.relays import free_port

DOXA = str(Path(sys.executable).with_name("doxa"))


@pytest.fixture
def environment(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path}/doxa.db",
        "DOXA_ENV": "dev",
        "JWT_SECRET": secrets.token_urlsafe(48),  # no warning about a random key
        "BCRYPT_ROUNDS": "4",
    }


@pytest.fixture
def taken() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield int(other.getsockname()[1])


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


class TestTakenPort:
    @pytest.mark.parametrize(
        ("listener", "setting"), [("--port", "HTTP_PORT"), ("--smtp-port", "SMTP_PORT")]
    )
    def test_a_taken_port_is_one_line_and_a_failing_exit(
        self, environment: dict[str, str], taken: int, listener: str, setting: str
    ) -> None:
        ports = {"--port": str(free_port()), "--smtp-port": str(free_port()), listener: str(taken)}
        command = [DOXA, "serve", *(part for pair in ports.items() for part in pair)]
        result = subprocess.run(
            command, env=environment, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 1
        assert result.stdout == ""  # no banner for a server that never ran
        assert result.stderr.splitlines() == [
            f"error: {setting[:4]} port {taken} on 127.0.0.1 is already in use: stop what uses "
            f"it, or choose another port ({setting[:4]}_HOST, {setting}, "
            + ("--host, --port)" if listener == "--port" else "--smtp-port)")
        ]


def _wait_for_banner(server: subprocess.Popen[bytes], log: Path) -> None:
    """Until the server says it serves (or fails, or 90 s pass)."""
    deadline = time.monotonic() + 90
    while "DOXA HTTP on" not in log.read_text():
        assert server.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


def _serve(
    environment: dict[str, str], tmp_path: Path, *, new_session: bool = False
) -> tuple[subprocess.Popen[bytes], Path, int, int]:
    """`doxa serve` on free ports, its output in a log: the process, the log, HTTP and SMTP."""
    http, smtp = free_port(), free_port()
    log = tmp_path / "serve.log"
    command = [DOXA, "serve", "--port", str(http), "--smtp-port", str(smtp)]
    with log.open("w") as output:
        server = subprocess.Popen(
            command,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )
    return server, log, http, smtp


class TestRunning:
    def test_the_banner_comes_once_both_listen_and_ctrl_c_stops_quietly(
        self, environment: dict[str, str], tmp_path: Path
    ) -> None:
        # A session of its own, so Ctrl-C can reach the whole group, as a terminal's does.
        server, log, http, smtp = _serve(environment, tmp_path, new_session=True)
        try:
            _wait_for_banner(server, log)
            assert _accepts(http) and _accepts(smtp)  # already, when the banner says so
            os.killpg(server.pid, signal.SIGINT)  # the worker process may still be starting
            assert server.wait(timeout=60) == 0
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGKILL)
        lines = log.read_text().splitlines()
        banner = lines.index(
            f"DOXA HTTP on http://127.0.0.1:{http} (Swagger UI: /docs, ReDoc: /redoc)"
        )
        assert any(f"SMTP listening on 127.0.0.1:{smtp}" in line for line in lines[:banner])
        assert "Traceback" not in log.read_text() and "KeyboardInterrupt" not in log.read_text()
        assert "Finished server process" in lines[-1]

    @pytest.mark.timing  # a bound on the time to stop
    def test_a_server_stopped_as_soon_as_it_is_up_exits_within_a_second_and_a_half(
        self, environment: dict[str, str], tmp_path: Path
    ) -> None:
        """Its worker processes are still starting then: they are ended, not waited for."""
        server, log, _, _ = _serve(environment, tmp_path)
        try:
            _wait_for_banner(server, log)
            started = time.monotonic()
            server.send_signal(signal.SIGINT)
            assert server.wait(timeout=60) == 0
            assert time.monotonic() - started < 1.5, log.read_text()
        finally:
            if server.poll() is None:
                server.kill()


class TestImports:
    def test_the_app_imports_no_scikit_learn_until_it_loads_a_model(self) -> None:
        """scikit-learn comes with the model, loaded in the background once the server has
        started: importing it with the app made the start 0.8 s longer."""
        _, heavy = imported("import doxa.main", ("sklearn", "scipy", "joblib"))
        assert heavy == []
