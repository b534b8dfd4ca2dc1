"""Assignment seen from outside: through the API of the running app, and of two `doxa serve`
processes on one PostgreSQL. Teams are made in the database (the teams API is tested apart)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from doxa.core.auth import Tokens
from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.enums import ActorType, EventType, Role, Status
from doxa.core.models import Event, Rule, Team, Ticket, User
from doxa.migrations import upgrade
from tests.conftest import AsUser, MakeUser, _fresh_postgres, empty_tables, make_settings
from tests.core.teams.conftest import add_team, add_tickets, assignees, system_assignments
from tests.receivers import Receiver
from tests.relays import free_port
from tests.test_migrations import DOXA

SETTLE_SECONDS = 5  # SPEC: the oldest waiting ticket is assigned within 5 s of room


def _load(context: Context, user: User) -> int:
    with context.sessions() as db:
        query = select(func.count()).where(
            Ticket.assignee_id == user.id, Ticket.status.in_((Status.NEW, Status.OPEN))
        )
        return db.scalar(query) or 0


def _wait_for(check: Callable[[], bool], timeout: float) -> float:
    """Seconds until `check` held; fails after `timeout`."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, "not within the time allowed"
        time.sleep(0.05)
    return time.monotonic() - start


class TestQueue:
    @pytest.mark.timing
    def test_a_waiting_ticket_is_assigned_within_5s_of_one_being_resolved(
        self, client: TestClient, clean: Context, as_user: AsUser, make_user: MakeUser
    ) -> None:
        agent = make_user(Role.AGENT)
        team = add_team(clean.sessions, [agent], capacity=1)
        held, waiting = add_tickets(clean.sessions, make_user(), 2, team=team)
        with transaction(clean.sessions) as db:
            db.execute(update(Ticket).where(Ticket.id == held).values(assignee_id=agent.id))
        resolved = as_user(agent).patch(f"/api/v1/tickets/{held}", json={"status": "resolved"})
        assert resolved.status_code == 200
        _wait_for(lambda: assignees(clean.sessions, [waiting]) == [agent.id], SETTLE_SECONDS)

    @pytest.mark.timing
    def test_a_member_back_from_away_gets_the_oldest_waiting_within_5s(
        self, client: TestClient, clean: Context, make_user: MakeUser
    ) -> None:
        agent = make_user(Role.AGENT)
        with transaction(clean.sessions) as db:
            db.execute(update(User).where(User.id == agent.id).values(available=False))
        team = add_team(clean.sessions, [agent], capacity=1)
        oldest, newer = add_tickets(clean.sessions, make_user(), 2, team=team)
        time.sleep(1.5)  # the queue job has run: nobody to take them
        assert assignees(clean.sessions, [oldest, newer]) == [None, None]
        with transaction(clean.sessions) as db:
            db.execute(update(User).where(User.id == agent.id).values(available=True))
        _wait_for(lambda: assignees(clean.sessions, [oldest]) == [agent.id], SETTLE_SECONDS)
        assert assignees(clean.sessions, [newer]) == [None]  # the agent is full


class TestDeactivation:
    def test_a_deactivated_members_open_tickets_go_to_the_others(
        self, clean: Context, as_user: AsUser, make_user: MakeUser
    ) -> None:
        leaving, staying = make_user(Role.AGENT), make_user(Role.AGENT)
        team = add_team(clean.sessions, [leaving, staying])
        requester = make_user()
        open_ids = add_tickets(clean.sessions, requester, 2, team=team, assignee=leaving)
        [pending] = add_tickets(
            clean.sessions, requester, 1, team=team, assignee=leaving, status=Status.PENDING
        )
        admin = as_user(make_user(Role.ADMIN))
        answer = admin.patch(f"/api/v1/users/{leaving.id}", json={"is_active": False})
        assert answer.status_code == 200
        assert assignees(clean.sessions, open_ids) == [staying.id, staying.id]
        assert assignees(clean.sessions, [pending]) == [leaving.id]  # not open: not counted
        with clean.sessions() as db:
            events = db.scalars(
                select(Event).where(Event.ticket_id == open_ids[0]).order_by(Event.sequence)
            ).all()
        assert [(e.type, e.actor_type, e.changes) for e in events] == [
            (EventType.TICKET_ASSIGNED, ActorType.SYSTEM, {"assignee_id": [leaving.id, None]}),
            (EventType.TICKET_ASSIGNED, ActorType.SYSTEM, {"assignee_id": [None, staying.id]}),
        ]

    def test_with_nobody_to_take_them_they_wait_unassigned(
        self, clean: Context, as_user: AsUser, make_user: MakeUser
    ) -> None:
        leaving = make_user(Role.AGENT)
        team = add_team(clean.sessions, [leaving])
        ids = add_tickets(clean.sessions, make_user(), 2, team=team, assignee=leaving)
        admin = as_user(make_user(Role.ADMIN))
        assert admin.patch(f"/api/v1/users/{leaving.id}", json={"is_active": False}).is_success
        assert assignees(clean.sessions, ids) == [None, None]


class TestManualAssignment:
    def test_staff_may_assign_by_hand_past_capacity(
        self, clean: Context, as_user: AsUser, make_user: MakeUser
    ) -> None:
        full = make_user(Role.AGENT)
        team = add_team(clean.sessions, [full], capacity=1)
        add_tickets(clean.sessions, make_user(), 1, team=team, assignee=full)
        [extra] = add_tickets(clean.sessions, make_user(), 1)
        lead = as_user(make_user(Role.AGENT))
        answer = lead.patch(f"/api/v1/tickets/{extra}", json={"assignee_id": full.id})
        assert answer.status_code == 200 and answer.json()["assignee_id"] == full.id
        assert _load(clean, full) == 2


# Two `doxa serve` processes on one PostgreSQL database.

Server = str  # its base URL


@pytest.fixture(scope="module")
def serving_pair(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Context, list[Server]]]:
    """Two `doxa serve` processes on one new database, started once for the tests below."""
    server = os.environ.get("TEST_DATABASE_URL")
    if not server:
        pytest.skip("TEST_DATABASE_URL is not set: two processes need PostgreSQL")
    logs = tmp_path_factory.mktemp("serve")
    secret = secrets.token_urlsafe(48)
    with _fresh_postgres(server, f"assign_{logs.name}") as url, ExitStack() as stack:
        upgrade(url)
        environment = {
            **os.environ,
            "DATABASE_URL": url,
            "DOXA_ENV": "dev",
            "JWT_SECRET": secret,
            "BCRYPT_ROUNDS": "4",
            "AI_PROVIDER": "none",
            "WORKER_PROCESSES": "0",
            "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",  # the webhook receiver below
            # No classification comes (AI_PROVIDER=none): the fallback routes at once, not
            # after the 10 s a classification would be waited for.
            "ROUTING_FALLBACK_SECONDS": "0",
        }
        context = Context.build(make_settings(url, jwt_secret=secret))
        stack.callback(context.close)
        # Both start at once and stop at once: each takes seconds either way.
        servers: list[_Serving] = []
        stack.callback(_stop, servers)
        for n in (1, 2):
            servers.append(_Serving(environment, logs / f"serve{n}"))
        yield context, [server.url() for server in servers]


@pytest.fixture
def two_servers(
    serving_pair: tuple[Context, list[Server]],
) -> tuple[Context, list[Server]]:
    """The two servers, and a context to arrange and check their database, emptied."""
    empty_tables(serving_pair[0])
    return serving_pair


class _Serving:
    """`doxa serve` on free ports, started as it is made."""

    def __init__(self, environment: dict[str, str], log: Path) -> None:
        self.log, self.port = log, free_port()
        command = [DOXA, "serve", "--port", str(self.port), "--smtp-port", str(free_port())]
        with self.log.open("w") as output:
            self.server = subprocess.Popen(
                command,
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def url(self) -> Server:
        """Its base URL, once its banner shows it serving."""
        deadline = time.monotonic() + 90
        while "DOXA HTTP on" not in self.log.read_text():
            assert self.server.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def wait_stopped(self) -> None:
        try:
            self.server.wait(timeout=60)
        finally:
            if self.server.poll() is None:
                os.killpg(self.server.pid, signal.SIGKILL)
        assert "Traceback" not in self.log.read_text(), self.log.read_text()


def _stop(servers: list[_Serving]) -> None:
    """Ctrl-C to every server, then each waited for."""
    for serving in servers:
        if serving.server.poll() is None:
            os.killpg(serving.server.pid, signal.SIGINT)
    for serving in servers:
        serving.wait_stopped()


def _staff(context: Context, count: int) -> list[User]:
    with transaction(context.sessions) as db:
        people = [
            User(email=f"agent{n}@example.com", role=Role.AGENT, full_name=f"Agent {n}")
            for n in range(count)
        ]
        db.add_all(people)
    return people


def _bearer(context: Context, user: User) -> dict[str, str]:
    tokens = Tokens(context.settings.secret, timedelta(hours=1))
    return {"Authorization": f"Bearer {tokens.issue(user.id)}"}


def _route_api_tickets_into(context: Context, team: Team) -> None:
    """A routing rule: every ticket opened through the API lands in `team`, unassigned (with
    AI_PROVIDER=none the rules run by the fallback, on both servers at once)."""
    when = {"all": [{"field": "channel", "op": "is", "value": "api"}]}
    with transaction(context.sessions) as db:
        db.add(Rule(name="API to the team", when=when, then=[{"set": "team_id", "value": team.id}]))


class TestTwoProcesses:
    def test_1000_tickets_opened_through_both_give_each_agent_250(
        self, two_servers: tuple[Context, list[Server]]
    ) -> None:
        context, servers = two_servers
        agents = _staff(context, 5)
        team = add_team(context.sessions, agents[:4])
        _route_api_tickets_into(context, team)
        headers = _bearer(context, agents[4])

        def open_tickets(server: Server) -> list[int]:
            with httpx.Client(base_url=server, headers=headers, timeout=30) as http:
                made = []
                for n in range(125):
                    body = {"subject": f"Order {n}", "body": "Where is my parcel?"}
                    answer = http.post("/api/v1/tickets", json=body)
                    assert answer.status_code == 201, answer.text
                    made.append(answer.json()["id"])
                return made

        with ThreadPoolExecutor(8) as pool:
            made = [i for ids in pool.map(open_tickets, servers * 4) for i in ids]
        assert len(made) == 1000

        def all_assigned() -> bool:
            return None not in assignees(context.sessions, made)

        _wait_for(all_assigned, 45)  # each server's fallback routes 50 tickets every 2 s
        counts = Counter(assignees(context.sessions, made))
        assert set(counts) == {agent.id for agent in agents[:4]}
        assert all(249 <= count <= 251 for count in counts.values()), counts
        assert Counter(system_assignments(context.sessions).values()) == {1: 1000}

    def test_agents_resolving_through_both_never_get_past_capacity(
        self, two_servers: tuple[Context, list[Server]]
    ) -> None:
        context, servers = two_servers
        capacity = 3
        agents = _staff(context, 4)
        # Capacity counts over all teams: two teams of the same agents fill them together.
        teams = [add_team(context.sessions, agents, capacity=capacity) for _ in range(2)]
        with transaction(context.sessions) as db:
            requester = User(email="customer@example.com", role=Role.CLIENT)
            db.add(requester)
        ids = [i for team in teams for i in add_tickets(context.sessions, requester, 60, team=team)]
        peak: Counter[int] = Counter()
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                with context.sessions() as db:
                    load = db.execute(
                        select(Ticket.assignee_id, func.count())
                        .where(Ticket.status.in_((Status.NEW, Status.OPEN)))
                        .where(Ticket.assignee_id.is_not(None))
                        .group_by(Ticket.assignee_id)
                    )
                    for user_id, count in load:
                        assert user_id is not None
                        peak[user_id] = max(peak[user_id], count)
                time.sleep(0.01)

        def work(n: int) -> int:
            """An agent resolving their open tickets through one of the servers."""
            agent = agents[n]
            resolved = 0
            with httpx.Client(
                base_url=servers[n % 2], headers=_bearer(context, agent), timeout=30
            ) as http:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    mine = http.get(
                        "/api/v1/tickets", params={"assignee_id": agent.id, "status": "new"}
                    ).json()["items"]
                    if not mine and _all_resolved(context, ids):
                        return resolved
                    for ticket in mine:
                        answer = http.patch(
                            f"/api/v1/tickets/{ticket['id']}", json={"status": "resolved"}
                        )
                        assert answer.status_code == 200, answer.text
                        resolved += 1
                    if not mine:
                        time.sleep(0.05)
            return resolved

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            with ThreadPoolExecutor(4) as pool:
                resolved = list(pool.map(work, range(4)))
        finally:
            done.set()
            watcher.join()
        assert sum(resolved) == 120
        assert peak and max(peak.values()) <= capacity, peak
        assert Counter(system_assignments(context.sessions).values()) == {1: 120}

    def test_webhooks_from_both_reach_the_receiver_once_each(
        self, two_servers: tuple[Context, list[Server]], receiver: Receiver
    ) -> None:
        """Both servers dispatch and send (SPEC: one outbox, leases): every ticket's event
        arrives, and none twice (no process was killed in flight)."""
        context, servers = two_servers
        [admin] = _staff(context, 1)
        with transaction(context.sessions) as db:
            db.merge(admin).role = Role.ADMIN
        headers = _bearer(context, admin)
        hook = {"url": receiver.url, "events": ["ticket.created"]}
        answer = httpx.post(f"{servers[0]}/api/v1/webhooks", json=hook, headers=headers)
        assert answer.status_code == 201, answer.text

        def open_tickets(server: Server) -> None:
            with httpx.Client(base_url=server, headers=headers, timeout=30) as http:
                for n in range(25):
                    body = {"subject": f"Order {n}", "body": "Where is my parcel?"}
                    assert http.post("/api/v1/tickets", json=body).status_code == 201

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(open_tickets, servers * 2))
        _wait_for(lambda: len(receiver.requests) >= 100, 30)
        time.sleep(2)  # a second delivery of any of them would come within this
        with context.sessions() as db:
            created = select(Event.id).where(Event.type == EventType.TICKET_CREATED)
            expected = {str(i) for i in db.scalars(created)}
        received = [r.headers["webhook-id"] for r in receiver.requests]
        assert len(expected) == 100 and sorted(received) == sorted(expected)


def _all_resolved(context: Context, ids: list[int]) -> bool:
    with context.sessions() as db:
        query = select(func.count()).where(Ticket.id.in_(ids), Ticket.status != Status.RESOLVED)
        return not db.scalar(query)
