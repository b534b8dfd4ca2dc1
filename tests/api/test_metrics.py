"""GET /metrics: who may scrape it, and the HTTP figures it gives."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from doxa.core.context import Context
from doxa.core.enums import Role
from tests.conftest import AsUser, MakeUser


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of the samples named `name` whose labels include `labels`."""
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and labels.items() <= s.labels.items()
    )


def local(app: FastAPI) -> TestClient:
    return TestClient(app, client=("127.0.0.1", 40000), raise_server_exceptions=False)


class TestAccess:
    def test_loopback_client_scrapes_without_a_token(self, app: FastAPI, clean: Context) -> None:
        response = local(app).get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert "doxa_outbox_depth" in response.text

    def test_loopback_through_a_proxy_is_not_local(self, app: FastAPI, clean: Context) -> None:
        response = local(app).get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
        assert response.status_code == 401

    def test_remote_client_without_a_token_gets_401_problem(self, client: TestClient) -> None:
        response = client.get("/metrics")
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"

    def test_agent_token_gets_403_and_admin_token_200(
        self, as_user: AsUser, make_user: MakeUser
    ) -> None:
        assert as_user(make_user(Role.AGENT)).get("/metrics").status_code == 403
        assert as_user(make_user(Role.ADMIN)).get("/metrics").status_code == 200


class TestHttpLatency:
    def test_requests_are_counted_by_route_template_and_status(
        self, app: FastAPI, as_user: AsUser, make_user: MakeUser
    ) -> None:
        route = "/api/v1/tickets/{ticket_id}"
        before = local(app).get("/metrics").text
        client = as_user(make_user())
        client.get("/api/v1/tickets/424242")
        client.get("/api/v1/tickets/424243")
        after = local(app).get("/metrics").text
        count = "doxa_http_request_duration_seconds_count"
        moved = sample(after, count, route=route, status="404") - sample(
            before, count, route=route, status="404"
        )
        assert moved == 2
        assert "/api/v1/tickets/424242" not in after  # templates, never paths
