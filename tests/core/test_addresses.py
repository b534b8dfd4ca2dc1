"""One spelling per mailbox: what `normalize_address` folds together and what it refuses."""

from __future__ import annotations

import pytest

from doxa.core.addresses import identity_key, normalize_address

SAME_MAILBOX = [
    ("Agent@Staff.Example", "agent@staff.example"),
    ("agent@staff.example.", "agent@staff.example"),
    ('"agent"@staff.example', "agent@staff.example"),
    ('"a\\gent"@staff.example', "agent@staff.example"),
    ("agent@\uff53\uff54\uff41\uff46\uff46.example", "agent@staff.example"),  # fullwidth
    ("agent@staff\u3002example", "agent@staff.example"),  # ideographic full stop
    ("jo@xn--bcher-kva.example", "jo@b\u00fccher.example"),
    ("jo@B\u00dcCHER.example", "jo@b\u00fccher.example"),
    ("  bob@example.org ", "bob@example.org"),
]

NOT_AN_ADDRESS = [
    "",
    "alice",
    "@example.org",
    "alice@",
    "alice@example..org",
    "alice@example.org..",
    "x" * 65 + "@example.org",  # RFC 5321: 64 octets of local part
    "a@" + "b" * 250 + ".org",
    "ag\u200bent@staff.example",  # a zero-width space
    "agent@sta\u200bff.example",
    "alice smith@example.org",
    "alice@[192.0.2.1]",
]


class TestNormalizeAddress:
    @pytest.mark.parametrize(("written", "canonical"), SAME_MAILBOX)
    def test_spellings_of_one_mailbox_become_one(self, written: str, canonical: str) -> None:
        assert normalize_address(written) == canonical

    @pytest.mark.parametrize("written", NOT_AN_ADDRESS)
    def test_what_is_no_usable_address_gives_none(self, written: str) -> None:
        assert normalize_address(written) is None

    def test_a_mixed_script_domain_is_kept_in_punycode(self) -> None:
        looks_like = normalize_address("agent@st\u0430ff.example")  # a Cyrillic a
        assert looks_like == "agent@xn--stff-63d.example"
        assert normalize_address("agent@xn--stff-63d.example") == looks_like

    def test_one_script_per_label_is_shown_in_unicode(self) -> None:
        assert normalize_address("a@\u043f\u0440\u0438\u043c\u0435\u0440.example") == (
            "a@\u043f\u0440\u0438\u043c\u0435\u0440.example"
        )
        assert normalize_address("a@\u4f8b\u3048.jp") == "a@\u4f8b\u3048.jp"  # Han with kana

    def test_a_quoted_local_part_that_needs_its_quotes_keeps_them(self) -> None:
        assert normalize_address('"Alice Smith"@Example.org') == '"alice smith"@example.org'

    @pytest.mark.parametrize(
        "written", [w for w, _ in SAME_MAILBOX] + ['"Alice Smith"@x.org', "a@st\u0430ff.example"]
    )
    def test_normalizing_twice_changes_nothing(self, written: str) -> None:
        once = normalize_address(written)
        assert once is not None and normalize_address(once) == once

    def test_identity_key_of_no_address_is_only_lower_cased(self) -> None:
        assert identity_key(" Not An Address ") == "not an address"
        assert identity_key("Agent@Staff.Example.") == "agent@staff.example"
