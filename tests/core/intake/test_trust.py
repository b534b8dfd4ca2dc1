from __future__ import annotations

from collections.abc import Callable

import pytest

from doxa.core.config import Settings
from doxa.core.intake.inbound import InboundMessage
from doxa.core.intake.trust import Verdict, parse_results, verdict
from tests.conftest import make_settings

MakeMessage = Callable[..., InboundMessage]


@pytest.fixture
def settings() -> Settings:
    return make_settings(
        "sqlite://", trusted_authserv_ids="mx.ours.test", trusted_relays="10.0.0.0/8,::1"
    )


def _said(make_message: MakeMessage, settings: Settings, header: str, **kw: object) -> Verdict:
    msg = make_message(headers={"authentication-results": header})
    return verdict(msg, peer=kw.get("peer", "10.1.2.3"), settings=settings)


class TestParseResults:
    def test_reads_authserv_id_methods_and_properties(self) -> None:
        header = (
            "MX.Ours.Test 1; dkim=pass (2048-bit key) header.d=example.com header.s=s1;"
            ' spf=neutral smtp.mailfrom="a@x.test"; dmarc=fail (p=REJECT) header.from=example.com'
        )
        authserv_id, results = parse_results(header)
        assert authserv_id == "mx.ours.test"
        assert [(method, result) for method, result, _ in results] == [
            ("dkim", "pass"),
            ("spf", "neutral"),
            ("dmarc", "fail"),
        ]
        assert results[0][2]["header.d"] == "example.com"

    def test_comments_cannot_smuggle_a_result(self) -> None:
        _, results = parse_results("mx.ours.test; dmarc=fail (dmarc=pass; dkim=pass)")
        assert [(m, r) for m, r, _ in results] == [("dmarc", "fail")]


class TestVerdict:
    def test_dmarc_pass_from_a_trusted_relay_authenticates(
        self, make_message: MakeMessage, settings: Settings
    ) -> None:
        said = _said(make_message, settings, "mx.ours.test; dmarc=pass header.from=example.com")
        assert said == Verdict(authenticated=True, dmarc_failed=False)

    @pytest.mark.parametrize("peer", ["192.0.2.7", None, "not-an-ip"])
    def test_any_other_peer_is_not_believed(
        self, make_message: MakeMessage, settings: Settings, peer: str | None
    ) -> None:
        said = _said(make_message, settings, "mx.ours.test; dmarc=pass", peer=peer)
        assert said == Verdict()

    def test_ipv4_mapped_ipv6_peer_counts_as_its_ipv4_address(
        self, make_message: MakeMessage, settings: Settings
    ) -> None:
        said = _said(make_message, settings, "mx.ours.test; dmarc=pass", peer="::ffff:10.0.0.9")
        assert said.authenticated

    def test_another_authserv_id_is_not_believed(
        self, make_message: MakeMessage, settings: Settings
    ) -> None:
        assert _said(make_message, settings, "mx.evil.test; dmarc=pass") == Verdict()

    @pytest.mark.parametrize(
        ("signer", "authenticated"),
        [("example.com", True), ("mail.example.com", False), ("com", True), ("evil.test", False)],
    )
    def test_dkim_authenticates_only_aligned_with_the_from_domain(
        self, make_message: MakeMessage, settings: Settings, signer: str, authenticated: bool
    ) -> None:
        msg = make_message(
            sender_email="alice@example.com",
            headers={"authentication-results": f"mx.ours.test; dkim=pass header.d={signer}"},
        )
        assert verdict(msg, peer="10.0.0.1", settings=settings).authenticated is authenticated

    def test_dmarc_about_another_domain_says_nothing_of_this_one(
        self, make_message: MakeMessage, settings: Settings
    ) -> None:
        said = _said(make_message, settings, "mx.ours.test; dmarc=fail header.from=other.test")
        assert said == Verdict()

    def test_dmarc_fail_outweighs_a_dkim_pass(
        self, make_message: MakeMessage, settings: Settings
    ) -> None:
        header = "mx.ours.test; dkim=pass header.d=example.com; dmarc=fail"
        assert _said(make_message, settings, header) == Verdict(False, dmarc_failed=True)
