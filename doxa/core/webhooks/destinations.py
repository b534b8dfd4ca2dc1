"""Where an outbound webhook may go, and the one HTTP attempt that goes there (SPEC "Events out").

Only global unicast addresses are reached unless WEBHOOK_ALLOWED_HOSTS lists them. Every DNS
answer is judged on every attempt and the socket is opened to an address that was judged, so a
name that answers a public address to `check` and 127.0.0.1 to the attempt (DNS rebinding) never
reaches loopback. The request is written on that socket by hand and the answer parsed by
http.client: no library between us and the socket resolves again, reads proxy variables or
follows a redirect, and every read is bounded by one deadline, so a peer that trickles bytes
holds an attempt no longer than `timeout`.
"""

from __future__ import annotations

import http.client
import io
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

MAX_BODY_BYTES = 4096
# Status line, headers and the body's chunk framing: a peer sending headers forever is cut here.
MAX_RESPONSE_BYTES = 65536
MAX_URL_LENGTH = 2048

_net = ipaddress.ip_network
# Metadata services answer credentials to whoever asks from inside the cloud. Most sit in ranges
# refused anyway; Oracle's (192.0.0.192) and Azure's WireServer (168.63.129.16) look global.
_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192", "168.63.129.16")
)
# Ranges ipaddress does not refuse, or refuses under a vaguer name (its is_global differs
# between Python releases: 100.64/10 is neither global nor private, multicast is "global").
_NAMED: tuple[tuple[IPNetwork, str], ...] = (
    (_net("100.64.0.0/10"), "shared address space (100.64.0.0/10)"),
    (_net("255.255.255.255/32"), "broadcast"),
    (_net("0.0.0.0/8"), "'this network' (0.0.0.0/8)"),
    (_net("192.0.2.0/24"), "documentation"),
    (_net("198.51.100.0/24"), "documentation"),
    (_net("203.0.113.0/24"), "documentation"),
    (_net("2001:db8::/32"), "documentation"),
    (_net("3fff::/20"), "documentation"),
    (_net("198.18.0.0/15"), "benchmarking"),
    (_net("192.88.99.0/24"), "6to4 relay anycast"),
    (_net("2001::/32"), "Teredo"),
    # Where the IPv4 address sits depends on the operator's prefix length: no unwrapping it.
    (_net("64:ff9b:1::/48"), "local-use NAT64"),
)
_NAT64 = _net("64:ff9b::/96")
_IPV6_GLOBAL_UNICAST = _net("2000::/3")
_NAME = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_OURS = frozenset({"host", "content-length", "connection", "transfer-encoding"})


class Refused(Exception):
    """A destination DOXA must not reach; str(exc) is the reason ("127.0.0.1 is loopback")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system's resolver gives for host, in its order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Allowed:
    """WEBHOOK_ALLOWED_HOSTS: names whose every answer is allowed, and addresses or networks."""

    names: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, setting: str | None) -> Allowed:
        """A comma list of host names, IP addresses and networks; ValueError on anything else."""
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for item in filter(None, (part.strip() for part in (setting or "").split(","))):
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                name = _host_name(item)
                if name is None or _NUMERIC_LABEL.fullmatch(name.rsplit(".", 1)[-1]):
                    raise ValueError(
                        f"{item!r} is not a host name, IP address or network"
                    ) from None
                names.add(name)
        return cls(frozenset(names), tuple(networks))

    def permits(self, host: str, address: str) -> bool:
        """Whether host (as `check` writes it) or address (::ffff:a.b.c.d as a.b.c.d) is listed."""
        if host in self.names:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.networks)


NONE_ALLOWED = Allowed()


def refusal(address: IPAddress) -> str | None:
    """Why DOXA must not connect to address, or None for a global unicast one. IPv4 embedded in
    IPv6 (mapped, compatible, 6to4, NAT64, Teredo) is judged first: ::ffff:127.0.0.1 is loopback."""
    embedded, translation = _unwrap(address)
    for inner in embedded:
        why = _why_not(inner)
        if why is not None:
            return f"{address} (carrying {inner}) is {why}"
    if translation:
        return None  # mapped, 6to4 or NAT64: reaches the global IPv4 address it carries
    why = _why_not(address)
    return None if why is None else f"{address} is {why}"


def _unwrap(address: IPAddress) -> tuple[list[ipaddress.IPv4Address], bool]:
    """The IPv4 addresses an IPv6 address carries, and whether it is only their translation."""
    if isinstance(address, ipaddress.IPv4Address):
        return [], False
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped], True
    if address.sixtofour is not None:
        return [address.sixtofour], True
    if address in _NAT64:
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)], True
    if address.teredo is not None:
        return list(address.teredo), False
    if 1 < int(address) < 2**32:  # deprecated IPv4-compatible ::a.b.c.d (refused as reserved)
        return [ipaddress.IPv4Address(int(address))], False
    return [], False


def _why_not(address: IPAddress) -> str | None:
    checks = (
        (address in _METADATA, "a cloud metadata address"),
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
    )
    for failed, why in checks:
        if failed:
            return why
    for network, why in _NAMED:
        if address.version == network.version and address in network:
            return why
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "site-local"
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private"
    if not address.is_global or (
        isinstance(address, ipaddress.IPv6Address) and address not in _IPV6_GLOBAL_UNICAST
    ):
        return "not global unicast"
    return None


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str  # lower-case ASCII name, or an address as ipaddress writes it
    port: int
    literal: IPAddress | None  # the address when the URL names one, in whatever spelling
    path: str

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def _target(url: str) -> _Target:
    if len(url) > MAX_URL_LENGTH:
        raise Refused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise Refused("the URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise Refused("only http:// and https:// URLs are allowed")
    if "@" in parts.netloc:
        raise Refused("credentials in the URL are not allowed")
    if not parts.hostname:
        raise Refused("the URL has no host")
    if port == 0:
        raise Refused("port 0 is not a port")
    literal = _address(parts.hostname)
    host = str(literal) if literal is not None else _host_name(parts.hostname)
    if host is None:
        raise Refused(f"{parts.hostname!r} is not a host name")
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=~-._")
    if parts.query:
        path += "?" + quote(parts.query, safe="/?%:@!$&'()*+,;=~-._")
    default = 443 if parts.scheme == "https" else 80
    return _Target(parts.scheme, host, port or default, literal, path)


def _address(host: str) -> IPAddress | None:
    """The address a URL's host means, in any spelling resolvers accept (2130706433, 0x7f.1,
    017700000001: inet_aton's rules); None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if ":" in host:
        raise Refused(f"{host!r} is not an IPv6 address")
    trimmed = host.removesuffix(".")
    if not _NUMERIC_LABEL.fullmatch(trimmed.rsplit(".", 1)[-1]):
        return None
    parts = trimmed.split(".")
    numbers = [n for n in map(_number, parts) if n is not None]
    if (
        len(numbers) != len(parts)
        or len(parts) > 4
        or any(n > 255 for n in numbers[:-1])
        or numbers[-1] >= 256 ** (5 - len(parts))
    ):
        raise Refused(f"{host!r} is neither an IPv4 address nor a host name")
    value = sum(n << 8 * (3 - i) for i, n in enumerate(numbers[:-1])) + numbers[-1]
    return ipaddress.IPv4Address(value)


def _number(part: str) -> int | None:
    if part.startswith("0x"):
        return int(part[2:] or "0", 16) if re.fullmatch(r"[0-9a-f]*", part[2:]) else None
    if part.startswith("0") and len(part) > 1:
        return int(part, 8) if re.fullmatch(r"[0-7]+", part) else None
    return int(part) if part.isdigit() and part.isascii() else None


def _host_name(host: str) -> str | None:
    """host as DNS asks for it (lower case, IDNA, no final dot), None if it cannot be one."""
    try:
        name = host.lower().removesuffix(".").encode("idna").decode("ascii")
    except UnicodeError:
        return None
    return name if len(name) <= 253 and _NAME.fullmatch(name) else None


def _checked(target: _Target, allowed: Allowed, resolve: Resolver) -> list[str]:
    """The target's addresses, each judged; OSError when the name does not resolve."""
    literal = target.literal
    answers: list[IPAddress] = []
    for answer in [str(literal)] if literal is not None else resolve(target.host, target.port):
        try:
            answers.append(ipaddress.ip_address(answer))
        except ValueError:
            raise Refused(f"{target.host} resolves to {answer!r}, not an IP address") from None
    if not answers:
        raise OSError(f"no address for {target.host}")
    for address in answers:
        why = None if allowed.permits(target.host, str(address)) else refusal(address)
        if why is not None:
            raise Refused(why if literal is not None else f"{target.host} resolves to {why}")
    return list(dict.fromkeys(str(address) for address in answers))


def check(
    url: str, *, allowed: Allowed = NONE_ALLOWED, resolve: Resolver = system_resolver
) -> None:
    """At subscription creation/update: http or https only, no credentials in the URL, a host,
    every DNS answer a global unicast address (or allowed); raises Refused (the API answers 422
    with the reason)."""
    target = _target(url)
    try:
        _checked(target, allowed, resolve)
    except OSError as exc:
        raise Refused(f"{target.host} does not resolve: {_short(exc)}") from None


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]  # lower-case names; repeated headers joined with ", "
    elapsed_ms: int
    body: bytes  # at most the first MAX_BODY_BYTES


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout: float = 10.0,
    allowed: Allowed = NONE_ALLOWED,
    resolve: Resolver = system_resolver,
    tls: ssl.SSLContext | None = None,
) -> Response:
    """One attempt: resolve, check every answer (Refused if any is not allowed), connect to a
    checked address (never resolve again), TLS verified against the URL's host name (`tls`:
    the system's trust unless given), no proxy from the environment, never follow redirects (a
    3xx is just returned), the whole attempt bounded by `timeout` (connect + send + headers +
    the capped body read; the system resolver keeps its own timeouts). Transport failures raise
    TimeoutError or ConnectionError with a short message; a body cut by the deadline or the cap
    is returned as far as it came."""
    started = time.monotonic()
    deadline = started + timeout
    target = _target(url)
    request = _request(target, body, headers)
    try:
        addresses = _checked(target, allowed, resolve)
    except OSError as exc:
        raise ConnectionError(f"{target.host} does not resolve: {_short(exc)}") from exc
    try:
        with _connect(target, addresses, deadline, tls) as sock:
            sock.settimeout(_remaining(deadline))
            sock.sendall(request)
            status, answer, content = _read_response(sock, deadline)
    except TimeoutError as exc:
        raise TimeoutError(f"{target.host_header}: no answer within {timeout:g} s") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise ConnectionError(f"{target.host_header}: {_short(exc)}") from exc
    elapsed_ms = round((time.monotonic() - started) * 1000)
    return Response(status, answer, elapsed_ms, content)


def _request(target: _Target, body: bytes, headers: Mapping[str, str]) -> bytes:
    lines = [
        f"POST {target.path} HTTP/1.1",
        f"Host: {target.host_header}",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name) or any(c in value for c in "\r\n\0"):
            raise ValueError(f"invalid header {name!r}")
        if name.lower() not in _OURS:  # framing is ours: a caller's copy could smuggle a request
            lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("deadline passed")
    return remaining


def _connect(
    target: _Target, addresses: list[str], deadline: float, tls: ssl.SSLContext | None
) -> socket.socket:
    """A socket to the first checked address that accepts (create_connection is handed an
    address, so nothing resolves again), wrapped in TLS verified against the URL's host."""
    error: OSError = ConnectionError("no address")
    for address in addresses:
        try:
            sock = socket.create_connection((address, target.port), timeout=_remaining(deadline))
        except OSError as exc:
            error = exc
            continue
        if target.scheme == "http":
            return sock
        try:
            sock.settimeout(_remaining(deadline))
            context = tls or ssl.create_default_context()
            return context.wrap_socket(sock, server_hostname=target.host)
        except BaseException:
            sock.close()
            raise
    raise error


class _Stream(io.RawIOBase):
    """The socket as http.client reads it: each read within what is left of the deadline, at
    most MAX_RESPONSE_BYTES in all."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline
        self._left = MAX_RESPONSE_BYTES

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        if self._left <= 0:
            raise ConnectionError(f"response over {MAX_RESPONSE_BYTES // 1024} KiB")
        self._sock.settimeout(_remaining(self._deadline))
        view = memoryview(buffer)
        count = self._sock.recv_into(view, min(view.nbytes, self._left))
        self._left -= count
        return count

    def makefile(self, mode: str) -> io.BufferedReader:  # all HTTPResponse asks of its socket
        return io.BufferedReader(self)


def _read_response(sock: socket.socket, deadline: float) -> tuple[int, dict[str, str], bytes]:
    response = http.client.HTTPResponse(cast(socket.socket, _Stream(sock, deadline)), method="POST")
    response.begin()
    headers: dict[str, str] = {}
    for name, value in response.getheaders():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    body = b""
    try:  # the status is the answer; the body only illustrates it in the delivery log
        while len(body) < MAX_BODY_BYTES and (chunk := response.read1(MAX_BODY_BYTES - len(body))):
            body += chunk
    except (OSError, http.client.HTTPException):
        pass
    return response.status, headers, body


def _short(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text)[:200]
