"""Conditions as rules and SLA policies write them: read with a path for what is wrong,
matched case- and accent-insensitively, never raising on a ticket's odd values."""

from __future__ import annotations

from typing import Any

import pytest

from doxa.core.errors import InvalidInput
from doxa.core.routing.conditions import Facts, fold, read_when


def _facts(**values: Any) -> Facts:
    metadata = values.pop("metadata", {})
    return Facts(values, metadata=metadata, in_business_hours=lambda calendar: calendar == 1)


def _matches(condition: dict[str, Any], **values: Any) -> bool:
    return read_when({"all": [condition]}).matches(_facts(**values))


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ([], "when: must be an object"),
        ({"every": []}, "when.every: unknown key"),
        ({"all": {}}, "when.all: must be a list"),
        ({"all": ["x"]}, "when.all[0]: must be an object"),
        ({"all": [{"field": "colour", "op": "is", "value": 1}]}, "when.all[0].field: unknown"),
        ({"any": [{}, {"field": "subject", "op": "gte", "value": 1}]}, "when.any[0].field"),
        ({"all": [{"field": "subject", "op": "gte", "value": 1}]}, "when.all[0].op:"),
        ({"all": [{"field": "subject", "op": "is"}]}, "when.all[0].value: missing"),
        ({"all": [{"field": "priority", "op": "is", "value": "asap"}]}, "when.all[0].value:"),
        ({"all": [{"field": "channel", "op": "in", "value": []}]}, "when.all[0].value: a list"),
        (
            {"all": [{"field": "channel", "op": "in", "value": ["email", "fax"]}]},
            "when.all[0].value[1]:",
        ),
        ({"all": [{"field": "body", "op": "contains", "value": "!!"}]}, "when.all[0].value: words"),
        ({"all": [{"field": "authenticated", "op": "is", "value": "yes"}]}, "when.all[0].value"),
        ({"all": [{"field": "business_hours", "op": "is", "value": 0}]}, "when.all[0].value"),
        ({"all": [{"field": "ai_confidence", "op": "gte", "value": "high"}]}, "when.all[0].value"),
        ({"all": [{"field": "metadata.", "op": "is", "value": 1}]}, "when.all[0].field"),
    ],
)
def test_what_cannot_be_read_is_named_by_its_path(raw: object, path: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        read_when(raw)
    assert caught.value.detail.startswith(path), caught.value.detail


def test_empty_or_missing_when_matches_every_ticket() -> None:
    assert read_when(None).matches(_facts())
    assert read_when({"all": [], "any": []}).matches(_facts(subject="x"))


def test_contains_is_case_and_accent_insensitive_whole_words_and_phrases() -> None:
    contains = {"field": "subject", "op": "contains", "value": "facture impayée"}
    assert _matches(contains, subject="Re: FACTURE   IMPAYEE n°12")
    assert _matches(contains, subject="la Facture, impayée!")
    assert not _matches(contains, subject="factures impayées")  # whole words only
    assert not _matches(contains, subject="impayée facture")  # a phrase keeps its order
    assert not _matches(contains, subject=None)
    straße = {"field": "body", "op": "contains", "value": "STRASSE"}
    assert _matches(straße, body="Hauptstraße 1") is False  # a word, not a part of one
    assert _matches(straße, body="in der Straße")


def test_not_contains_and_is_not() -> None:
    assert _matches({"field": "subject", "op": "not_contains", "value": "spam"}, subject="hello")
    assert not _matches({"field": "subject", "op": "not_contains", "value": "spam"}, subject="SPAM")
    assert _matches({"field": "language", "op": "is_not", "value": "de"}, language="en")
    assert _matches({"field": "language", "op": "is_not", "value": "de"}, language=None)


def test_is_and_in_fold_text_and_compare_numbers() -> None:
    assert _matches(
        {"field": "requester.domain", "op": "is", "value": "ACME.com"},
        **{"requester.domain": "acme.com"},
    )
    assert _matches({"field": "channel", "op": "in", "value": ["form", "email"]}, channel="email")
    assert _matches(
        {"field": "metadata.plan", "op": "is", "value": "Gold"}, metadata={"plan": "gold"}
    )
    assert _matches({"field": "metadata.seats", "op": "gte", "value": 10}, metadata={"seats": "12"})
    assert not _matches(
        {"field": "metadata.seats", "op": "gte", "value": 10}, metadata={"seats": "many"}
    )  # an odd value does not match, never raises


def test_numbers_and_priority_order() -> None:
    assert _matches({"field": "ai_confidence", "op": "gte", "value": 0.8}, ai_confidence=0.8)
    assert not _matches({"field": "ai_confidence", "op": "gte", "value": 0.8}, ai_confidence=None)
    assert _matches({"field": "priority", "op": "gte", "value": "high"}, priority="urgent")
    assert not _matches({"field": "priority", "op": "lte", "value": "normal"}, priority="high")


def test_authenticated_and_business_hours_are_flags() -> None:
    trusted = {"field": "authenticated", "op": "is", "value": True}
    assert _matches(trusted, authenticated=True)
    assert not _matches(trusted, authenticated=False)
    assert not _matches(trusted)  # unknown is not proven
    assert _matches({"field": "business_hours", "op": "is", "value": 1})
    assert _matches({"field": "business_hours", "op": "is_not", "value": 2})


def test_all_and_any_together() -> None:
    when = read_when(
        {
            "all": [{"field": "channel", "op": "is", "value": "email"}],
            "any": [
                {"field": "subject", "op": "contains", "value": "refund"},
                {"field": "body", "op": "contains", "value": "refund"},
            ],
        }
    )
    assert when.matches(_facts(channel="email", subject="x", body="a refund please"))
    assert not when.matches(_facts(channel="email", subject="x", body="nothing"))
    assert not when.matches(_facts(channel="api", subject="refund", body=""))
    assert when.reads() == {"channel", "subject", "body"}


def test_fold_handles_every_kind_of_text() -> None:
    assert fold("ÉCOLE ﬁnale") == "ecole finale"
    assert fold("İstanbul") == fold("istanbul")
    assert fold("plain ascii") == "plain ascii"
