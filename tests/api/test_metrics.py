"""GET /metrics: who may scrape it, and the HTTP figures it gives."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from doxa.core.config import ConfigError, load_settings
from doxa.core.context import Context
from doxa.core.enums import Role
from doxa.main import create_app
from tests.conftest import AsUser, MakeUser, make_settings


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


class TestMetricsToken:
    """METRICS_TOKEN: a scraper in another container (not loopback) with a token that never
    expires."""

    TOKEN = "scrape-" + "k" * 40

    def _scraper(self, clean: Context, **headers: str) -> TestClient:
        settings = make_settings(clean.settings.database_url, metrics_token=self.TOKEN)
        app = create_app(settings, context=clean)
        return TestClient(
            app, client=("172.18.0.5", 40000), headers=headers, raise_server_exceptions=False
        )

    def test_a_remote_scraper_with_the_token_gets_the_metrics(self, clean: Context) -> None:
        response = self._scraper(clean, Authorization=f"Bearer {self.TOKEN}").get("/metrics")
        assert response.status_code == 200 and "doxa_outbox_depth" in response.text

    def test_a_wrong_or_missing_token_gets_401_problem(self, clean: Context) -> None:
        for headers in ({"Authorization": f"Bearer {self.TOKEN[:-1]}x"}, {}):
            response = self._scraper(clean, **headers).get("/metrics")
            assert response.status_code == 401
            assert response.headers["content-type"] == "application/problem+json"

    def test_the_token_opens_nothing_but_the_metrics(self, clean: Context) -> None:
        scraper = self._scraper(clean, Authorization=f"Bearer {self.TOKEN}")
        assert scraper.get("/api/v1/tickets").status_code == 401
        assert scraper.get("/api/v1/intake").status_code == 401

    def test_without_the_setting_a_remote_scraper_needs_an_admin_token(
        self, client: TestClient
    ) -> None:
        response = client.get("/metrics", headers={"Authorization": f"Bearer {self.TOKEN}"})
        assert response.status_code == 401

    def test_a_short_token_stops_the_start_naming_the_variable(self) -> None:
        with pytest.raises(ConfigError, match=r"^METRICS_TOKEN: must be a random value"):
            load_settings(doxa_env="dev", metrics_token="metrics", _env_file=None)


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
