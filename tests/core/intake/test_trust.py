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
    msg = make_message(auth_results_above=[header])
    return verdict(msg, peer=kw.get("peer", "10.1.2.3"), settings=settings)


def _methods(header: str) -> list[tuple[str, str]]:
    return [(r.method, r.result) for r in parse_results(header)[1]]


class TestParseResults:
    def test_reads_authserv_id_methods_and_properties(self) -> None:
        header = (
            "MX.Ours.Test 1; dkim=pass (2048-bit key) header.d=example.com header.s=s1;"
            ' spf=neutral smtp.mailfrom="a@x.test"; dmarc=fail (p=REJECT) header.from=example.com'
        )
        authserv_id, results = parse_results(header)
        assert authserv_id == "mx.ours.test"
        assert _methods(header) == [("dkim", "pass"), ("spf", "neutral"), ("dmarc", "fail")]
        assert results[0].props["header.d"] == "example.com"
        assert results[1].props["smtp.mailfrom"] == "a@x.test"

    def test_comments_cannot_smuggle_a_result(self) -> None:
        assert _methods("mx.ours.test; dmarc=fail (dmarc=pass; dkim=pass)") == [("dmarc", "fail")]

    def test_a_comment_nested_deeper_than_any_mta_writes_is_still_a_comment(self) -> None:
        deep = "(x " * 40 + "; dmarc=pass header.from=example.com" + ")" * 40
        assert _methods(f"mx.ours.test; spf=none {deep}") == [("spf", "none")]

    def test_an_unclosed_comment_or_quote_swallows_the_rest(self) -> None:
        assert _methods("mx.ours.test; spf=none (x; dmarc=pass") == [("spf", "none")]
        assert _methods('mx.ours.test; spf=none smtp.helo="x; dmarc=pass') == [("spf", "none")]

    def test_a_quoted_local_part_stays_one_value(self) -> None:
        _, [result] = parse_results('mx.ours.test; spf=pass smtp.mailfrom="a; b=c"@evil.test')
        assert result.props == {"smtp.mailfrom": "a; b=c@evil.test"}

    def test_a_result_glued_to_the_value_before_it_is_marked(self) -> None:
        _, [spf, dmarc] = parse_results("mx.ours.test; spf=pass smtp.helo=x;dmarc=pass")
        assert (spf.glued, dmarc.glued) == (False, True)

    def test_a_stray_closing_parenthesis_is_only_spacing(self) -> None:
        assert _methods("mx.ours.test; spf=pass smtp.helo=x) ) dkim=none") == [("spf", "pass")]

    def test_none_and_garbage_give_no_results(self) -> None:
        assert parse_results("mx.ours.test; none") == ("mx.ours.test", [])
        assert parse_results("mx.ours.test; = = ; pass") == ("mx.ours.test", [])


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
        header = "mx.ours.test; dmarc=pass header.from=example.com"
        assert _said(make_message, settings, header, peer=peer) == Verdict()

    def test_ipv4_mapped_ipv6_peer_counts_as_its_ipv4_address(
        self, make_message: MakeMessage, settings: Settings
    ) -> None:
        header = "mx.ours.test; dmarc=pass header.from=example.com"
        assert _said(make_message, settings, header, peer="::ffff:10.0.0.9").authenticated

    def test_another_authserv_id_is_not_believed(
        self, make_message: MakeMessage, settings: Settings
    ) -> None:
        header = "mx.evil.test; dmarc=pass header.from=example.com"
        assert _said(make_message, settings, header) == Verdict()

    def test_dmarc_pass_without_header_from_says_nothing(
        self, make_message: MakeMessage, settings: Settings
    ) -> None:
        assert _said(make_message, settings, "mx.ours.test; dmarc=pass") == Verdict()

    @pytest.mark.parametrize(
        ("signer", "authenticated"),
        [
            ("example.com", True),
            ("mail.example.com", True),  # the same organizational domain
            ("com", False),  # a public suffix is nobody's domain
            ("evil.test", False),
            ("example.com.evil.test", False),
        ],
    )
    def test_dkim_authenticates_only_within_the_from_domains_organization(
        self, make_message: MakeMessage, settings: Settings, signer: str, authenticated: bool
    ) -> None:
        msg = make_message(
            sender_email="alice@mail.example.com",
            auth_results_above=[f"mx.ours.test; dkim=pass header.d={signer}"],
        )
        assert verdict(msg, peer="10.0.0.1", settings=settings).authenticated is authenticated

    def test_dkim_on_a_private_suffix_needs_the_same_site(
        self, make_message: MakeMessage, settings: Settings
    ) -> None:
        msg = make_message(
            sender_email="alice@ours.github.io",
            auth_results_above=["mx.ours.test; dkim=pass header.d=theirs.github.io"],
        )
        assert not verdict(msg, peer="10.0.0.1", settings=settings).authenticated

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

    def test_a_header_below_the_received_line_counts_only_with_the_flag(
        self, make_message: MakeMessage, settings: Settings
    ) -> None:
        msg = make_message(auth_result_below="mx.ours.test; dmarc=pass header.from=example.com")
        assert not verdict(msg, peer="10.0.0.1", settings=settings).authenticated
        milters = settings.model_copy(update={"trusted_ar_below_received": True})
        assert verdict(msg, peer="10.0.0.1", settings=milters).authenticated

    def test_piped_mail_is_believed_only_with_trusted_pipe(
        self, make_message: MakeMessage, settings: Settings
    ) -> None:
        msg = make_message(auth_results_above=["mx.ours.test; dmarc=pass header.from=example.com"])
        loopback = make_settings(
            "sqlite://", trusted_authserv_ids="mx.ours.test", trusted_relays="127.0.0.1"
        )
        assert not verdict(msg, peer="127.0.0.1", settings=loopback, piped=True).authenticated
        piped = settings.model_copy(update={"trusted_pipe": True})
        assert verdict(msg, peer=None, settings=piped, piped=True).authenticated
