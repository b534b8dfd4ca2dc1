"""The way in for a person: `/` leads to Swagger UI."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from doxa.core.context import Context
from doxa.core.enums import EventType, Role
from doxa.core.models import AccountMail, Message, Ticket, User
from doxa.core.triage.labels import categories
from tests.conftest import AsUser, MailClient, MakeTicket, MakeUser


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

    def test_the_feed_lists_every_event_type_with_an_example(self, client: TestClient) -> None:
        description = _operation(_document(client), "events-list")["description"]
        for kind in EventType:
            line = next(li for li in description.splitlines() if li.startswith(f"- `{kind}`"))
            assert line.endswith("}`"), line  # the example payload, as JSON

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
        self, as_user: AsUser, make_user: MakeUser, db: Session
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


def _write_examples(document: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(method, path, operation id, example) for each write operation with a JSON example."""
    schemas = document["components"]["schemas"]
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            json_body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if method == "get" or json_body is None or "$ref" not in json_body["schema"]:
                continue  # the inbound webhooks (signed, no example) describe their body inline
            examples = schemas[json_body["schema"]["$ref"].rsplit("/", 1)[-1]].get("examples")
            if examples:
                found.append((method, path, operation["operationId"], examples[0]))
    return found


class _Ids(dict[str, int]):
    """Path ids: the customer's ticket and user; any other (a team) the first of its kind,
    which pressing its POST example has just made."""

    def __missing__(self, key: str) -> int:
        return 1


class TestPressingEveryExampleUnedited:
    """What an admin gets by pressing Execute on every write operation of /docs as it stands,
    on a help desk that mails (a relay is set) and has a customer's ticket: nothing the
    customer or the data would notice."""

    def test_no_mail_reaches_the_customer_and_nothing_existing_changes(
        self,
        mail_client: MailClient,
        make_user: MakeUser,
        make_ticket: MakeTicket,
        db: Session,
        clean: Context,
    ) -> None:
        customer = make_user(Role.CLIENT, email="customer@example.net")
        ticket = make_ticket(customer)
        admin, user = mail_client(), make_user(Role.ADMIN)
        admin.headers["Authorization"] = f"Bearer {clean.tokens.issue(user.id, user.token_version)}"
        before = self._state(db, ticket.id)
        pressed = set()
        for method, path, operation_id, example in _write_examples(_document(admin)):
            url = path.format_map(_Ids(ticket_id=ticket.id, user_id=customer.id))
            response = admin.request(method.upper(), url, json=example)
            assert response.status_code < 500, (operation_id, response.text)
            pressed.add(operation_id)
        assert {"tickets-update", "users-update", "classifier-add-categories"} <= pressed
        assert {"teams-create", "teams-update", "users-update-me"} <= pressed
        db.expire_all()
        assert self._state(db, ticket.id) == before

    @staticmethod
    def _state(db: Session, ticket_id: int) -> dict[str, Any]:
        ticket = db.get(Ticket, ticket_id)
        assert ticket is not None
        public = select(Message.body).where(
            Message.ticket_id == ticket_id, Message.internal.is_(False)
        )
        people = select(User.email).scalar_subquery()
        return {
            "ticket": (ticket.status, ticket.priority, ticket.category, ticket.assignee_id),
            "public messages": list(db.scalars(public)),
            "users": sorted(db.execute(select(User.email, User.role, User.is_active)).all()),
            "account mail to them": db.scalar(
                select(func.count(AccountMail.id)).where(AccountMail.recipient.in_(people))
            ),
            "categories": categories(db),
        }
