"""The SMTP edge: aiosmtpd hooks that store raw mail durably and answer with reply codes.

`250` is sent only after the raw message is committed to the intake table; if the database
cannot take it the sender hears `451 4.3.0` and retries later. Processing (parsing, threading,
tickets) happens after the reply, on the intake worker, so a slow parse never holds a client.
"""

from __future__ import annotations

import asyncio
import logging
import re
import resource
import socket
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import IO, Any, AnyStr

import anyio
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from doxa import metrics
from doxa.core.config import IPNetwork, Settings, in_networks
from doxa.core.enums import Channel
from doxa.core.intake.pipeline import Accepted, Pipeline, Submission, message_id_of
from doxa.gateway.accepting import Lanes
from doxa.runtime.loops import LoopThread, ToLoop
from doxa.runtime.pacing import Pacer

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 50
# Commands a session may repeat before it is dropped (a crude brake on abusive clients).
COMMAND_CALL_LIMIT = 1000
TOO_BIG = "552 5.3.4 Message too big for system"
RETRY_LATER = "451 4.3.0 Temporary failure storing the message, please retry"
TOO_MANY = b"421 4.7.0 Too many connections, try again later\r\n"
IDLE_CLOSED = b"421 4.4.2 Too many connections: closing a session idle without MAIL\r\n"
# Sessions from TRUSTED_RELAYS beyond the caps: 200 idle sessions from 10 addresses had locked
# out the relay itself. Twenty is Postfix's default concurrency towards one destination.
TRUSTED_RESERVE = 20
# Above this share of SMTP_MAX_CONNECTIONS, a session that has not sent MAIL for
# IDLE_BEFORE_MAIL_SECONDS (since it opened or since its last MAIL or message; NOOP, RSET, HELO
# do not count) gets IDLE_CLOSED: idle sessions cannot hold the listener's places for long.
CROWDED_SHARE = 0.8
IDLE_BEFORE_MAIL_SECONDS = 10.0
# How often that is checked: a session is closed at most this late (a check is one comparison
# while the listener is not crowded).
IDLE_SWEEP_SECONDS = 0.25
# DATA beyond this is written to a temporary file while it arrives: sessions that stall in
# DATA hold disk, not memory (16 sessions holding 20 MiB each added 360 MB before).
SPOOL_BYTES = 1024 * 1024
# File descriptors kept for the API, the database pools, worker pipes and files whatever the
# SMTP sessions do: 1,100 idle connections against a limit of 1,024 took /healthz down.
RESERVED_DESCRIPTORS = 256
# One line per kind of event-loop error (accept failing for want of descriptors) per period.
LOOP_ERROR_LOG_SECONDS = 10.0


_STUFFED_DOT = re.compile(rb"(?<=\n)\.")
# The stream buffer's limit: DATA is taken in pieces of about this size, so the buffer holds at
# most twice it (asyncio pauses reading beyond that), and longer command lines are refused.
READ_LIMIT = 256 * 1024


class DoxaSMTP(SMTP):
    """aiosmtpd's server with a bulk DATA reader.

    aiosmtpd reads DATA a line at a time in Python; with many clients that starves the event
    loop the HTTP API shares. Here each piece of the body is scanned for CRLF.CRLF in C and
    appended to one buffer: a 25 MiB message is held once, not once per copy that reading it
    whole from the stream would make.
    """

    line_length_limit = READ_LIMIT

    def __init__(self, handler: IntakeHandler, *, gate: SessionGate, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.gate, self.client, self.admitted, self.trusted = gate, "", False, False
        # Since when the session has been waiting to send MAIL; None while a message is read
        # and stored (that takes as long as its size needs).
        self.waiting_since: float | None = None

    def _create_envelope(self) -> SpooledEnvelope:
        return SpooledEnvelope()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self.admitted:  # not a STARTTLS upgrade of an admitted session
            peer = transport.get_extra_info("peername")
            self.client = str(peer[0]) if isinstance(peer, tuple) and peer else ""
            self.trusted = self.gate.trusts(self.client)
            if not self.gate.admit(self.client, trusted=self.trusted):
                if isinstance(transport, asyncio.WriteTransport):
                    transport.write(TOO_MANY)
                transport.close()
                return
            self.admitted, self.waiting_since = True, time.monotonic()
            self.gate.sessions.add(self)
        super().connection_made(transport)

    def close_idle(self) -> None:
        """Tell the client the session is closed for want of MAIL, and close it."""
        transport = self.transport
        if isinstance(transport, asyncio.WriteTransport) and not transport.is_closing():
            transport.write(IDLE_CLOSED)
            transport.close()

    def connection_lost(self, error: Exception | None) -> None:
        if not self.admitted:
            return  # refused at connection_made: aiosmtpd never started this session
        self.admitted = False
        self.gate.release(self.client, trusted=self.trusted)
        self.gate.sessions.discard(self)
        envelope = self.envelope
        if isinstance(envelope, SpooledEnvelope):
            envelope.discard()
        super().connection_lost(error)

    async def push(self, status: AnyStr) -> None:
        metrics.smtp_reply(status)
        # aiosmtpd's size refusals carry no enhanced status code; the SPEC asks for 5.3.4.
        if isinstance(status, str) and status.startswith("552 Error"):
            await super().push(TOO_BIG)
            return
        await super().push(status)

    async def smtp_MAIL(self, arg: str | None) -> None:
        await super().smtp_MAIL(arg)
        if self.envelope is not None and self.envelope.mail_from is not None:
            self.waiting_since = time.monotonic()

    async def smtp_DATA(self, arg: str) -> None:
        try:
            self.waiting_since = None
            await self._data(arg)
        finally:
            self.waiting_since = time.monotonic()

    async def _data(self, arg: str) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        if self.envelope is None or not self.envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        envelope = self.envelope
        if not isinstance(envelope, SpooledEnvelope):  # _create_envelope makes every one
            raise TypeError("DoxaSMTP sessions carry a SpooledEnvelope")
        envelope.spool = Spool()
        try:
            if not await read_data(self._reader, self.data_size_limit or 0, envelope.spool):
                self._set_post_data_state()  # type: ignore[no-untyped-call]
                await self.push(TOO_BIG)
                return
            status = await self._call_handler_hook("DATA")
        finally:
            envelope.discard()
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push(status)


class Spool:
    """One message's DATA as it arrives: in memory up to `SPOOL_BYTES`, then in a temporary file."""

    def __init__(self) -> None:
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
        self.size = 0

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.size += len(data)

    def clear(self) -> None:
        self.file.seek(0)
        self.file.truncate()
        self.size = 0

    def read(self) -> bytearray:
        """The whole message, read into one buffer (held once, only while it is stored)."""
        data = bytearray(self.size)
        self.file.seek(0)
        self.file.readinto(data)  # type: ignore[attr-defined]
        return data

    @property
    def on_disk(self) -> bool:
        return bool(getattr(self.file, "_rolled", False))

    def close(self) -> None:
        self.file.close()


@dataclass(frozen=True, slots=True, eq=False)
class SpooledMessage:
    """A message waiting for its group's commit (see accepting.py): its bytes stay in the
    spool until the committing thread reads them, only while its group is stored."""

    item: Submission  # without its bytes
    spool: Spool
    claims: tuple[()] = ()

    @property
    def size(self) -> int:
        return self.spool.size

    def submission(self) -> Submission:
        raw = self.spool.read()
        return replace(self.item, raw=raw, external_id=message_id_of(raw))

    def close(self) -> None:
        self.spool.close()


class SpooledEnvelope(Envelope):
    """aiosmtpd's envelope with the message data in a `Spool` instead of a bytes value."""

    def __init__(self) -> None:
        super().__init__()
        self.spool: Spool | None = None

    def discard(self) -> None:
        if self.spool is not None:
            self.spool.close()
            self.spool = None


async def read_data(reader: asyncio.StreamReader, limit: int, spool: Spool) -> bool:
    """DATA up to the line ".", unstuffed, into `spool`; False when over `limit` bytes (then it
    is read to its end and dropped).

    The stream's own limit sets the piece size: pieces are written to the spool as they
    arrive, so the message is held once, on disk past `SPOOL_BYTES`. The scan is for LF.CRLF
    and the CR before it is checked in what was read, so a CRLF split between two pieces still
    ends the message.
    """
    first = await reader.readexactly(1)
    if first == b".":  # the first line: the end right away, or a stuffed dot
        first = await reader.readexactly(2)
        if first == b"\r\n":
            return True
    spool.write(first)
    too_big, before = False, first[-1:]  # the stream's byte before the next piece
    while True:
        try:
            piece, found = await reader.readuntil(b"\n.\r\n"), True
        except asyncio.LimitOverrunError as overrun:
            piece, found = await reader.readexactly(overrun.consumed), False
        end = found and (piece[-5:-4] if len(piece) > 4 else before) == b"\r"
        if not too_big:
            spool.write(_unstuffed(piece[:-3] if end else piece, before))
            if limit and spool.size > limit:
                too_big = True  # read on to the end, storing nothing
                spool.clear()
        if end:  # the line "." is dropped; the CRLF before it ends the message
            return not too_big
        before = piece[-1:]


def _unstuffed(piece: bytes, before: bytes) -> bytes:
    """A piece of DATA without the dot that starts a line (RFC 5321 4.5.2).

    `before` is the stream's byte before the piece, not the body's last: that may be a LF
    whose stuffed dot was just removed.
    """
    if piece[:1] == b"." and before == b"\n":
        piece = piece[1:]
    if b"\n." in piece:
        piece = _STUFFED_DOT.sub(b"", piece)
    return piece


class SessionGate:
    """Counts open sessions, in all and per client address; refuses those over either limit.

    Sessions from trusted relays are not counted against either: they have TRUSTED_RESERVE
    places of their own, and beyond those take free places of the total like anyone.
    """

    def __init__(
        self,
        total: int,
        per_client: int,
        *,
        trusted: Iterable[IPNetwork] = (),
        reserve: int = TRUSTED_RESERVE,
    ) -> None:
        self.total, self.per_client, self.reserve = total, per_client, reserve
        self.trusted_networks = tuple(trusted)
        self.open: Counter[str] = Counter()
        self.count = 0  # untrusted sessions
        self.trusted = 0
        self.sessions: set[DoxaSMTP] = set()

    def trusts(self, client: str) -> bool:
        return in_networks(client, self.trusted_networks)

    @property
    def used(self) -> int:
        """Places of the total in use: untrusted sessions and relays' beyond their reserve."""
        return self.count + max(0, self.trusted - self.reserve)

    def admit(self, client: str, *, trusted: bool = False) -> bool:
        if trusted:
            if self.trusted >= self.reserve and self.used >= self.total:
                return False
            self.trusted += 1
            return True
        if self.used >= self.total or self.open[client] >= self.per_client:
            return False
        self.count += 1
        self.open[client] += 1
        return True

    def release(self, client: str, *, trusted: bool = False) -> None:
        if trusted:
            self.trusted -= 1
            return
        self.count -= 1
        self.open[client] -= 1
        if self.open[client] <= 0:
            del self.open[client]

    def idle(self, limit: float) -> list[DoxaSMTP]:
        """Untrusted sessions waiting over `limit` seconds for MAIL, when over CROWDED_SHARE of
        the total is in use; otherwise none."""
        if self.used <= CROWDED_SHARE * self.total:
            return []
        since = time.monotonic() - limit
        return [
            session
            for session in self.sessions
            if not session.trusted
            and session.waiting_since is not None
            and session.waiting_since < since
        ]


def session_limit(wanted: int) -> int:
    """`wanted`, or fewer if the descriptor limit would leave the API less than its reserve.

    The soft limit is raised to the hard one first, as far as the system allows.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 1_048_576 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    allowed = max(1, soft - RESERVED_DESCRIPTORS)
    if allowed < wanted:
        log.warning(
            "SMTP_MAX_CONNECTIONS=%d lowered to %d: the process may open %d files and %d stay "
            "reserved for the API",
            wanted,
            allowed,
            soft,
            RESERVED_DESCRIPTORS,
        )
    return min(wanted, allowed)


class LoopErrorLog:
    """The SMTP loop's exception handler: one line per kind of error per period, with a count.

    When descriptors run out, asyncio reports every failed accept; unthrottled that was
    140,000 lines in 20 s.
    """

    def __init__(self, period: float = LOOP_ERROR_LOG_SECONDS) -> None:
        self.period = period
        self.last: dict[str, float] = {}
        self.suppressed: Counter[str] = Counter()

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        kind = str(context.get("message", "event loop error"))
        now = time.monotonic()
        if now - self.last.get(kind, -self.period) < self.period:
            self.suppressed[kind] += 1
            return
        self.last[kind] = now
        more = self.suppressed.pop(kind, 0)
        exc = context.get("exception")
        log.error(
            "SMTP listener: %s%s%s",
            kind,
            f": {exc!r}" if exc else "",
            f" ({more} more like it in the last {self.period:g} s)" if more else "",
        )


class IntakeHandler:
    """aiosmtpd handler: RCPT filtering, then durable acceptance at DATA, in groups.

    `submit` hears each stored event's id and size on the listener's loop, and carries them to
    the intake worker on the app's loop: `SmtpListener.start` binds it to that loop.
    """

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[DbSession],
        pipeline: Pipeline,
        *,
        submit: ToLoop[[int, int]],
        pacer: Pacer | None = None,
    ) -> None:
        self.settings, self.sessions = settings, sessions
        self.pipeline, self.submit = pipeline, submit
        self.pacer = pacer or Pacer()  # counts messages until their 250; processing gives way
        self.lanes = Lanes(
            sessions, pipeline, submit=submit, committed=metrics.smtp_group_committed
        )
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.settings.mailbox(address) is None:
            return f"550 5.1.1 <{address}>: no such mailbox here (this server does not relay)"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if not isinstance(envelope, SpooledEnvelope) or envelope.spool is None:
            return RETRY_LATER  # DoxaSMTP always spools; refuse rather than store something else
        spool = envelope.spool
        if spool.size > self.settings.max_message_bytes:
            metrics.intake_received("email", "too_big")
            return TOO_BIG
        # The peer decides whether its Authentication-Results header is believed (TRUSTED_RELAYS).
        peer = session.peer[0] if isinstance(session.peer, tuple) else None
        item = Submission(
            channel=Channel.EMAIL,
            raw=b"",
            recipients=list(envelope.rcpt_tos),
            envelope_from=envelope.mail_from,
            extra={"peer": peer},
        )
        envelope.spool = None  # the committer closes it once the message is stored or refused
        answer = self.lanes.enqueue(SpooledMessage(item, spool))
        self.in_flight += 1
        self.idle.clear()
        answer.add_done_callback(self._settled)  # counted until stored, even if the client left
        try:
            with self.pacer.serving():
                accepted: Accepted = await asyncio.shield(answer)
        except Exception:  # logged where it was stored; the sender retries
            metrics.intake_received("email", "unavailable")
            return RETRY_LATER
        metrics.intake_received("email", accepted.status.value)
        return f"250 2.0.0 Accepted as intake event {accepted.id}"

    def _settled(self, _answer: object) -> None:
        self.in_flight -= 1
        if not self.in_flight:
            self.idle.set()


class SmtpListener:
    """The listener, started and stopped by the app's lifespan, on an event loop of its own.

    Measured reason for its own loop (STYLE prefers the app's): with eight clients streaming
    mail, the SMTP callbacks queued ahead of every HTTP request on a shared loop, and the API's
    latency grew tenfold. On its own thread the loop only competes for the GIL.
    """

    def __init__(
        self,
        settings: Settings,
        handler: IntakeHandler,
        *,
        sock: socket.socket | None = None,
    ) -> None:
        self.settings, self.handler = settings, handler
        self.sock = sock  # bound by `doxa serve`, so a taken port is found before start-up
        self.gate = SessionGate(
            session_limit(settings.smtp_max_connections),
            settings.smtp_max_connections_per_client,
            trusted=settings.trusted_relays,
        )
        self.idle_before_mail = IDLE_BEFORE_MAIL_SECONDS  # tests shorten it
        self.server: asyncio.Server | None = None
        self.hostname = socket.gethostname()  # once: aiosmtpd would resolve it per connection
        self.thread = LoopThread("smtp", on_error=LoopErrorLog())

    async def start(self) -> None:
        # The handler's bridge to the intake worker calls onto this (the app's) loop.
        await self.thread.start(self._serve, back=[self.handler.submit])
        log.info("SMTP listening on %s:%s", self.settings.smtp_host, self.port)

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        if self.sock is not None:
            self.server = await loop.create_server(self._protocol, sock=self.sock)
        else:
            host, port = self.settings.smtp_host, self.settings.smtp_port
            self.server = await loop.create_server(self._protocol, host, port)
        loop.call_soon(self._close_idle)

    def _close_idle(self) -> None:
        """Close sessions idle without MAIL while the listener is crowded; again and again."""
        for session in self.gate.idle(self.idle_before_mail):
            session.close_idle()
        every = min(IDLE_SWEEP_SECONDS, self.idle_before_mail / 4)
        asyncio.get_running_loop().call_later(every, self._close_idle)

    def _protocol(self) -> DoxaSMTP:
        return DoxaSMTP(
            self.handler,
            gate=self.gate,
            data_size_limit=self.settings.max_message_bytes,
            enable_SMTPUTF8=True,
            hostname=self.hostname,
            ident="DOXA ESMTP",
            command_call_limit=COMMAND_CALL_LIMIT,
            timeout=120,
            loop=asyncio.get_running_loop(),
        )

    @property
    def port(self) -> int:
        if self.server is None or not self.server.sockets:
            return self.settings.smtp_port
        sockname: Any = self.server.sockets[0].getsockname()
        return int(sockname[1])

    def is_serving(self) -> bool:
        return self.server is not None and self.server.is_serving()

    async def stop(self, grace: float = 30.0) -> None:
        """Stop accepting connections, let messages in DATA finish storing, end the thread."""
        await self.thread.stop(lambda: self._close(grace))

    async def _close(self, grace: float) -> None:
        if self.server is None:
            return
        self.server.close()
        with anyio.move_on_after(grace):
            await self.handler.idle.wait()
        with anyio.move_on_after(1):  # Python 3.12+ also waits for idle connections here
            await self.server.wait_closed()
