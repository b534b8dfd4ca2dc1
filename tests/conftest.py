"""Shared fixtures: a migrated database per backend, the app, and typed factories.

Every test that touches the database runs once on SQLite and, when TEST_DATABASE_URL is
set, once more on PostgreSQL. Migrations run once per session per backend (so every run
exercises them); each test starts from empty tables.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from doxa.core.config import Settings, load_settings
from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.enums import Role
from doxa.core.models import AccountMail, Base, Ticket, User
from doxa.core.tickets import service as tickets
from doxa.core.tickets.schemas import TicketCreate
from doxa.main import create_app
from doxa.migrations import upgrade
from tests import scheduling
from tests.receivers import Receiver
from tests.relays import Sink

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
# The real-world corpus (emails/, tickets/, webhooks/): ../shared/corpus beside the repo, or
# wherever DOXA_CORPUS points.
CORPUS_ROOT = Path(os.environ.get("DOXA_CORPUS") or SHARED / "corpus")
EMAIL_CORPUS = CORPUS_ROOT / "emails"


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The shared real-world email corpus; tests that need it skip where it is absent."""
    if not (EMAIL_CORPUS / "INDEX.json").is_file():
        pytest.skip(f"email corpus not found at {EMAIL_CORPUS} (../shared/corpus or DOXA_CORPUS)")
    return EMAIL_CORPUS


PASSWORD = "correct horse battery"
BACKENDS = ["sqlite", "postgresql"]


def _worker(request: pytest.FixtureRequest) -> str:
    return str(getattr(request.config, "workerinput", {}).get("workerid", "main"))


@contextmanager
def _fresh_postgres(url: str, worker: str) -> Iterator[str]:
    """A new database next to TEST_DATABASE_URL's, one per test run and xdist worker."""
    base = make_url(url).set(drivername="postgresql+psycopg")
    name = f"{base.database}_doxa_{worker}_{os.getpid()}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        # A commit need not wait for its WAL flush here: what another session reads is the
        # same, only a crash of the server itself (never done by a test) could lose a commit.
        # Every commit of the suite otherwise waits on the disk (the corpus tests make ~4000).
        connection.execute(sa.text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'doxa.db'}"
        upgrade(url)
        yield url
        return
    server = os.environ.get("TEST_DATABASE_URL")
    if not server:
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL run skipped")
    with _fresh_postgres(server, _worker(request)) as url:
        upgrade(url)
        yield url


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "doxa_env": "test",
        "database_url": database_url,
        "jwt_secret": secrets.token_urlsafe(48),
        "bcrypt_rounds": 4,
        "smtp_enabled": False,
        "parser_processes": 0,  # in-thread; tests/gateway/test_smtp.py covers the process pool
        "ai_provider": "none",  # tickets stay pending; tests/core/triage switch it on
        "support_addresses": "support@example.com,billing@example.com=billing",
        # Webhook endpoints answer 503 until configured; configured, they answer 401 unsigned.
        "webhook_secret": "test-webhook-secret",
        "mailgun_signing_key": "test-mailgun-key",
        **dict.fromkeys(("postmark_inbound_user", "sendgrid_inbound_user"), "inbound"),
        **dict.fromkeys(("postmark_inbound_password", "sendgrid_inbound_password"), "test-pass"),
        "_env_file": None,
    }
    values.update(overrides)
    return load_settings(**values)


def _sqlite_without_fsync(dbapi_connection: Any, _record: object) -> None:
    """As synchronous_commit=off on PostgreSQL: what another connection reads is the same, only
    a crash of the machine could lose a commit. Every commit otherwise waits on the disk (most
    of a SQLite test's time when other processes write too)."""
    dbapi_connection.execute("PRAGMA synchronous=OFF")


@pytest.fixture(scope="session")
def context(database_url: str) -> Iterator[Context]:
    context = Context.build(make_settings(database_url))
    if context.engine.dialect.name == "sqlite":
        sa.event.listen(context.engine, "connect", _sqlite_without_fsync)
    yield context
    context.engine.dispose()


@pytest.fixture(scope="session")
def app(context: Context) -> FastAPI:
    return create_app(context.settings, context=context)


def empty_tables(context: Context) -> None:
    """Every table emptied and every id counting from 1 again. DELETE, not TRUNCATE: on
    PostgreSQL a TRUNCATE makes new files for every table and index (~250 ms a test here),
    a DELETE of a test's few rows takes milliseconds. One round trip for the deletes and one
    for the sequences a test used (each test pays this: ~35 ms a statement at a time)."""
    tables = reversed(Base.metadata.sorted_tables)
    with context.engine.begin() as connection:
        if connection.dialect.name != "postgresql":
            for table in tables:
                connection.execute(table.delete())
            return
        deletes = [str(table.delete().compile(dialect=connection.dialect)) for table in tables]
        connection.exec_driver_sql("; ".join(deletes))
        connection.execute(
            sa.text(
                "SELECT setval(format('%I', sequencename)::regclass, start_value, false) "
                "FROM pg_sequences WHERE schemaname = current_schema() AND last_value IS NOT NULL"
            )
        )


@pytest.fixture
def clean(context: Context) -> Iterator[Context]:
    """Empty tables before the test (a crashed test leaves no trace for the next)."""
    empty_tables(context)
    yield context


@pytest.fixture
def db(clean: Context) -> Iterator[Session]:
    """A session for arranging and checking state; committed work is visible to the app."""
    with clean.sessions() as session:
        yield session


@pytest.fixture
def client(app: FastAPI, clean: Context) -> Iterator[TestClient]:
    app.state.throttle.reset()  # the session's app keeps throttle state between tests
    app.state.throttle.refusal_delay = 0.0  # tests/api/test_throttle.py checks the delay
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


MakeUser = Callable[..., User]
MakeTicket = Callable[..., Ticket]
AsUser = Callable[[User], TestClient]


@pytest.fixture
def make_user(clean: Context) -> MakeUser:
    def make(
        role: Role = Role.CLIENT,
        *,
        email: str | None = None,
        active: bool = True,
        password: str | None = PASSWORD,
    ) -> User:
        with transaction(clean.sessions) as session:
            user = User(
                email=email or f"{role.lower()}-{secrets.token_hex(4)}@example.com",
                role=role,
                is_active=active,
                full_name=f"Test {role.title()}",
                password_hash=clean.passwords.hash(password) if password else None,
            )
            session.add(user)
        return user

    return make


@pytest.fixture
def make_ticket(clean: Context, make_user: MakeUser) -> MakeTicket:
    def make(
        requester: User | None = None,
        *,
        subject: str = "Printer on fire",
        body: str = "The office printer is smoking.",
        **fields: object,
    ) -> Ticket:
        requester = requester or make_user(Role.CLIENT)
        with transaction(clean.sessions) as session:
            actor = session.get(User, requester.id)
            assert actor is not None
            ticket = tickets.open_ticket(
                session, TicketCreate(subject=subject, body=body), actor=actor
            )
            for name, value in fields.items():
                setattr(ticket, name, value)
        return ticket

    return make


@pytest.fixture
def as_user(app: FastAPI, context: Context, clean: Context) -> AsUser:
    app.state.throttle.reset()

    def client_for(user: User) -> TestClient:
        token = context.tokens.issue(user.id, user.token_version)
        return TestClient(
            app, headers={"Authorization": f"Bearer {token}"}, raise_server_exceptions=False
        )

    return client_for


# Accounts (issue 8): an app with a relay configured, so self-service answers; the relay at
# port 1 refuses, so account mail stays queued in account_mail for tests to read the link.
PROXY = "10.9.0.1"
MailClient = Callable[..., TestClient]


@pytest.fixture
def mail_client(clean: Context) -> MailClient:
    settings = make_settings(
        clean.settings.database_url,
        outbound_smtp_url="smtp://127.0.0.1:1",
        forwarded_allow_ips=f"{PROXY},10.8.0.0/16",
        public_base_url="https://help.example.com",
    )
    app = create_app(settings, context=clean)
    app.state.throttle.refusal_delay = 0.0  # tests/api/test_throttle.py checks the delay

    def client_from(address: str = "198.51.100.7") -> TestClient:
        return TestClient(app, client=(address, 40000), raise_server_exceptions=False)

    return client_from


def mailed_token(context: Context, email: str) -> str:
    """The token in the latest account mail to `email` (what the mailbox owner would click)."""
    with context.sessions() as session:
        mail = session.scalars(
            sa.select(AccountMail)
            .where(AccountMail.recipient == email)
            .order_by(AccountMail.id.desc())
        ).first()
    assert mail is not None, f"no account mail to {email}"
    found = re.search(r"token=([A-Za-z0-9_-]+)", mail.body)
    assert found is not None
    return found.group(1)


@pytest.hookimpl(trylast=True)  # after pytest has grouped the tests by their fixtures
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items[:] = scheduling.reorder(config, items)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback (tests/receivers.py), stopped after the test."""
    server = Receiver()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sink() -> Iterator[Sink]:
    """A real SMTP relay on loopback that keeps what it is given (tests/relays.py)."""
    relay = Sink()
    relay.controller.start()
    yield relay
    relay.controller.stop()
