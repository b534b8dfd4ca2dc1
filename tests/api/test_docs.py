"""The way in for a person: `/` leads to Swagger UI."""

from __future__ import annotations

from fastapi.testclient import TestClient


class TestHome:
    def test_root_redirects_to_swagger(self, client: TestClient) -> None:
        response = client.get("/", follow_redirects=False)
        assert response.status_code in (302, 307)
        assert response.headers["location"] == "/docs"
        assert client.get("/").url.path == "/docs"
