"""The way in for a person: `/` leads to Swagger UI."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient


class TestHome:
    def test_root_redirects_to_swagger(self, client: TestClient) -> None:
        response = client.get("/", follow_redirects=False)
        assert response.status_code in (302, 307)
        assert response.headers["location"] == "/docs"
        assert client.get("/").url.path == "/docs"


class TestOpenApi:
    def _operations(self, client: TestClient) -> list[dict[str, Any]]:
        paths = client.get("/openapi.json").json()["paths"]
        return [operation for item in paths.values() for operation in item.values()]

    def test_operation_ids_read_as_tag_and_action(self, client: TestClient) -> None:
        ids = {operation["operationId"] for operation in self._operations(client)}
        assert {"tickets-list", "tickets-get", "users-get", "auth-login", "intake-release"} <= ids
        assert not any("api_v1" in operation_id for operation_id in ids)

    def test_each_operation_is_listed_once_under_one_tag(self, client: TestClient) -> None:
        operations = self._operations(client)
        assert all(len(operation["tags"]) == 1 for operation in operations)
        ids = [operation["operationId"] for operation in operations]
        assert len(ids) == len(set(ids))
