from __future__ import annotations

from doxa.core.message_ids import is_forged, new_message_id

SECRET = "s" * 40


class TestMessageIds:
    def test_our_ids_are_signed_and_unguessable(self) -> None:
        first = new_message_id(SECRET, ticket_id=8, domain="example.com")
        second = new_message_id(SECRET, ticket_id=8, domain="example.com")
        assert first != second and first.startswith("doxa.8.") and first.endswith("@example.com")
        assert not is_forged(SECRET, first)

    def test_a_changed_ticket_number_or_signature_is_forged(self) -> None:
        real = new_message_id(SECRET, ticket_id=8, domain="example.com")
        assert is_forged(SECRET, real.replace("doxa.8.", "doxa.9.", 1))
        assert is_forged(SECRET, real[:-13] + ("0" if real[-13] != "0" else "1") + real[-12:])

    def test_an_id_signed_with_another_secret_is_forged(self) -> None:
        assert is_forged(SECRET, new_message_id("t" * 40, ticket_id=1, domain="x.test"))

    def test_the_old_guessable_shape_is_forged(self) -> None:
        assert is_forged(SECRET, "doxa.8.12.20261127100000@example.com")

    def test_other_peoples_ids_are_not_ours_to_judge(self) -> None:
        assert not is_forged(SECRET, "CAF=abc123@mail.gmail.com")
