"""How the acknowledgment caps count a recipient."""

from __future__ import annotations

import pytest

from doxa.core.intake.acknowledgments import recipient_key


class TestRecipientKey:
    @pytest.mark.parametrize(
        "spelling",
        [
            "alice@example.org",
            "ALICE@Example.ORG",
            "alice+1@example.org",
            "Alice+promo+2@example.org",
            '"alice"@example.org',
            '"alice+x"@example.org',
            "alice@example.org.",
            "alice@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.org",  # full-width letters
        ],
    )
    def test_spellings_of_one_mailbox_are_one_recipient(self, spelling: str) -> None:
        assert recipient_key(spelling) == "alice@example.org"

    def test_an_international_domain_is_counted_in_its_ascii_form(self) -> None:
        assert recipient_key("alice@Bücher.example") == recipient_key("alice@xn--bcher-kva.example")

    def test_different_mailboxes_stay_apart(self) -> None:
        assert recipient_key("alice@example.org") != recipient_key("alicia@example.org")
        assert recipient_key("alice@example.org") != recipient_key("alice@example.net")
