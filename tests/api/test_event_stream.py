"""GET /api/v1/events/stream: Server-Sent Events from a real server (uvicorn on a free port)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import update

from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.enums import EventType, Role
from doxa.core.events import views
from doxa.core.events.record import SYSTEM, record
from doxa.core.models import User
from doxa.runtime.fanout import EventFanout
from tests.conftest import MakeTicket, MakeUser, make_settings
from tests.relays import free_port

PATH = "/api/v1/events/stream"
Sse = dict[str, str]


class Server:
    def __init__(self, app: FastAPI, url: str, context: Context) -> None:
        self.app, self.url, self.context = app, url, context

    @property
    def fanout(self) -> EventFanout:
        fanout: EventFanout = self.app.state.event_fanout
        return fanout

    def token(self, user: User) -> str:
        return self.context.tokens.issue(user.id, user.token_version)

    @contextmanager
    def stream(self, user: User | None = None, **options: Any) -> Iterator[Stream]:
        headers = {"Authorization": f"Bearer {self.token(user)}"} if user else {}
        headers |= options.pop("headers", {})
        with httpx.stream(
            "GET", self.url + PATH, headers=headers, timeout=10, **options
        ) as response:
            yield Stream(response)


Serve = Callable[..., Server]


@pytest.fixture
def serve(clean: Context) -> Iterator[Serve]:
    """The app on a real port, with quick keep-alives and whatever settings a test gives."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(**overrides: object) -> Server:
        values: dict[str, object] = {"event_stream_keepalive_seconds": 0.3, **overrides}
        app = create_app_for(clean, values)
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
        )
        thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        return Server(app, f"http://127.0.0.1:{server.config.port}", clean)

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(30)


def create_app_for(context: Context, overrides: dict[str, object]) -> FastAPI:
    from doxa.main import create_app

    return create_app(make_settings(context.settings.database_url, **overrides), context=context)


class Stream:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.status_code = response.status_code
        self.lines = response.iter_lines() if response.status_code == 200 else iter(())


def read(stream: Stream, until: Callable[[list[Sse]], bool]) -> list[Sse]:
    """Events and comments (`{"comment": …}`) until `until` holds or the stream ends."""
    seen: list[Sse] = []
    current: Sse = {}
    deadline = time.monotonic() + 10  # keep-alives come every 0.3 s: the loop goes round
    for line in stream.lines:
        assert time.monotonic() < deadline, f"still waiting after 10 s, with {seen}"
        if line.startswith(":"):
            seen.append({"comment": line[1:].strip()})
        elif line:
            name, _, value = line.partition(":")
            current[name] = value.removeprefix(" ")
        elif current:
            seen.append(current)
            current = {}
        if until(seen):
            break
    return seen


def has_id(event_id: int) -> Callable[[list[Sse]], bool]:
    return lambda seen: any(sse.get("id") == str(event_id) for sse in seen)


def events_of(seen: list[Sse]) -> list[Sse]:
    return [sse for sse in seen if "id" in sse]


def ping(context: Context, count: int = 1, **data: object) -> list[int]:
    with transaction(context.sessions) as db:
        events = [
            record(db, None, EventType.PING, actor=SYSTEM, data=dict(data)) for _ in range(count)
        ]
        db.flush()
        return [event.id for event in events]


def reply(context: Context, server: Server, agent: User, ticket_id: int, internal: bool) -> None:
    answer = httpx.post(
        f"{server.url}/api/v1/tickets/{ticket_id}/messages",
        json={"body": "On it", "internal": internal},
        headers={"Authorization": f"Bearer {server.token(agent)}"},
    )
    assert answer.status_code == 201, answer.text


class TestWhoSeesWhat:
    def test_each_reader_gets_their_view(
        self, serve: Serve, clean: Context, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        server = serve()
        ann, bob = make_user(Role.CLIENT), make_user(Role.CLIENT)
        agent, admin = make_user(Role.AGENT), make_user(Role.ADMIN)
        mine = make_ticket(ann)
        with (
            server.stream(ann) as as_ann,
            server.stream(agent) as as_agent,
            server.stream(admin) as as_admin,
        ):
            make_ticket(bob)
            reply(clean, server, agent, mine.id, internal=True)
            with transaction(clean.sessions) as db:
                record(db, None, EventType.INTAKE_HELD, actor=SYSTEM, data={}, public=False)
            reply(clean, server, agent, mine.id, internal=False)
            last = ping(clean)[0]  # staff see it; for the client, the reply's ticket.updated
            client = events_of(read(as_ann, lambda seen: len(events_of(seen)) == 2))
            staff = events_of(read(as_agent, has_id(last)))
            everything = events_of(read(as_admin, has_id(last)))
        assert [sse["event"] for sse in client] == ["message.created", "ticket.updated"]
        assert '"internal":false' in client[0]["data"] and '"ai_' not in client[1]["data"]
        assert [sse["event"] for sse in everything if sse not in staff] == ["intake.held"]
        assert '"internal":true' in staff[2]["data"] and '"ai_' in staff[0]["data"]


class TestResume:
    def test_last_event_id_and_after_resume_after_that_event(
        self, serve: Serve, clean: Context, make_user: MakeUser
    ) -> None:
        server, admin = serve(), make_user(Role.ADMIN)
        ids = ping(clean, 3)
        with server.stream(admin, headers={"Last-Event-ID": str(ids[0])}) as stream:
            assert [int(sse["id"]) for sse in events_of(read(stream, has_id(ids[2])))] == ids[1:]
        with server.stream(admin, params={"after": ids[1]}) as stream:
            assert [int(sse["id"]) for sse in events_of(read(stream, has_id(ids[2])))] == ids[2:]

    def test_live_events_follow_the_catch_up(
        self, serve: Serve, clean: Context, make_user: MakeUser
    ) -> None:
        server, admin = serve(), make_user(Role.ADMIN)
        first = ping(clean)[0]
        with server.stream(admin, headers={"Last-Event-ID": "0"}) as stream:
            later = ping(clean, 2)
            got = events_of(read(stream, has_id(later[-1])))
        assert [int(sse["id"]) for sse in got] == [first, *later]


class TestKeepAlive:
    def test_a_comment_comes_and_a_deactivated_user_is_let_go(
        self, serve: Serve, clean: Context, make_user: MakeUser
    ) -> None:
        server, agent = serve(), make_user(Role.AGENT)
        with server.stream(agent) as stream:
            assert read(stream, lambda seen: bool(seen)) == [{"comment": "keep-alive"}]
            with transaction(clean.sessions) as db:
                db.execute(update(User).where(User.id == agent.id).values(is_active=False))
            started = time.monotonic()
            rest = read(stream, lambda seen: False)  # to the stream's end
        assert all(sse == {"comment": "keep-alive"} for sse in rest)  # then the end
        assert time.monotonic() - started < 5
        assert server.fanout.open_streams == 0


class TestStreamTicket:
    def test_a_ticket_opens_one_stream_once(self, serve: Serve, make_user: MakeUser) -> None:
        server, ann = serve(), make_user(Role.CLIENT)
        answer = httpx.post(
            f"{server.url}/api/v1/events/stream-ticket",
            headers={"Authorization": f"Bearer {server.token(ann)}"},
        )
        assert answer.status_code == 201 and answer.json()["expires_in"] == 60
        ticket = answer.json()["ticket"]
        with server.stream(params={"ticket": ticket}) as stream:
            assert stream.status_code == 200
            assert read(stream, bool) == [{"comment": "keep-alive"}]
        with server.stream(params={"ticket": ticket}) as stream:
            assert stream.status_code == 401

    def test_an_expired_ticket_and_none_are_refused(
        self, serve: Serve, clean: Context, make_user: MakeUser
    ) -> None:
        server, ann = serve(), make_user(Role.CLIENT)
        with transaction(clean.sessions) as db:
            ticket = views.issue_ticket(db, db.get_one(User, ann.id), seconds=0)
        for params in ({"ticket": ticket}, {}):
            with server.stream(params=params) as stream:
                assert stream.status_code == 401


def assert_refused(server: Server, user: User, detail: str) -> None:
    with server.stream(user) as refused:
        answer = refused.response
        answer.read()
    assert answer.status_code == 429
    assert answer.headers["content-type"] == "application/problem+json"
    assert int(answer.headers["retry-after"]) > 0
    assert answer.json()["detail"] == detail


class TestCaps:
    def test_per_user_and_per_network_caps_answer_429(
        self, serve: Serve, make_user: MakeUser
    ) -> None:
        server = serve(event_streams_per_user=2, event_streams_per_network=3)
        ann, bob = make_user(Role.CLIENT), make_user(Role.CLIENT)
        with server.stream(ann), server.stream(ann):
            assert_refused(server, ann, "at most 2 event streams per user")
            with server.stream(bob):
                assert_refused(server, bob, "too many event streams from this network")
                assert server.fanout.open_streams == 3

    def test_at_most_half_of_the_connections_are_streams(
        self, serve: Serve, make_user: MakeUser
    ) -> None:
        server = serve(http_max_connections=4)
        ann, bob, eve = (make_user(Role.CLIENT) for _ in range(3))
        with server.stream(ann), server.stream(bob):
            assert_refused(server, eve, "too many event streams are open")


class TestFanOut:
    @pytest.mark.timing
    def test_an_event_written_elsewhere_arrives_within_a_second(
        self, serve: Serve, clean: Context, make_user: MakeUser
    ) -> None:
        server, admin = serve(), make_user(Role.ADMIN)
        with server.stream(admin) as stream:
            written = time.monotonic()
            event = ping(clean)[0]  # by this test's session, as another process would
            read(stream, has_id(event))
        assert time.monotonic() - written < 1.0

    @pytest.mark.timing
    def test_a_reader_more_than_1000_behind_is_dropped(
        self, serve: Serve, clean: Context, make_user: MakeUser
    ) -> None:
        server, admin = serve(), make_user(Role.ADMIN)
        port = int(server.url.rsplit(":", 1)[1])
        with socket.socket() as slow:
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # it reads nothing yet
            slow.connect(("127.0.0.1", port))
            slow.sendall(
                f"GET {PATH} HTTP/1.1\r\nHost: doxa\r\nConnection: close\r\n"
                f"Authorization: Bearer {server.token(admin)}\r\n\r\n".encode()
            )
            deadline = time.monotonic() + 10
            while server.fanout.open_streams == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            ids = ping(clean, 1500, pad="x" * 16_000)  # 24 MB: more than the sockets hold
            while server.fanout.dropped_streams == 0 and time.monotonic() < deadline + 20:
                time.sleep(0.05)
            assert server.fanout.dropped_streams == 1
            slow.settimeout(10)
            received = b""
            while chunk := slow.recv(1 << 20):
                received += chunk
        assert received.count(b"\r\nid: ") + received.count(b"\nid: ") < len(ids)
        assert b": dropped: more than 1000 events behind" in received
