"""`doxa serve`: both ports bound before anything starts, the banner once both listen, and a
quiet stop on Ctrl-C.

A port that is taken is an everyday mistake (a second `make run`), not a crash: it is found
here, before the migration and the app, and reported in one line. The bound sockets are handed
to Uvicorn and to the SMTP listener, so nothing can take the ports in between.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Callable

import uvicorn

from doxa import logs
from doxa.core.config import Settings
from doxa.http import connections
from doxa.main import create_app

STARTUP_FAILURE = 3  # Uvicorn's own exit code when the app's start-up fails


class PortTaken(OSError):
    """A listener's address is in use or not ours to bind; the message says which and what to do."""


def bind(what: str, host: str, port: int, setting: str) -> socket.socket:
    """A TCP socket bound to (host, port), not yet listening; one clear error if it cannot be.

    `setting` names where the address comes from, for the message."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise PortTaken(f"{what} address {host}:{port} cannot be used: {exc}") from None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio does on POSIX
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            problem = "is already in use: stop what uses it, or choose another port"
        elif exc.errno == errno.EACCES:
            problem = "needs privileges DOXA should not have: choose a port above 1023"
        else:
            problem = f"cannot be bound ({exc.strerror or exc}): check the address"
        raise PortTaken(f"{what} port {port} on {host} {problem} ({setting})") from None
    return sock


class _Server(uvicorn.Server):
    """Uvicorn's server, which prints DOXA's banner once the app has started (SMTP listening)
    and the HTTP socket serves."""

    def __init__(self, config: uvicorn.Config, banner: Callable[[], None]) -> None:
        super().__init__(config)
        self.banner = banner

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and not self.should_exit:
            self.banner()


def run(settings: Settings, *, migrate: Callable[[], None] | None = None) -> int:
    """Bind both ports, migrate, serve until a signal; 0 after a clean stop."""
    http = bind(
        "HTTP", settings.http_host, settings.http_port, "HTTP_HOST, HTTP_PORT, --host, --port"
    )
    smtp: socket.socket | None = None
    try:
        if settings.smtp_enabled:
            smtp = bind(
                "SMTP", settings.smtp_host, settings.smtp_port, "SMTP_HOST, SMTP_PORT, --smtp-port"
            )
        if migrate is not None:
            migrate()
        connections.descriptors_for(settings.http_max_connections)
        config = uvicorn.Config(
            create_app(settings, smtp_socket=smtp),
            host=settings.http_host,
            port=settings.http_port,
            log_level="info",
            log_config=logs.config(settings.log_format),
            proxy_headers=False,
            # Connections counted and timed while their headers arrive (see doxa.http.connections);
            # no WebSocket route exists, so no upgrade takes a connection out of that count.
            http=connections.guarded(
                connections.ConnectionGate(
                    settings.http_max_connections,
                    header_timeout=settings.http_header_timeout_seconds,
                )
            ),
            ws="none",
        )
        server = _Server(config, lambda: banner(settings, http, smtp))
        # Uvicorn raises the SIGINT it caught again once it has stopped: that is the stop.
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[http])
        return 0 if server.started else STARTUP_FAILURE
    finally:
        http.close()
        if smtp is not None:
            smtp.close()


def banner(settings: Settings, http: socket.socket, smtp: socket.socket | None) -> None:
    port = http.getsockname()[1]
    print(
        f"DOXA HTTP on http://{settings.http_host}:{port} (Swagger UI: /docs, ReDoc: /redoc)",
        flush=True,
    )
    if smtp is not None:
        mailboxes = ", ".join(box.address for box in settings.support_addresses)
        print(f"DOXA SMTP on {settings.smtp_host}:{smtp.getsockname()[1]} for {mailboxes}")
    if settings.doxa_admin_email:
        print(
            f"Log in as {settings.doxa_admin_email} with DOXA_ADMIN_PASSWORD "
            "(Swagger: Authorize, email as username)"
        )
    else:
        print("No admin configured: run `doxa create-user --email you@example.com --role ADMIN`")
    print("Press Ctrl-C to stop", flush=True)
