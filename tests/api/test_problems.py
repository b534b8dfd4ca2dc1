from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from doxa.core.context import Context
from doxa.main import create_app
from tests.conftest import AsUser, MakeUser, make_settings

PROBLEM = "application/problem+json"


def _is_problem(response: httpx2.Response, status: int) -> bool:
    body: dict[str, object] = response.json()
    return (
        response.status_code == status
        and response.headers["content-type"] == PROBLEM
        and {"type", "title", "status", "detail"} <= body.keys()
        and body["status"] == status
        # the id a user quotes from the body is the one in the response's header
        and body["request_id"] == response.headers["x-request-id"]
    )


class TestProblems:
    def test_unknown_path_is_404_problem(self, client: TestClient) -> None:
        assert _is_problem(client.get("/api/v1/nope"), 404)

    def test_wrong_method_is_405_problem(self, client: TestClient) -> None:
        assert _is_problem(client.delete("/api/v1/tickets"), 405)

    def test_malformed_json_is_422_problem(self, as_user: AsUser, make_user: MakeUser) -> None:
        response = as_user(make_user()).post(
            "/api/v1/tickets", content=b'{"subject": ', headers={"content-type": "application/json"}
        )
        assert _is_problem(response, 422)

    def test_unsigned_webhook_post_is_401_problem(self, client: TestClient) -> None:
        assert _is_problem(client.post("/api/v1/inbound/form", json={"email": "a@b.c"}), 401)

    def test_non_numeric_id_is_422_problem(self, as_user: AsUser, make_user: MakeUser) -> None:
        assert _is_problem(as_user(make_user()).get("/api/v1/tickets/abc"), 422)

    def test_body_over_the_declared_limit_is_413_problem(
        self, as_user: AsUser, make_user: MakeUser
    ) -> None:
        huge = b'{"subject": "x", "body": "' + b"a" * 2_000_000 + b'"}'
        response = as_user(make_user()).post(
            "/api/v1/tickets", content=huge, headers={"content-type": "application/json"}
        )
        assert _is_problem(response, 413)

    def test_streamed_body_over_the_limit_is_413_problem(
        self, as_user: AsUser, make_user: MakeUser
    ) -> None:
        def chunks() -> Iterator[bytes]:
            yield b'{"subject": "x", "body": "'
            for _ in range(40):
                yield b"a" * 65536
            yield b'"}'

        response = as_user(make_user()).post(
            "/api/v1/tickets", content=chunks(), headers={"content-type": "application/json"}
        )
        assert _is_problem(response, 413)

    def test_unexpected_error_is_500_problem_with_request_id_and_no_traceback(
        self, context: Context
    ) -> None:
        app: FastAPI = create_app(context.settings, context=context)

        @app.get("/boom")
        def boom() -> None:
            raise RuntimeError("secret internals")

        response = TestClient(app, raise_server_exceptions=False).get("/boom")
        assert _is_problem(response, 500)
        assert "secret internals" not in response.text and "Traceback" not in response.text
        assert response.json()["request_id"] == response.headers["x-request-id"]


class TestDatabaseDown:
    @pytest.fixture
    def down(self, context: Context) -> Iterator[TestClient]:
        settings = make_settings(
            "postgresql://postgres@127.0.0.1:1/doxa", jwt_secret=context.settings.secret
        )
        app = create_app(settings)
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client

    def test_api_answers_503_problem_with_retry_after(
        self, down: TestClient, context: Context
    ) -> None:
        token = context.tokens.issue(1)
        response = down.get("/api/v1/tickets", headers={"Authorization": f"Bearer {token}"})
        assert _is_problem(response, 503) and response.headers["retry-after"]

    def test_readyz_says_not_ready(self, down: TestClient) -> None:
        response = down.get("/readyz")
        assert response.status_code == 503 and response.json()["checks"]["database"] != "ok"
