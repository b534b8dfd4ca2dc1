"""CORS_ALLOWED_ORIGINS: a front end on a listed origin may call the API and the stream."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from doxa.core.context import Context
from doxa.main import create_app
from tests.conftest import make_settings

LISTED = "https://app.example.com"


@pytest.fixture
def browser(clean: Context) -> TestClient:
    settings = make_settings(clean.settings.database_url, cors_allowed_origins=LISTED)
    return TestClient(create_app(settings, context=clean), raise_server_exceptions=False)


def preflight(client: TestClient, origin: str, path: str) -> dict[str, str]:
    answer = client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Authorization",
        },
    )
    return {k: v for k, v in answer.headers.items() if k.startswith("access-control-")}


class TestPreflight:
    @pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/events/stream"])
    def test_a_listed_origin_is_allowed_the_authorization_header(
        self, browser: TestClient, path: str
    ) -> None:
        allowed = preflight(browser, LISTED, path)
        assert allowed["access-control-allow-origin"] == LISTED
        assert "authorization" in allowed["access-control-allow-headers"].lower()
        assert "GET" in allowed["access-control-allow-methods"]
        assert "access-control-allow-credentials" not in allowed

    def test_an_unlisted_origin_gets_no_allow_headers(self, browser: TestClient) -> None:
        assert preflight(browser, "https://evil.example.net", "/api/v1/events") == {}

    def test_without_the_setting_no_origin_is_allowed(self, client: TestClient) -> None:
        assert preflight(client, LISTED, "/api/v1/events") == {}
