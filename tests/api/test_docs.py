"""The way in for a person: `/` leads to Swagger UI."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from doxa.core.enums import Role
from doxa.core.models import User
from tests.conftest import AsUser, MakeUser


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


def _document(client: TestClient) -> dict[str, Any]:
    document: dict[str, Any] = client.get("/openapi.json").json()
    return document


def _operation(document: dict[str, Any], operation_id: str) -> dict[str, Any]:
    for item in document["paths"].values():
        for operation in item.values():
            if operation["operationId"] == operation_id:
                return dict(operation)
    raise AssertionError(f"no operation {operation_id}")


class TestErrorAnswers:
    @pytest.mark.parametrize(
        ("operation_id", "statuses"),
        [
            ("auth-login", {400, 401, 413, 422, 429, 503}),
            ("auth-me", {401, 503}),
            ("tickets-list", {401, 422, 503}),
            ("tickets-get", {401, 404, 422, 503}),
            ("tickets-create", {400, 401, 403, 413, 422, 503}),
            ("tickets-update", {400, 401, 403, 404, 409, 413, 422, 503}),
            ("tickets-post-message", {400, 401, 403, 404, 413, 422, 503}),
            ("users-get", {401, 403, 404, 422, 503}),
            ("users-create", {400, 401, 403, 409, 413, 422, 429, 503}),
            ("intake-release", {401, 403, 404, 409, 422, 503}),
            ("classifier-retrain", {401, 403, 409, 503}),
            ("health-healthz", set()),
            ("health-readyz", {503}),
        ],
    )
    def test_each_operation_lists_the_errors_it_can_answer_and_no_others(
        self, client: TestClient, operation_id: str, statuses: set[int]
    ) -> None:
        responses = _operation(_document(client), operation_id)["responses"]
        assert {int(code) for code in responses if int(code) >= 400} == statuses

    def test_errors_are_documented_as_problem_json(self, client: TestClient) -> None:
        problem = _operation(_document(client), "tickets-get")["responses"]["404"]
        assert problem["content"] == {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        }

    def test_a_body_that_is_not_utf8_gets_the_documented_400(
        self, as_user: AsUser, make_user: MakeUser
    ) -> None:
        agent = as_user(make_user(Role.AGENT))
        response = agent.post(
            "/api/v1/tickets",
            content=b'{"subject": "\xff\xfe", "body": "x"}',
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"
        assert "400" in _operation(_document(agent), "tickets-create")["responses"]


class TestDescriptions:
    def test_every_tag_in_use_is_described(self, client: TestClient) -> None:
        document = _document(client)
        described = {tag["name"]: tag["description"] for tag in document["tags"]}
        used = {
            operation["tags"][0]
            for item in document["paths"].values()
            for operation in item.values()
        }
        assert used <= set(described) and all(described.values())

    def test_every_request_body_has_an_example(self, client: TestClient) -> None:
        document = _document(client)
        schemas = document["components"]["schemas"]
        for item in document["paths"].values():
            for operation in item.values():
                content = operation.get("requestBody", {}).get("content", {})
                json_body = content.get("application/json")
                if json_body is None or operation["tags"] == ["inbound"]:
                    continue
                name = json_body["schema"]["$ref"].rsplit("/", 1)[-1]
                assert schemas[name].get("examples"), f"{operation['operationId']}: {name}"


class TestTryItOut:
    def test_the_ticket_example_names_no_requester(self, client: TestClient) -> None:
        schema = _document(client)["components"]["schemas"]["TicketCreate"]
        assert "requester_email" in schema["properties"]
        assert all("requester_email" not in example for example in schema["examples"])

    def test_an_agent_sending_the_ticket_example_as_it_stands_makes_up_no_user(
        self, as_user: AsUser, make_user: MakeUser, db: Any
    ) -> None:
        agent = as_user(make_user(Role.AGENT))
        [example] = _document(agent)["components"]["schemas"]["TicketCreate"]["examples"]
        response = agent.post("/api/v1/tickets", json=example)
        assert response.status_code == 201
        assert response.json()["requester"]["email"].startswith("agent-")  # the agent's own
        assert db.scalar(select(func.count(User.id))) == 1

    def test_password_examples_are_left_for_the_person_trying_to_choose(
        self, client: TestClient
    ) -> None:
        schemas = _document(client)["components"]["schemas"]
        for name, field in [("UserCreate", "password"), ("PasswordChange", "new_password")]:
            assert schemas[name]["examples"][0][field] == ""
