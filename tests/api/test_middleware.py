"""The REST edge's middleware, seen from a client."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import PROXY, MailClient

WARNING = "is not in FORWARDED_ALLOW_IPS"


class TestUntrustedProxyWarning:
    def test_x_forwarded_for_from_an_untrusted_peer_is_said_once(
        self, mail_client: MailClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING, logger="doxa.http.middleware")
        proxy, stranger = mail_client(PROXY), mail_client("198.51.100.7")
        proxy.get("/healthz", headers={"X-Forwarded-For": "192.0.2.1"})
        stranger.get("/healthz")
        assert not [r for r in caplog.records if WARNING in r.getMessage()]
        for client in ("192.0.2.1", "192.0.2.2"):
            stranger.get("/healthz", headers={"X-Forwarded-For": client})
        [warning] = [r.getMessage() for r in caplog.records if WARNING in r.getMessage()]
        assert warning.startswith("X-Forwarded-For from 198.51.100.7, which is not in")
