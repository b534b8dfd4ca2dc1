"""stand-in: replaced by the ssrf branch at merge.

Where outbound webhooks may go, and the one POST that reaches them. This temporary version keeps
the names and signatures the ssrf branch provides (Refused, Resolver, system_resolver, Allowed,
NONE_ALLOWED, check, Response, post) but checks only the scheme: no address is refused here.
"""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

Resolver = Callable[[str, int], Sequence[str]]
MAX_RESPONSE_BYTES = 65_536


class Refused(Exception):
    """The destination may not be reached (a permanent failure)."""


def system_resolver(host: str, port: int) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, port)})


@dataclass(frozen=True, slots=True)
class Allowed:
    """Hosts or networks reachable although private (WEBHOOK_ALLOWED_HOSTS)."""

    entries: tuple[str, ...] = ()

    @classmethod
    def parse(cls, setting: str | None) -> Allowed:
        return cls(tuple(filter(None, (part.strip() for part in (setting or "").split(",")))))

    def permits(self, host: str, address: str) -> bool:
        return host in self.entries or address in self.entries


NONE_ALLOWED = Allowed()


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Mapping[str, str]
    elapsed_ms: int
    body: bytes


def check(url: str, *, allowed: Allowed, resolve: Resolver = system_resolver) -> None:
    """Refused unless `url` is an http or https URL with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused("must be an http:// or https:// URL with a host")


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout: float = 10.0,
    allowed: Allowed = NONE_ALLOWED,
    resolve: Resolver = system_resolver,
) -> Response:
    """POST `body` once: no redirect followed, no proxy from the environment."""
    check(url, allowed=allowed, resolve=resolve)
    parts = urlsplit(url)
    connection_type = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_type(parts.hostname or "", parts.port, timeout=timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    started = time.monotonic()
    try:
        connection.request("POST", target, body=body, headers=dict(headers))
        answer = connection.getresponse()
        content = answer.read(MAX_RESPONSE_BYTES)
    except OSError as exc:
        if isinstance(exc, TimeoutError | socket.timeout):
            raise TimeoutError(f"no answer within {timeout} s") from exc
        raise ConnectionError(str(exc) or type(exc).__name__) from exc
    except http.client.HTTPException as exc:
        raise ConnectionError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        connection.close()
    elapsed = int((time.monotonic() - started) * 1000)
    return Response(answer.status, dict(answer.getheaders()), elapsed, content)
