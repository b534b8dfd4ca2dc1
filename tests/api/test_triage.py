"""Classification as users see it: tickets classified in the background, triage, learning."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from doxa.core.context import Context
from doxa.core.enums import ClassificationState, Role, Status
from doxa.core.models import Base, ClassificationCorrection, Event, Ticket
from doxa.main import create_app
from tests.conftest import MakeTicket, MakeUser, empty_tables, make_settings

StartApp = Callable[..., TestClient]
DOXA = str(Path(sys.executable).with_name("doxa"))


@pytest.fixture
def start_app(clean: Context) -> Iterator[StartApp]:
    """The real app with classification on (the suite's default is off)."""
    with ExitStack() as stack:

        def start(**overrides: object) -> TestClient:
            values = {"ai_provider": "local", "jwt_secret": clean.settings.secret, **overrides}
            settings = make_settings(clean.settings.database_url, **values)
            app = create_app(settings, context=replace(clean, settings=settings))
            return stack.enter_context(TestClient(app, raise_server_exceptions=False))

        yield start


def _settled(context: Context, count: int, timeout: float = 30) -> list[Ticket]:
    deadline = time.monotonic() + timeout
    while True:
        with context.sessions() as db:
            tickets = list(db.scalars(select(Ticket).order_by(Ticket.id)))
        done = [t for t in tickets if t.classification_state is not ClassificationState.PENDING]
        if len(done) >= count or time.monotonic() > deadline:
            return tickets
        time.sleep(0.05)


def _auth(context: Context, user_id: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {context.tokens.issue(user_id)}"}


class TestBackgroundClassification:
    def test_new_ticket_is_classified_and_a_confident_answer_applied(
        self, start_app: StartApp, clean: Context, make_user: MakeUser
    ) -> None:
        api = start_app()
        me = _auth(clean, make_user().id)
        api.post(
            "/api/v1/tickets",
            headers=me,
            json={
                "subject": "Charged twice for my subscription",
                "body": "My credit card was billed two times this month, please refund one.",
            },
        )
        [ticket] = _settled(clean, 1)
        assert ticket.classification_state is ClassificationState.DONE
        assert ticket.ai_category == "billing" and ticket.ai_model_version
        assert ticket.ai_confidence is not None and 0 <= ticket.ai_confidence <= 1
        assert ticket.category == "billing" and ticket.needs_triage is False

    def test_staff_see_why_a_ticket_was_classified_and_its_requester_does_not(
        self, start_app: StartApp, clean: Context, make_user: MakeUser
    ) -> None:
        api = start_app()
        client, agent = _auth(clean, make_user().id), _auth(clean, make_user(Role.AGENT).id)
        created = api.post(
            "/api/v1/tickets",
            headers=client,
            json={
                "subject": "Charged twice",
                "body": "My invoice shows a double payment, refund please",
            },
        ).json()
        _settled(clean, 1)
        url = f"/api/v1/tickets/{created['id']}"
        staff_view = api.get(url, headers=agent).json()["ai_explanation"]
        assert staff_view and all(isinstance(term, str) for term in staff_view)
        assert api.get(url, headers=client).json()["ai_explanation"] is None
        listed = api.get("/api/v1/tickets", headers=client).json()["items"]
        assert [item["ai_explanation"] for item in listed] == [None]
        listed = api.get("/api/v1/tickets", headers=agent).json()["items"]
        assert [item["ai_explanation"] for item in listed] == [staff_view]

    def test_below_the_threshold_goes_to_triage_with_the_suggestion_kept(
        self, start_app: StartApp, clean: Context, make_user: MakeUser
    ) -> None:
        api = start_app(ai_confidence_threshold=1.0)
        agent = _auth(clean, make_user(Role.AGENT).id)
        api.post("/api/v1/tickets", headers=agent, json={"subject": "Hello", "body": "Question"})
        [ticket] = _settled(clean, 1)
        assert ticket.needs_triage and ticket.category is None and ticket.ai_category
        queue = api.get("/api/v1/tickets", params={"needs_triage": True}, headers=agent).json()
        assert [t["id"] for t in queue["items"]] == [ticket.id]

    def test_tickets_left_pending_by_a_crash_are_classified_at_start(
        self, start_app: StartApp, clean: Context, make_ticket: MakeTicket
    ) -> None:
        for _ in range(3):
            make_ticket(subject="The app crashes", body="It crashes on start since the update")
        start_app()
        tickets = _settled(clean, 3)
        assert {t.classification_state for t in tickets} == {ClassificationState.DONE}

    def test_two_instances_never_classify_a_ticket_twice(
        self, start_app: StartApp, clean: Context, make_ticket: MakeTicket
    ) -> None:
        if clean.engine.dialect.name != "postgresql":
            pytest.skip("row claims across processes are a PostgreSQL feature (SKIP LOCKED)")
        for n in range(60):
            make_ticket(subject=f"Password reset {n}", body="I cannot log in to my account")
        start_app(), start_app()
        _settled(clean, 60)
        with clean.sessions() as db:
            per_ticket = db.execute(
                select(Event.ticket_id, func.count())
                .where(Event.type == "ticket.classified")
                .group_by(Event.ticket_id)
            ).all()
        assert len(per_ticket) == 60 and {count for _, count in per_ticket} == {1}


class TestLanguage:
    def test_each_ticket_gets_its_language_and_the_list_filters_by_it(
        self, start_app: StartApp, clean: Context, make_user: MakeUser
    ) -> None:
        api = start_app()
        agent = _auth(clean, make_user(Role.AGENT).id)
        for subject, body in [
            (
                "Rechnung doppelt",
                "Sehr geehrtes Support-Team, meine Rechnung wurde doppelt belastet",
            ),
            ("Invoice charged twice", "My credit card was billed two times this month"),
            ("Hi", "?"),
        ]:
            api.post("/api/v1/tickets", headers=agent, json={"subject": subject, "body": body})
        tickets = _settled(clean, 3)
        assert [t.language for t in tickets] == ["de", "en", None]
        german = api.get("/api/v1/tickets", params={"language": "de"}, headers=agent).json()
        assert [item["subject"] for item in german["items"]] == ["Rechnung doppelt"]
        assert german["items"][0]["language"] == "de"
        bad = api.get("/api/v1/tickets", params={"language": "german"}, headers=agent)
        assert bad.status_code == 422


class TestSimilar:
    def test_like_tickets_come_back_resolved_ones_first(
        self, start_app: StartApp, clean: Context, make_user: MakeUser
    ) -> None:
        api = start_app()
        agent = _auth(clean, make_user(Role.AGENT).id)
        texts = [
            ("Password reset link expired", "The reset link in the email says it expired"),
            ("Reset password link not working", "My password reset link has expired again"),
            ("Invoice charged twice", "My credit card was billed two times this month"),
            ("Cannot reset my password", "The password reset link expired before I clicked"),
        ]
        for subject, body in texts:
            api.post("/api/v1/tickets", headers=agent, json={"subject": subject, "body": body})
        tickets = _settled(clean, 4)
        with clean.sessions.begin() as db:
            resolved = db.get(Ticket, tickets[1].id)
            assert resolved is not None
            resolved.status = Status.RESOLVED
        response = api.get(f"/api/v1/tickets/{tickets[3].id}/similar", headers=agent)
        assert response.status_code == 200, response.text
        found = response.json()
        assert [f["ticket"]["id"] for f in found[:2]] == [tickets[1].id, tickets[0].id]
        assert tickets[3].id not in [f["ticket"]["id"] for f in found]
        billing = next(f for f in found if f["ticket"]["id"] == tickets[2].id)
        assert billing["similarity"] < min(f["similarity"] for f in found[:2])
        limited = api.get(
            f"/api/v1/tickets/{tickets[3].id}/similar", params={"limit": 1}, headers=agent
        ).json()
        closest = max(found, key=lambda f: float(f["similarity"]))
        assert [f["ticket"]["id"] for f in limited] == [closest["ticket"]["id"]]

    def test_clients_may_not_ask(
        self, start_app: StartApp, clean: Context, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        client = make_user()
        ticket = make_ticket(requester=client)
        api = start_app()
        response = api.get(f"/api/v1/tickets/{ticket.id}/similar", headers=_auth(clean, client.id))
        assert response.status_code == 403


class TestLearning:
    def test_agent_correction_is_a_label_and_retraining_learns_from_it(
        self, start_app: StartApp, clean: Context, make_user: MakeUser
    ) -> None:
        api = start_app()
        agent, admin = (
            _auth(clean, make_user(Role.AGENT).id),
            _auth(clean, make_user(Role.ADMIN).id),
        )
        body = {"subject": "Charged twice", "body": "Billed two times, refund please"}
        created = api.post("/api/v1/tickets", headers=agent, json=body).json()
        _settled(clean, 1)
        before = api.get("/api/v1/classifier", headers=agent).json()
        api.patch(f"/api/v1/tickets/{created['id']}", headers=agent, json={"category": "account"})
        with clean.sessions() as db:
            [label] = db.scalars(select(ClassificationCorrection)).all()
        assert (label.predicted, label.corrected) == ("billing", "account")
        assert api.post("/api/v1/classifier/retrain", headers=admin).status_code == 202
        after = _new_version(api, agent, before["version"])
        assert after["training_size"] == before["training_size"] + 1

    def test_retrain_is_for_admins_only(
        self, start_app: StartApp, clean: Context, make_user: MakeUser
    ) -> None:
        api = start_app()
        response = api.post(
            "/api/v1/classifier/retrain", headers=_auth(clean, make_user(Role.AGENT).id)
        )
        assert response.status_code == 403

    def test_classify_again_on_request(
        self, start_app: StartApp, clean: Context, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        ticket = make_ticket(subject="Feature idea", body="Please add an export to CSV")
        api = start_app()  # its start-up pass classifies what is pending
        _settled(clean, 1)
        response = api.post(
            f"/api/v1/tickets/{ticket.id}/classify", headers=_auth(clean, make_user(Role.AGENT).id)
        )
        assert response.status_code == 200 and response.json()["ai_category"] == "feature_request"


def _new_version(api: TestClient, headers: dict[str, str], old: str) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        info = api.get("/api/v1/classifier", headers=headers).json()
        if info["version"] != old and not info["training"]:
            return dict(info)
        time.sleep(0.1)
    raise AssertionError("no new classifier version after retraining")


class TestFreshInstall:
    def test_the_classifier_is_trained_from_the_seed_set_at_start(
        self, start_app: StartApp, clean: Context, make_user: MakeUser
    ) -> None:
        api = start_app()
        agent = _auth(clean, make_user(Role.AGENT).id)
        deadline = time.monotonic() + 30
        while (response := api.get("/api/v1/classifier", headers=agent)).status_code == 404:
            assert time.monotonic() < deadline, "no model after start-up"
            time.sleep(0.1)
        assert response.status_code == 200, response.text
        info = response.json()
        assert info["training_size"] >= 300 and "billing" in info["labels"]["category"]
        assert info["evaluation"]["category"]["accuracy"] > 0.5


# A help desk's own export: categories the seed set never heard of, a priority column of its own.
_WORDS = {
    "plumbing": ["leak", "pipe", "faucet", "drain", "toilet", "water", "sink", "boiler"],
    "catering": ["lunch", "menu", "coffee", "sandwich", "buffet", "vegan", "meal", "snacks"],
    "parking": ["car", "garage", "permit", "spot", "barrier", "vehicle", "lot", "badge"],
}


def _export(path: Path, rows: range) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["subject", "body", "category", "priority"])
        for n in rows:
            for category, words in _WORDS.items():
                a, b, c = (words[(n * k) % len(words)] for k in (1, 3, 5))
                writer.writerow(
                    [f"{a} {b} issue {n}", f"The {a} and the {c} near room {n}", category, "P2"]
                )
    return path


def _doxa(environment: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DOXA, "classifier", *args], env=environment, capture_output=True, text=True, timeout=180
    )


@pytest.fixture(scope="module")
def trained_rows(
    context: Context, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, str], dict[str, list[dict[str, Any]]]]:
    """`doxa classifier train` on an export into empty tables, once per backend (a new
    process that trains takes seconds): its environment and every row it stored."""
    empty_tables(context)
    environment = {
        **os.environ,
        "DATABASE_URL": context.settings.database_url,
        "DOXA_ENV": "dev",
        "SUPPORT_ADDRESSES": "support@example.com,cars@example.com=parking,hr@example.com=hr",
    }
    export = _export(tmp_path_factory.mktemp("own") / "own.csv", range(24))
    result = _doxa(environment, "train", "--data", str(export))
    assert result.returncode == 0, result.stderr
    with context.engine.connect() as connection:
        stored = {
            table.name: [dict(row._mapping) for row in connection.execute(table.select())]
            for table in Base.metadata.sorted_tables
        }
    return environment, {name: rows for name, rows in stored.items() if rows}


class TestOwnTaxonomy:
    """A help desk moves from the seed model to its own data and categories."""

    @pytest.fixture
    def trained(
        self, clean: Context, trained_rows: tuple[dict[str, str], dict[str, list[dict[str, Any]]]]
    ) -> dict[str, str]:
        """The database as `doxa classifier train` left it."""
        environment, stored = trained_rows
        with clean.engine.begin() as connection:
            for table in Base.metadata.sorted_tables:
                if table.name in stored:
                    connection.execute(table.insert(), stored[table.name])
                    if connection.dialect.name == "postgresql":  # the ids were given
                        sequence = func.pg_get_serial_sequence(table.name, "id")
                        last = select(func.max(table.c.id)).scalar_subquery()
                        connection.execute(select(func.setval(sequence, last)))
        return environment

    def test_training_on_own_data_makes_its_labels_the_taxonomy(
        self, trained: dict[str, str], start_app: StartApp, clean: Context, make_user: MakeUser
    ) -> None:
        api = start_app(support_addresses="support@example.com,hr@example.com=hr")
        info = api.get("/api/v1/classifier", headers=_auth(clean, make_user(Role.AGENT).id))
        assert info.status_code == 200, info.text
        body = info.json()
        assert body["labels"]["category"] == ["catering", "parking", "plumbing"]
        assert body["categories"] == ["catering", "hr", "parking", "plumbing"]
        assert body["trained_on"] == "own data"
        per_label = body["evaluation"]["category"]["per_label"]
        assert set(per_label) == {"catering", "parking", "plumbing"}
        assert set(per_label["parking"]) == {"precision", "recall", "f1", "support"}
        curve = body["evaluation"]["thresholds"]
        assert [point["threshold"] for point in curve] == [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
        assert all(0 <= point["coverage"] <= 1 for point in curve)

    def test_new_tickets_get_only_own_categories(
        self, trained: dict[str, str], start_app: StartApp, clean: Context, make_user: MakeUser
    ) -> None:
        api = start_app()
        me = _auth(clean, make_user().id)
        api.post(
            "/api/v1/tickets",
            headers=me,
            json={
                "subject": "Charged twice for my subscription",
                "body": "Refund my credit card",
            },
        )
        [ticket] = _settled(clean, 1)
        assert ticket.ai_category in {"catering", "parking", "plumbing"}

    def test_ticket_category_must_be_in_the_taxonomy(
        self,
        trained: dict[str, str],
        start_app: StartApp,
        clean: Context,
        make_user: MakeUser,
        make_ticket: MakeTicket,
    ) -> None:
        api = start_app()
        agent = _auth(clean, make_user(Role.AGENT).id)
        ticket = make_ticket(subject="Leaking pipe", body="Water everywhere")
        url = f"/api/v1/tickets/{ticket.id}"
        assert api.patch(url, headers=agent, json={"category": "bug"}).status_code == 422
        assert api.patch(url, headers=agent, json={"category": "plumbing"}).status_code == 200

    def test_an_admin_adds_a_category_agents_can_use_at_once(
        self,
        trained: dict[str, str],
        start_app: StartApp,
        clean: Context,
        make_user: MakeUser,
        make_ticket: MakeTicket,
    ) -> None:
        api = start_app()
        agent = _auth(clean, make_user(Role.AGENT).id)
        admin = _auth(clean, make_user(Role.ADMIN).id)
        change = {"categories": ["security"]}
        assert api.patch("/api/v1/classifier", headers=agent, json=change).status_code == 403
        response = api.patch("/api/v1/classifier", headers=admin, json=change)
        assert response.status_code == 200 and "security" in response.json()["categories"]
        ticket = make_ticket(subject="Badge cloned", body="Someone copied my badge")
        url = f"/api/v1/tickets/{ticket.id}"
        assert api.patch(url, headers=agent, json={"category": "security"}).status_code == 200
        assert "security" in api.get("/api/v1/classifier", headers=agent).json()["categories"]

    def test_corrections_teach_an_added_category_at_the_next_retrain(
        self, trained: dict[str, str], start_app: StartApp, clean: Context, make_user: MakeUser
    ) -> None:
        api = start_app()
        agent = _auth(clean, make_user(Role.AGENT).id)
        admin = _auth(clean, make_user(Role.ADMIN).id)
        api.patch("/api/v1/classifier", headers=admin, json={"categories": ["security"]})
        created = api.post(
            "/api/v1/tickets",
            headers=agent,
            json={
                "subject": "Badge cloned",
                "body": "Someone copied my access badge at the garage",
            },
        ).json()
        _settled(clean, 1)
        url = f"/api/v1/tickets/{created['id']}"
        assert api.patch(url, headers=agent, json={"category": "security"}).status_code == 200
        before = api.get("/api/v1/classifier", headers=agent).json()
        assert "security" not in before["labels"]["category"]
        assert api.post("/api/v1/classifier/retrain", headers=admin).status_code == 202
        after = _new_version(api, agent, before["version"])
        labels = after["labels"]
        assert isinstance(labels, dict)
        assert labels["category"] == ["catering", "parking", "plumbing", "security"]

    def test_eval_reports_over_the_labels_of_the_file_only(
        self, trained: dict[str, str], tmp_path: Path
    ) -> None:
        held_out = _export(tmp_path / "test.csv", range(100, 106))
        result = _doxa(trained, "eval", "--data", str(held_out))
        assert result.returncode == 0, result.stderr
        assert "accuracy" in result.stdout and "macro-F1" in result.stdout
        table = result.stdout.split("category:", 1)[1].split("priority", 1)[0]
        labels = {line.split()[0] for line in table.splitlines()[2:] if line.strip()}
        assert labels == {"catering", "parking", "plumbing"}
