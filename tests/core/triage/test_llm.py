from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from doxa.core.triage.llm import ChatClassifier
from doxa.core.triage.text_classifier import TextClassifier

GOOD = {
    "category": "billing",
    "category_confidence": 0.93,
    "priority": "high",
    "priority_confidence": 0.7,
}


class FakeChatServer(ThreadingHTTPServer):
    """Speaks just enough of the OpenAI chat API: the next answer and delay are set per test."""

    daemon_threads = True
    answer: str = json.dumps(GOOD)
    delay: float = 0.0
    status: int = 200
    requests: list[dict[str, Any]]


class _Handler(BaseHTTPRequestHandler):
    server: FakeChatServer

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        request = json.loads(self.rfile.read(length))
        request["authorization"] = self.headers.get("Authorization")
        request["path"] = self.path
        self.server.requests.append(request)
        time.sleep(self.server.delay)
        body = json.dumps(
            {
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": self.server.answer}}
                ]
            }
        ).encode()
        try:
            self.send_response(self.server.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[FakeChatServer]:
    fake = FakeChatServer(("127.0.0.1", 0), _Handler)
    fake.requests = []
    thread = threading.Thread(target=fake.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.shutdown()
    fake.server_close()
    thread.join()


@pytest.fixture
def provider(server: FakeChatServer, seed_model: TextClassifier) -> Iterator[ChatClassifier]:
    chat = ChatClassifier(
        base_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
        model="tiny-triage",
        api_key="test-key",
        fallback=seed_model,
        timeout=0.5,
        retries=1,
        backoff=0.01,
    )
    yield chat
    chat.close()


SUBJECT, BODY = "Charged twice", "Please refund the duplicate charge on my card."


class TestChatClassifier:
    def test_a_good_answer_is_used(self, provider: ChatClassifier, server: FakeChatServer) -> None:
        prediction = provider.predict(SUBJECT, BODY)
        assert (prediction.category, prediction.category_confidence) == ("billing", 0.93)
        assert (prediction.priority, prediction.priority_confidence) == ("high", 0.7)
        assert prediction.model_version == "openai:tiny-triage"
        [request] = server.requests
        assert request["path"] == "/v1/chat/completions"
        assert request["model"] == "tiny-triage"
        assert request["authorization"] == "Bearer test-key"
        assert SUBJECT in request["messages"][-1]["content"]

    def test_the_taxonomy_is_offered_and_an_added_category_accepted(
        self, provider: ChatClassifier, server: FakeChatServer
    ) -> None:
        provider.use_categories(["billing", "refunds"])
        server.answer = json.dumps({**GOOD, "category": "refunds"})
        assert provider.predict(SUBJECT, BODY).category == "refunds"
        [request] = server.requests
        assert '["billing", "refunds"]' in request["messages"][0]["content"]

    @pytest.mark.parametrize(
        "answer",
        [
            "Sure! The category is billing.",
            '{"category": "billing", "category_confidence": 0.9, "priority": "high"',
            json.dumps({**GOOD, "category": "refunds"}),
            json.dumps({**GOOD, "priority": "critical"}),
            json.dumps({**GOOD, "category_confidence": 1.5}),
            json.dumps({**GOOD, "priority_confidence": "high"}),
            json.dumps([GOOD]),
        ],
        ids=[
            "prose",
            "malformed-json",
            "unknown-category",
            "unknown-priority",
            "confidence-above-1",
            "confidence-not-a-number",
            "not-an-object",
        ],
    )
    def test_an_unusable_answer_falls_back_to_the_local_model(
        self,
        provider: ChatClassifier,
        server: FakeChatServer,
        seed_model: TextClassifier,
        answer: str,
    ) -> None:
        server.answer = answer
        assert provider.predict(SUBJECT, BODY) == seed_model.predict(SUBJECT, BODY)
        assert len(server.requests) == 1  # a bad answer is not retried

    @pytest.mark.timing
    def test_a_timeout_falls_back_after_bounded_retries(
        self, provider: ChatClassifier, server: FakeChatServer, seed_model: TextClassifier
    ) -> None:
        server.delay = 1.0
        started = time.monotonic()
        prediction = provider.predict(SUBJECT, BODY)
        assert prediction == seed_model.predict(SUBJECT, BODY)
        assert time.monotonic() - started < 2.0
        assert len(server.requests) == 2  # one try and one retry

    def test_a_server_error_is_retried_then_falls_back(
        self, provider: ChatClassifier, server: FakeChatServer, seed_model: TextClassifier
    ) -> None:
        server.status = 503
        assert provider.predict(SUBJECT, BODY).model_version == seed_model.version
        assert len(server.requests) == 2

    def test_an_unreachable_endpoint_falls_back(self, seed_model: TextClassifier) -> None:
        chat = ChatClassifier(
            base_url="http://127.0.0.1:9/v1",
            model="m",
            api_key=None,
            fallback=lambda: seed_model,
            timeout=0.2,
            retries=0,
        )
        try:
            assert chat.predict(SUBJECT, BODY).model_version == seed_model.version
        finally:
            chat.close()
