from __future__ import annotations

import pytest

from doxa.core.triage.language import detect


class TestDetect:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("My invoice shows a double payment, please refund one of them", "en"),
            ("Sehr geehrtes Support-Team, ich kann mich seit gestern nicht anmelden", "de"),
            ("Hola, no puedo iniciar sesión en mi cuenta desde ayer por la tarde", "es"),
            ("Bonjour, mon imprimante ne fonctionne plus depuis la mise à jour", "fr"),
        ],
    )
    def test_a_sentence_gets_its_iso_639_1_code(self, text: str, expected: str) -> None:
        assert detect(text) == expected

    @pytest.mark.parametrize("text", ["", "ok", "Hello\nQuestion", "12345 67890 !!!"])
    def test_too_little_to_go_on_is_none(self, text: str) -> None:
        assert detect(text) is None
