"""/webhooks through the real app: admins only, the secret answered once, bad input 422, and a
ticket made through the API reaching a subscribed receiver through the running app."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, cast

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook as Verifier

from doxa.core.context import Context
from doxa.core.enums import Role
from doxa.core.models import User
from doxa.main import create_app
from tests.conftest import MakeUser, make_settings
from tests.receivers import Receiver

HOOKS = "/api/v1/webhooks"
ROUTES = [
    ("GET", HOOKS),
    ("POST", HOOKS),
    ("GET", f"{HOOKS}/1"),
    ("PATCH", f"{HOOKS}/1"),
    ("DELETE", f"{HOOKS}/1"),
    ("POST", f"{HOOKS}/1/rotate-secret"),
    ("POST", f"{HOOKS}/1/ping"),
    ("GET", f"{HOOKS}/1/deliveries"),
    ("POST", f"{HOOKS}/1/deliveries/1/redeliver"),
]
Http = Callable[[User], TestClient]


@pytest.fixture
def app(clean: Context) -> FastAPI:
    """The app allowed to reach loopback receivers (WEBHOOK_ALLOWED_HOSTS), on the test's
    database; enter a client to start its periodic jobs and outbox."""
    settings = make_settings(
        clean.settings.database_url,
        webhook_allowed_hosts="127.0.0.1",
        jwt_secret=clean.settings.secret,
    )
    return create_app(settings, context=replace(clean, settings=settings))


@pytest.fixture
def http(app: FastAPI, clean: Context) -> Http:
    def client(user: User) -> TestClient:
        token = clean.tokens.issue(user.id, user.token_version)
        headers = {"Authorization": f"Bearer {token}"}
        return TestClient(app, headers=headers, raise_server_exceptions=False)

    return client


class TestAccess:
    @pytest.mark.parametrize("role", [Role.CLIENT, Role.AGENT])
    @pytest.mark.parametrize(("method", "path"), ROUTES)
    def test_only_admins_reach_webhooks(
        self, http: Http, make_user: MakeUser, role: Role, method: str, path: str
    ) -> None:
        body = {"url": "http://127.0.0.1:9/hook"} if method in ("POST", "PATCH") else None
        response = http(make_user(role)).request(method, path, json=body)
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/problem+json"


class TestSecret:
    def test_the_secret_is_answered_at_creation_and_rotation_and_never_read_again(
        self, http: Http, make_user: MakeUser, receiver: Receiver
    ) -> None:
        admin = http(make_user(Role.ADMIN))
        created = admin.post(HOOKS, json={"url": receiver.url, "events": ["ticket.created"]})
        assert created.status_code == 201
        hook = created.json()
        assert 24 <= len(base64.b64decode(hook["secret"].removeprefix("whsec_"))) <= 32
        rotated = admin.post(f"{HOOKS}/{hook['id']}/rotate-secret").json()["secret"]
        reads = [
            admin.get(HOOKS),
            admin.get(f"{HOOKS}/{hook['id']}"),
            admin.patch(f"{HOOKS}/{hook['id']}", json={"description": "CRM"}),
            admin.get(f"{HOOKS}/{hook['id']}/deliveries"),
        ]
        for read in reads:
            assert read.status_code == 200
            assert hook["secret"] not in read.text and rotated not in read.text
            assert "whsec_" not in read.text

    @pytest.mark.parametrize(
        "body",
        [
            {"url": "http://127.0.0.1:9/hook", "events": ["ticket.exploded"]},
            {"url": "http://127.0.0.1:9/hook", "events": []},
            {"url": "ftp://127.0.0.1/hook"},
        ],
    )
    def test_unknown_event_types_and_urls_that_cannot_be_reached_are_422(
        self, http: Http, make_user: MakeUser, body: dict[str, object]
    ) -> None:
        response = http(make_user(Role.ADMIN)).post(HOOKS, json=body)
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"


def _wait_for(receiver: Receiver, count: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while len(receiver.requests) < count:
        assert time.monotonic() < deadline, f"{len(receiver.requests)} of {count} arrived"
        time.sleep(0.05)


def _delivered(admin: TestClient, hook_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        [delivery] = admin.get(f"{HOOKS}/{hook_id}/deliveries").json()["items"]
        if delivery["state"] == "delivered":
            return cast(dict[str, Any], delivery)
        assert time.monotonic() < deadline, delivery
        time.sleep(0.05)


class TestEndToEnd:
    def test_a_ticket_made_through_the_api_reaches_the_receiver_and_can_be_sent_again(
        self, http: Http, make_user: MakeUser, receiver: Receiver
    ) -> None:
        admin = http(make_user(Role.ADMIN))
        with admin:  # the lifespan: the dispatch job and the outbox run
            hook = admin.post(HOOKS, json={"url": receiver.url, "events": ["ticket.created"]})
            secret, hook_id = hook.json()["secret"], hook.json()["id"]
            made = http(make_user(Role.CLIENT)).post(
                "/api/v1/tickets", json={"subject": "Invoice charged twice", "body": "Refund?"}
            )
            assert made.status_code == 201
            _wait_for(receiver, 1)
            first = receiver.requests[0]
            event = Verifier(secret).verify(first.body, first.headers)
            assert event["type"] == "ticket.created" and event["ticket_id"] == made.json()["id"]
            delivery = _delivered(admin, hook_id)  # recorded just after the answer
            assert delivery["event_type"] == "ticket.created"
            assert delivery["attempts"][0]["status_code"] == 200
            again = admin.post(f"{HOOKS}/{hook_id}/deliveries/{delivery['id']}/redeliver")
            assert again.status_code == 202
            assert admin.post(f"{HOOKS}/{hook_id}/ping").status_code == 202
            _wait_for(receiver, 3)
            scraped = admin.get("/metrics").text
        assert 'doxa_webhook_deliveries_total{outcome="delivered"}' in scraped
        assert "doxa_outbox_oldest_pending_seconds" in scraped
        ids = [request.headers["webhook-id"] for request in receiver.requests]
        assert ids[1] == ids[0] != ids[2]  # the same event again; then the ping
        ping = Verifier(secret).verify(receiver.requests[2].body, receiver.requests[2].headers)
        assert ping["type"] == "ping" and ping["data"]["webhook_id"] == hook_id
