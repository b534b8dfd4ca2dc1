"""The webhook edge's checks of who posts: form signatures, Mailgun tokens, basic credentials."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest

from doxa.core.errors import Unauthenticated, Unavailable
from doxa.gateway.webhooks import auth
from tests.gateway.webhook_support import basic, signed


class TestFormSignature:
    def test_a_good_signature_returns_its_hex_in_lower_case(self) -> None:
        body = b'{"a": 1}'
        headers = {k.lower(): v for k, v in signed(body, secret="k").items()}
        headers["x-doxa-signature"] = (
            headers["x-doxa-signature"].upper().replace("SHA256=", "sha256=")
        )
        assert auth.form_signature("k", headers, body) == headers["x-doxa-signature"][7:].lower()

    @pytest.mark.parametrize("stamp", ["", "soon", "1e9", str(2**70)])
    def test_a_timestamp_that_is_not_unix_seconds_now_is_refused(self, stamp: str) -> None:
        headers = {"x-doxa-timestamp": stamp, "x-doxa-signature": "sha256=00"}
        with pytest.raises(Unauthenticated):
            auth.form_signature("k", headers, b"")

    def test_a_signature_without_its_prefix_is_refused(self) -> None:
        stamp = str(int(time.time()))
        digest = hmac.new(b"k", stamp.encode() + b".", hashlib.sha256).hexdigest()
        with pytest.raises(Unauthenticated):
            auth.form_signature("k", {"x-doxa-timestamp": stamp, "x-doxa-signature": digest}, b"")


NOW = 1_800_000_000.0  # the server's clock in these tests: no time passes between the checks


def _form_headers(stamp: int) -> dict[str, str]:
    return {k.lower(): v for k, v in signed(b"{}", secret="k", timestamp=stamp).items()}


def _mailgun_fields(stamp: int) -> tuple[str, str, str]:
    token = "t" * 50
    signature = hmac.new(b"key", (str(stamp) + token).encode(), hashlib.sha256).hexdigest()
    return str(stamp), token, signature


class TestSignatureWindow:
    @pytest.mark.parametrize("offset", [-300, 0, 300])
    def test_a_timestamp_up_to_300_s_either_side_is_accepted(self, offset: int) -> None:
        auth.form_signature("k", _form_headers(int(NOW) + offset), b"{}", now=NOW)
        auth.mailgun_signature("key", *_mailgun_fields(int(NOW) + offset), now=NOW)

    @pytest.mark.parametrize("offset", [301, 3600, 10**9])
    def test_a_timestamp_more_than_300_s_in_the_future_is_refused(self, offset: int) -> None:
        with pytest.raises(Unauthenticated, match="300 s"):
            auth.form_signature("k", _form_headers(int(NOW) + offset), b"{}", now=NOW)
        with pytest.raises(Unauthenticated, match="300 s"):
            auth.mailgun_signature("key", *_mailgun_fields(int(NOW) + offset), now=NOW)

    def test_a_timestamp_more_than_300_s_in_the_past_is_refused(self) -> None:
        with pytest.raises(Unauthenticated, match="300 s"):
            auth.form_signature("k", _form_headers(int(NOW) - 301), b"{}", now=NOW)
        with pytest.raises(Unauthenticated, match="300 s"):
            auth.mailgun_signature("key", *_mailgun_fields(int(NOW) - 301), now=NOW)


class TestMailgunSignature:
    def test_the_documented_scheme_is_accepted(self) -> None:
        stamp, token = str(int(time.time())), "t" * 50
        signature = hmac.new(b"key", (stamp + token).encode(), hashlib.sha256).hexdigest()
        auth.mailgun_signature("key", stamp, token, signature)

    def test_missing_fields_are_refused(self) -> None:
        with pytest.raises(Unauthenticated):
            auth.mailgun_signature("key", "", "", "")


class TestBasicCredentials:
    def test_the_configured_pair_is_accepted(self) -> None:
        auth.basic_credentials(basic("u", "p:with:colons")["Authorization"], "u", "p:with:colons")

    @pytest.mark.parametrize(
        "header", ["", "Basic", "Basic %%%", "Bearer dTpw", basic("u", "x")["Authorization"]]
    )
    def test_anything_else_is_refused(self, header: str) -> None:
        with pytest.raises(Unauthenticated):
            auth.basic_credentials(header, "u", "p")


class TestRequired:
    def test_an_unset_secret_names_its_variable(self) -> None:
        with pytest.raises(Unavailable, match="WEBHOOK_SECRET"):
            auth.required(None, "WEBHOOK_SECRET")
