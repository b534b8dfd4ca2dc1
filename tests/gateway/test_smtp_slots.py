"""Who gets a place at the SMTP listener when it is full: real sockets and smtplib clients from
distinct loopback addresses (127.0.0.x) against the real listener."""

from __future__ import annotations

import smtplib
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from doxa.core.enums import IntakeStatus
from doxa.gateway.smtp import SmtpListener
from tests.gateway.conftest import Smtp, StartSmtp, message

RELAY = "127.0.0.9"
IDLE = 0.5  # seconds without MAIL before a session is closed (10 in service)
NEVER = 3600.0


def _listener(smtp: Smtp) -> SmtpListener:
    listener: SmtpListener = smtp.http.app.state.smtp_server  # type: ignore[attr-defined]
    return listener


def _banner(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    return sock.recv(200)


@contextmanager
def _sessions(smtp: Smtp, clients: list[str]) -> Iterator[list[socket.socket]]:
    """One idle session from each address in `clients` (repeat one for several)."""
    opened = [
        socket.create_connection(("127.0.0.1", smtp.port), source_address=(client, 0))
        for client in clients
    ]
    try:
        yield opened
    finally:
        for sock in opened:
            sock.close()


def _deliver_from(smtp: Smtp, client: str, subject: str) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", smtp.port, timeout=30, source_address=(client, 0)) as relay:
        relay.ehlo()
        relay.mail("alice@example.org")
        relay.rcpt("support@example.com")
        return relay.data(message(subject).encode())


def _untrusted(count: int, per_address: int) -> list[str]:
    """`count` clients spread over addresses 127.0.0.10 and up, `per_address` each."""
    return [f"127.0.0.{10 + n // per_address}" for n in range(count)]


def _answer_to(sock: socket.socket, command: bytes) -> bytes:
    sock.sendall(command)
    return sock.recv(200)


class TestTrustedRelays:
    def test_a_trusted_relay_gets_220_and_delivers_while_others_fill_every_place(
        self, start_smtp: StartSmtp
    ) -> None:
        smtp = start_smtp(
            smtp_max_connections=20, smtp_max_connections_per_client=2, trusted_relays=RELAY
        )
        with _sessions(smtp, _untrusted(20, 2)) as flood, _sessions(smtp, ["127.0.0.40"]) as late:
            assert [_banner(s)[:3] for s in flood] == [b"220"] * 20
            assert _banner(late[0])[:3] == b"421"  # the caps hold for everyone else
            with _sessions(smtp, [RELAY] * 5) as relay_idle:  # beyond the per-client cap too
                assert [_banner(s)[:3] for s in relay_idle] == [b"220"] * 5
                code, _ = _deliver_from(smtp, RELAY, "Through the relay")
        assert code == 250
        assert [e.status for e in smtp.settle()] == [IntakeStatus.TICKET_CREATED]

    def test_the_relay_reserve_is_twenty_places_beyond_the_caps(
        self, start_smtp: StartSmtp
    ) -> None:
        smtp = start_smtp(smtp_max_connections=4, trusted_relays=RELAY)
        with _sessions(smtp, _untrusted(4, 1)) as flood, _sessions(smtp, [RELAY] * 21) as relay:
            assert [_banner(s)[:3] for s in flood] == [b"220"] * 4
            assert [_banner(s)[:3] for s in relay] == [b"220"] * 20 + [b"421"]


@pytest.mark.timing
class TestIdleSessions:
    """Sessions are opened some milliseconds apart, so they pass their time apart too; a sweep
    between them would close only some, and the crowd would end (below 80 %) before the rest.
    So each test lets the clients wait under an endless limit, then sets the limit they have
    all passed: one sweep meets them all."""

    def test_above_80_percent_sessions_without_mail_get_421_after_their_time(
        self, start_smtp: StartSmtp
    ) -> None:
        smtp = start_smtp(smtp_max_connections=10, smtp_max_connections_per_client=10)
        listener = _listener(smtp)
        listener.idle_before_mail = NEVER
        with _sessions(smtp, _untrusted(9, 1)) as crowd:
            opened = time.monotonic()
            assert [_banner(s)[:3] for s in crowd] == [b"220"] * 9
            busy = crowd[0]  # NOOP, RSET and HELO do not count as MAIL
            for command in (b"HELO me\r\n", b"NOOP\r\n", b"RSET\r\n", b"NOOP\r\n"):
                assert _answer_to(busy, command)[:3] == b"250"
            time.sleep(1.2 * IDLE)
            listener.idle_before_mail = IDLE
            deadline = time.monotonic() + 10 * IDLE
            closing = [_banner(s) for s in crowd]  # each waits for the server's next line
            assert time.monotonic() < deadline
            assert {line[:10] for line in closing} == {b"421 4.4.2 "}
            assert all(s.recv(100) == b"" for s in crowd)  # closed by the server
            assert time.monotonic() - opened >= IDLE
        assert _deliver_from(smtp, "127.0.0.50", "After the idle ones")[0] == 250

    def test_mail_restarts_the_clock(self, start_smtp: StartSmtp) -> None:
        smtp = start_smtp(smtp_max_connections=10, smtp_max_connections_per_client=10)
        listener = _listener(smtp)
        listener.idle_before_mail = NEVER
        with _sessions(smtp, _untrusted(9, 1)) as crowd:
            assert [_banner(s)[:3] for s in crowd] == [b"220"] * 9
            sender = crowd[0]
            assert _answer_to(sender, b"HELO me\r\n")[:3] == b"250"
            time.sleep(2.4 * IDLE)
            assert _answer_to(sender, b"MAIL FROM:<a@example.org>\r\n")[:3] == b"250"
            # The others have waited 2.4 IDLE, the sender (its clock restarted) about a sweep.
            listener.idle_before_mail = 2 * IDLE
            assert [_banner(s)[:3] for s in crowd[1:]] == [b"421"] * 8
            assert _answer_to(sender, b"NOOP\r\n")[:3] == b"250"

    def test_at_80_percent_or_below_idle_sessions_are_kept(self, start_smtp: StartSmtp) -> None:
        smtp = start_smtp(smtp_max_connections=10, smtp_max_connections_per_client=10)
        _listener(smtp).idle_before_mail = IDLE
        with _sessions(smtp, _untrusted(8, 1)) as calm:
            assert [_banner(s)[:3] for s in calm] == [b"220"] * 8
            time.sleep(3 * IDLE)
            assert [_answer_to(s, b"NOOP\r\n")[:3] for s in calm] == [b"250"] * 8

    def test_a_trusted_relay_idle_in_a_crowd_is_kept(self, start_smtp: StartSmtp) -> None:
        smtp = start_smtp(smtp_max_connections=10, trusted_relays=RELAY)
        listener = _listener(smtp)
        listener.idle_before_mail = NEVER
        with _sessions(smtp, _untrusted(9, 1)) as crowd, _sessions(smtp, [RELAY]) as [relay]:
            assert _banner(relay)[:3] == b"220"
            assert [_banner(s)[:3] for s in crowd] == [b"220"] * 9
            time.sleep(1.2 * IDLE)
            listener.idle_before_mail = IDLE
            assert [_banner(s)[:3] for s in crowd] == [b"421"] * 9
            assert _answer_to(relay, b"NOOP\r\n")[:3] == b"250"
