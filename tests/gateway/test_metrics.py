"""/metrics after real traffic: mail over SMTP, webhook posts and calls to the API move the
counters."""

from __future__ import annotations

import smtplib

import pytest
from fastapi.testclient import TestClient

from doxa.core.db import transaction
from doxa.core.enums import Role
from doxa.core.models import User
from tests.api.test_metrics import sample
from tests.gateway.conftest import Smtp, message
from tests.gateway.webhook_support import form_json, signed

FORM = "/api/v1/inbound/form"


def _scrape(smtp: Smtp, token: str) -> str:
    response = smtp.http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.text


def _admin_token(smtp: Smtp) -> str:
    with transaction(smtp.context.sessions) as db:
        admin = User(email="ops@example.com", role=Role.ADMIN, full_name="Ops")
        db.add(admin)
        db.flush()
        admin_id = admin.id
    return smtp.context.tokens.issue(admin_id)


class TestMetricsAfterTraffic:
    def test_mail_and_api_calls_move_the_counters(self, smtp: Smtp) -> None:
        token = _admin_token(smtp)
        before = _scrape(smtp, token)
        smtp.send(message("Printer on fire", message_id="metrics-1@example.org"))
        smtp.send(message("Printer on fire", message_id="metrics-1@example.org"))  # again
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.send(message(), to="nobody@elsewhere.example")
        smtp.settle()
        api = TestClient(smtp.http.app, headers={"Authorization": f"Bearer {token}"})
        assert api.get("/api/v1/tickets").status_code == 200
        after = _scrape(smtp, token)

        def moved(name: str, **labels: str) -> float:
            return sample(after, name, **labels) - sample(before, name, **labels)

        assert moved("doxa_intake_received_total", channel="email", outcome="received") == 1
        assert moved("doxa_intake_received_total", channel="email", outcome="duplicate") == 1
        assert moved("doxa_intake_processed_total", outcome="ticket_created") == 1
        assert moved("doxa_intake_processing_seconds_count") >= 1
        assert moved("doxa_smtp_replies_total", code="250") >= 2
        assert moved("doxa_smtp_replies_total", code="550") == 1
        route = {"route": "/api/v1/tickets", "status": "200"}
        assert moved("doxa_http_request_duration_seconds_count", **route) == 1
        assert sample(after, "doxa_outbox_depth") == 0


class TestWebhookMetrics:
    def test_a_form_post_is_counted_as_an_answer_and_as_intake(self, hooks: Smtp) -> None:
        token = _admin_token(hooks)
        before = _scrape(hooks, token)
        body, headers = form_json(), signed(form_json())
        for _ in range(2):  # the second is a retry: answered as the first, counted a duplicate
            assert hooks.http.post(FORM, content=body, headers=headers).status_code == 202
        wrong = signed(body, secret="guessed")
        assert hooks.http.post(FORM, content=body, headers=wrong).status_code == 401
        after = _scrape(hooks, token)

        def moved(name: str, **labels: str) -> float:
            return sample(after, name, **labels) - sample(before, name, **labels)

        answers = "doxa_webhook_answers_total"
        assert moved(answers, endpoint="form", status="202") == 2
        assert moved(answers, endpoint="form", status="401") == 1
        received = "doxa_intake_received_total"
        assert moved(received, channel="form", outcome="received") == 1
        assert moved(received, channel="form", outcome="duplicate") == 1
