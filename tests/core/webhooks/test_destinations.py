"""Where an outbound webhook may go (issue 22, SSRF). No traffic leaves loopback: public
addresses only ever meet `check`, or a `post` refused before it connects."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from doxa.core.webhooks.destinations import Allowed, Refused, check, post

PUBLIC = "93.184.215.14"  # example.com; judged, never connected to
LOOPBACK = Allowed.parse("127.0.0.1")


class Answers:
    """A resolver that gives each call the next list of answers (the last one repeats)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        return self.answers[min(len(self.calls), len(self.answers)) - 1]


class Receiver(ThreadingHTTPServer):
    daemon_threads = True
    status = 200
    location: str | None = None
    reply = b"ok"

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, dict[str, str], bytes]] = []

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a refused TLS handshake is what some tests expect


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests.append(
            (self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        )
        self.send_response(self.server.status)
        if self.server.location:
            self.send_header("Location", self.server.location)
        self.send_header("Content-Length", str(len(self.server.reply)))
        self.end_headers()
        self.wfile.write(self.server.reply)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serving(server: Receiver) -> Iterator[Receiver]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving(Receiver()) as server:
        yield server


@contextmanager
def raw_server(behaviour: Callable[[socket.socket], None]) -> Iterator[int]:
    """A listener on loopback whose first connection gets `behaviour`; yields the port."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, suppress(OSError):  # the client gave up: what these servers wait for
            behaviour(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        thread.join(5)


class TestCheck:
    @pytest.mark.parametrize(
        "address",
        [
            "127.0.0.1",
            "::1",
            "::ffff:127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b:1::808:808",
            "2002:7f00:0001::",
            "::127.0.0.1",
            "100.100.100.200",
            "169.254.169.254",
            "192.0.0.192",
            "fd00:ec2::254",
            "100.64.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "fc00::1",
            "fe80::1",
            "0.0.0.0",  # noqa: S104 (judged, never bound)
            "::",
            "224.0.0.1",
            "ff02::1",
            "255.255.255.255",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "2001:db8::1",
        ],
    )
    def test_a_name_resolving_to_a_non_global_address_is_refused(self, address: str) -> None:
        with pytest.raises(Refused, match=r"^hooks\.test resolves to "):
            check("https://hooks.test/", resolve=Answers([address]))

    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://017700000001/",
            "http://127.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://[64:ff9b::7f00:1]/",
            "http://0xa9.0xfe.0xa9.0xfe/",
        ],
    )
    def test_any_spelling_of_a_non_global_address_is_refused(self, url: str) -> None:
        with pytest.raises(Refused, match=r"is (loopback|a cloud metadata address)$"):
            check(url, resolve=Answers())

    @pytest.mark.parametrize(
        ("url", "reason"),
        [
            ("ftp://hooks.test/", "only http"),
            ("https://user:pw@hooks.test/", "credentials"),
            ("https:///path", "no host"),
            ("https://1.2.3.4.5/", "neither an IPv4 address"),
            ("https://hooks.test:0/", "port 0"),
            ("https://hooks.test/a b", "spaces"),
        ],
    )
    def test_an_unusable_url_is_refused_with_its_reason(self, url: str, reason: str) -> None:
        with pytest.raises(Refused, match=reason):
            check(url, resolve=Answers([PUBLIC]))

    def test_one_bad_answer_among_good_ones_refuses_the_name(self) -> None:
        with pytest.raises(Refused, match=r"10\.0\.0\.1\ is\ private"):
            check("https://hooks.test/", resolve=Answers([PUBLIC, "10.0.0.1"]))

    @pytest.mark.parametrize(
        "url", ["https://hooks.test/", f"http://{PUBLIC}:8080/", "http://[64:ff9b::808:808]/"]
    )
    def test_a_global_address_passes_without_a_connection(self, url: str) -> None:
        check(url, resolve=Answers([PUBLIC]))  # the resolver answers; nothing connects

    def test_a_name_that_does_not_resolve_is_refused(self) -> None:
        def fails(host: str, port: int) -> list[str]:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

        with pytest.raises(Refused, match=r"hooks\.test\ does\ not\ resolve"):
            check("https://hooks.test/", resolve=fails)


class TestAllowed:
    def test_listed_names_addresses_and_networks_are_let_through(self) -> None:
        allowed = Allowed.parse("127.0.0.1, Hooks.Internal ,10.0.0.0/8")
        check("http://127.0.0.1:9/", allowed=allowed)
        check("http://[::ffff:127.0.0.1]/", allowed=allowed)
        check("http://hooks.internal/", allowed=allowed, resolve=Answers(["192.168.1.9"]))
        check("http://x.test/", allowed=allowed, resolve=Answers(["10.9.9.9"]))
        with pytest.raises(Refused, match=r"192\.168\.1\.9\ is\ private"):
            check("http://x.test/", allowed=allowed, resolve=Answers(["192.168.1.9"]))

    @pytest.mark.parametrize("setting", ["10.0.0.0/33", "not a host", "10.0.0"])
    def test_an_entry_that_is_neither_is_an_error(self, setting: str) -> None:
        with pytest.raises(ValueError, match="not a host name"):
            Allowed.parse(setting)


class TestPost:
    def test_the_receiver_gets_the_body_and_headers(self, receiver: Receiver) -> None:
        url = f"http://127.0.0.1:{receiver.port}/hook?x=1"
        response = post(url, b'{"a":1}', {"webhook-id": "evt_1"}, allowed=LOOPBACK)
        assert (response.status, response.body, response.headers["content-length"]) == (
            200,
            b"ok",
            "2",
        )
        path, headers, body = receiver.requests[0]
        assert (path, body, headers["webhook-id"]) == ("/hook?x=1", b'{"a":1}', "evt_1")

    def test_a_changed_dns_answer_is_checked_again_and_refused(self, receiver: Receiver) -> None:
        url = f"http://hooks.test:{receiver.port}/"
        answers = Answers([PUBLIC], ["127.0.0.1"])
        check(url, resolve=answers)
        with pytest.raises(Refused, match=r"127\.0\.0\.1\ is\ loopback"):
            post(url, b"{}", {}, resolve=answers)
        assert receiver.requests == []

    def test_the_connection_goes_to_the_address_checked(self, receiver: Receiver) -> None:
        # Resolving "hooks.test" again (here or by any library) would give a public address or
        # nothing at all; the post only arrives if the checked address was used.
        answers = Answers(["127.0.0.1"], [PUBLIC])
        response = post(
            f"http://hooks.test:{receiver.port}/", b"{}", {}, allowed=LOOPBACK, resolve=answers
        )
        assert response.status == 200 and answers.calls == ["hooks.test"]
        assert receiver.requests[0][1]["host"] == f"hooks.test:{receiver.port}"

    def test_a_redirect_is_returned_not_followed(self, receiver: Receiver) -> None:
        receiver.status, receiver.location = 302, f"http://127.0.0.1:{receiver.port}/elsewhere"
        response = post(f"http://127.0.0.1:{receiver.port}/", b"{}", {}, allowed=LOOPBACK)
        assert response.status == 302 and response.headers["location"].endswith("/elsewhere")
        assert [path for path, _, _ in receiver.requests] == ["/"]

    def test_proxies_from_the_environment_are_ignored(
        self, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{dead_port()}")
        response = post(f"http://127.0.0.1:{receiver.port}/", b"{}", {}, allowed=LOOPBACK)
        assert response.status == 200 and len(receiver.requests) == 1

    def test_only_the_first_4_kib_of_the_body_is_kept(self, receiver: Receiver) -> None:
        receiver.reply = b"x" * 10_000
        response = post(f"http://127.0.0.1:{receiver.port}/", b"{}", {}, allowed=LOOPBACK)
        assert response.body == b"x" * 4096

    def test_a_refused_port_is_a_connection_error(self) -> None:
        with pytest.raises(ConnectionError, match=r"127\.0\.0\.1"):
            post(f"http://127.0.0.1:{dead_port()}/", b"{}", {}, allowed=LOOPBACK)

    def test_headers_over_the_cap_are_a_connection_error(self) -> None:
        def flood(conn: socket.socket) -> None:
            conn.sendall(b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 100_000 + b"\r\n")

        with raw_server(flood) as port, pytest.raises(ConnectionError, match="over 64 KiB"):
            post(f"http://127.0.0.1:{port}/", b"{}", {}, allowed=LOOPBACK, timeout=5)

    @pytest.mark.timing
    def test_a_server_that_never_answers_times_out(self) -> None:
        listener = socket.create_server(("127.0.0.1", 0))  # connections wait in the backlog
        with listener:
            started = time.monotonic()
            with pytest.raises(TimeoutError, match="no answer within 1 s"):
                post(
                    f"http://127.0.0.1:{listener.getsockname()[1]}/",
                    b"{}",
                    {},
                    allowed=LOOPBACK,
                    timeout=1,
                )
            assert time.monotonic() - started < 2

    @pytest.mark.timing
    def test_headers_trickled_forever_are_cut_at_the_timeout(self) -> None:
        def trickle(conn: socket.socket) -> None:
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            for _ in range(200):
                conn.sendall(b"X-Slow: a\r\n")
                time.sleep(0.05)

        with raw_server(trickle) as port:
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                post(f"http://127.0.0.1:{port}/", b"{}", {}, allowed=LOOPBACK, timeout=1)
            assert time.monotonic() - started < 2


def dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def certificate(
    directory: Path, name: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, Path]:
    """A certificate for `name` (a CA when it has no issuer); its PEM chain and key in one file."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False
        )
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    path = directory / f"{name}.pem"
    path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key, path


class TestPostOverTls:
    @pytest.fixture
    def authority(
        self, tmp_path: Path
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, Path]:
        return certificate(tmp_path, "Test CA", None)

    @contextmanager
    def tls_receiver(self, chain: Path) -> Iterator[Receiver]:
        server = Receiver()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(chain)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        with serving(server):
            yield server

    def test_a_certificate_for_the_name_from_a_trusted_ca_connects(
        self, tmp_path: Path, authority: tuple[x509.Certificate, ec.EllipticCurvePrivateKey, Path]
    ) -> None:
        _, _, chain = certificate(tmp_path, "hooks.test", authority[:2])
        trust = ssl.create_default_context(cafile=str(authority[2]))
        with self.tls_receiver(chain) as server:
            url = f"https://hooks.test:{server.port}/"
            response = post(
                url, b"{}", {}, allowed=LOOPBACK, resolve=Answers(["127.0.0.1"]), tls=trust
            )
        assert response.status == 200 and server.requests[0][2] == b"{}"

    def test_a_certificate_for_another_name_is_refused(
        self, tmp_path: Path, authority: tuple[x509.Certificate, ec.EllipticCurvePrivateKey, Path]
    ) -> None:
        _, _, chain = certificate(tmp_path, "localhost", authority[:2])
        trust = ssl.create_default_context(cafile=str(authority[2]))
        with self.tls_receiver(chain) as server, pytest.raises(ConnectionError, match="mismatch"):
            url = f"https://hooks.test:{server.port}/"
            post(url, b"{}", {}, allowed=LOOPBACK, resolve=Answers(["127.0.0.1"]), tls=trust)
        assert server.requests == []

    def test_a_self_signed_certificate_is_refused_by_the_system_trust(self, tmp_path: Path) -> None:
        _, _, chain = certificate(tmp_path, "localhost", None)
        with (
            self.tls_receiver(chain) as server,
            pytest.raises(ConnectionError, match="verify failed"),
        ):
            url = f"https://hooks.test:{server.port}/"
            post(url, b"{}", {}, allowed=LOOPBACK, resolve=Answers(["127.0.0.1"]))
        assert server.requests == []
