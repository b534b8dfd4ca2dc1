"""HTTP connections, bounded: at most HTTP_MAX_CONNECTIONS at once, and
HTTP_HEADER_TIMEOUT_SECONDS for a client to send a request's headers.

Uvicorn bounds neither. `limit_concurrency` answers 503 only once a request's headers have
arrived, so a connection that never completes them is never refused, and no timer runs while
headers arrive (its keep-alive timer stops at the first byte): 600 connections sending partial
headers stayed open for good. So `doxa serve` runs Uvicorn's httptools protocol with a gate:

- a timer from a connection's start, and again after each response, closes it when the next
  request's headers are not complete in time (a partly sent request is answered 408 first);
- past the cap, the connection that has waited longest for a request is closed to make room,
  so idle or slow connections cannot keep a new client out however many there are; only when
  every connection has a request under way is the new one answered 503 and closed.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from doxa.http import problems

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 1
# After a 408 or 503 the connection still reads (and drops) what the client sends for this
# long: closed with unread input, it would be reset, and the client might never read the answer.
LINGER_SECONDS = 1.0
# Descriptors beside the HTTP connections: SMTP sessions are counted apart, these are for the
# database, spooled files, worker pipes and the like.
OTHER_DESCRIPTORS = 256


FULL = problems.closing(
    503,
    "too many connections are busy; try again shortly",
    b"retry-after: " + str(RETRY_AFTER_SECONDS).encode(),
)
TOO_SLOW = problems.closing(408, "the request's headers took too long to arrive")


class ConnectionGate:
    """The open HTTP connections of one server, and those waiting for a request's headers
    (longest waiting first)."""

    def __init__(self, limit: int, *, header_timeout: float) -> None:
        self.limit, self.header_timeout = limit, header_timeout
        self.open: set[GuardedHttp] = set()
        self.waiting: dict[GuardedHttp, None] = {}  # insertion-ordered: the oldest first

    def admit(self, connection: GuardedHttp) -> bool:
        """Count a new connection in, making room if the cap is reached; False: no room."""
        if len(self.open) >= self.limit:
            if not self.waiting:
                return False
            oldest = next(iter(self.waiting))
            self.release(oldest)
            oldest.transport.close()
        self.open.add(connection)
        return True

    def release(self, connection: GuardedHttp) -> None:
        self.open.discard(connection)
        self.waiting.pop(connection, None)


class GuardedHttp(HttpToolsProtocol):
    """Uvicorn's HTTP/1.1 protocol, counted by a gate and timed while headers arrive; `guarded`
    builds it for one gate."""

    gate: ConnectionGate

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timer: asyncio.TimerHandle | None = None
        self.partial = False  # bytes of a request have arrived, its headers are not complete
        self.answered = False  # a 408 or 503 was sent: what still comes is dropped

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.gate.admit(self):
            self._wait_for_headers()
        else:
            self._answer_and_close(FULL)

    def data_received(self, data: bytes) -> None:
        if not self.answered:
            super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.gate.release(self)
        self._stop_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.partial = True

    def on_headers_complete(self) -> None:
        self.partial = False
        self.gate.waiting.pop(self, None)
        self._stop_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        under_way = self.cycle is not None and not self.cycle.response_complete
        if not (self.transport.is_closing() or under_way or self.pipeline):
            self._wait_for_headers()

    def _wait_for_headers(self) -> None:
        if self not in self.gate.open:  # made room for another: closing
            return
        self.gate.waiting[self] = None
        self._stop_timer()
        self.header_timer = self.loop.call_later(self.gate.header_timeout, self._too_slow)

    def _stop_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _too_slow(self) -> None:
        self.header_timer = None
        if self.transport.is_closing():
            return
        if self.partial:
            self._answer_and_close(TOO_SLOW)
        else:
            self.transport.close()

    def _answer_and_close(self, answer: bytes) -> None:
        self.answered = True
        self.gate.release(self)
        self.transport.write(answer)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def guarded(gate: ConnectionGate) -> type[GuardedHttp]:
    """The protocol class Uvicorn builds each connection with, bound to `gate`."""
    return type("GuardedHttp", (GuardedHttp,), {"gate": gate})


def descriptors_for(connections: int) -> None:
    """Raise the soft descriptor limit so that `connections` fit beside everything else; say
    so in one line when the hard limit does not allow it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + OTHER_DESCRIPTORS
    if soft >= wanted:
        return
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    except (ValueError, OSError):
        pass
    if soft < wanted:
        log.warning(
            "HTTP_MAX_CONNECTIONS=%d needs about %d open files, the process may open %d: "
            "raise the limit (ulimit -n) or lower the setting",
            connections,
            wanted,
            soft,
        )
