"""A typed client generated from /openapi.json by a maintained generator works as generated.

openapi-python-client (a test dependency) writes the client from the app's own document; the
test then logs in with it, lists the triage queue, replies and reads a documented error,
against the app served by Uvicorn on a free port.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from doxa.core.context import Context
from doxa.core.enums import Role
from doxa.main import create_app
from tests.conftest import PASSWORD, MakeTicket, MakeUser
from tests.relays import free_port

GENERATOR = str(Path(sys.executable).with_name("openapi-python-client"))


@pytest.fixture
def generated(client: TestClient, tmp_path: Path) -> Iterator[ModuleType]:
    """The `doxa_client` package, generated into tmp_path and importable for this test."""
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(client.get("/openapi.json").json()))
    config = tmp_path / "generator.yml"
    config.write_text("post_hooks: []\n")  # no formatter run: the code is read by Python only
    result = subprocess.run(
        [
            GENERATOR,
            "generate",
            "--path",
            str(spec),
            "--meta",
            "none",
            "--config",
            str(config),
            "--output-path",
            str(tmp_path / "doxa_client"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout, result.stdout  # every operation and model generated
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module("doxa_client")
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name.split(".")[0] == "doxa_client"]:
            del sys.modules[name]


@pytest.fixture
def served(clean: Context) -> Iterator[str]:
    """The app on a real port (the generated client speaks plain httpx, synchronously)."""
    app: FastAPI = create_app(clean.settings, context=clean)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(30)


class TestGeneratedClient:
    def test_log_in_list_the_triage_queue_and_reply(
        self, generated: ModuleType, served: str, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        from doxa_client.api.auth import auth_login
        from doxa_client.api.tickets import (
            tickets_get,
            tickets_list,
            tickets_post_message,
        )
        from doxa_client.models import (
            AccessToken,
            BodyAuthLogin,
            MessageCreate,
            PageTicketRead,
            Problem,
        )

        agent = make_user(Role.AGENT, email="maria@example.com")
        ann = make_user(Role.CLIENT, email="ann@example.org")
        ticket = make_ticket(ann, subject="Invoice 2231 charged twice", needs_triage=True)

        with generated.Client(base_url=served) as anonymous:
            refused = auth_login.sync(
                client=anonymous, body=BodyAuthLogin(username=agent.email, password="wrong one")
            )
            token = auth_login.sync(
                client=anonymous, body=BodyAuthLogin(username=agent.email, password=PASSWORD)
            )
        assert isinstance(refused, Problem) and refused.status == 401
        assert isinstance(token, AccessToken) and token.token_type == "bearer"

        with generated.AuthenticatedClient(base_url=served, token=token.access_token) as me:
            queue = tickets_list.sync(client=me, needs_triage=True)
            assert isinstance(queue, PageTicketRead)
            assert [(t.id, t.requester.email) for t in queue.items] == [(ticket.id, ann.email)]

            reply = tickets_post_message.sync(
                ticket.id, client=me, body=MessageCreate(body="We have refunded the second charge.")
            )
            assert reply.ticket_id == ticket.id and reply.author.email == agent.email
            assert reply.direction.value == "out" and reply.internal is False

            missing = tickets_get.sync(ticket.id + 1000, client=me)
            assert isinstance(missing, Problem) and missing.status == 404
