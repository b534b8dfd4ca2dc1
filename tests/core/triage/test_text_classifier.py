from __future__ import annotations

import json
import random

import pytest

from doxa.core.enums import DEFAULT_CATEGORIES, Priority
from doxa.core.triage.data import Example
from doxa.core.triage.evaluation import evaluate, evaluate_out_of_fold, field_report
from doxa.core.triage.text_classifier import TextClassifier, train, train_out_of_fold

# Written for this test, not in the seed set: clearly worded tickets and their expected labels.
UNSEEN = [
    ("Refund please", "You billed my card twice for the May subscription, refund one.", "billing"),
    (
        "Where is my receipt?",
        "I paid the yearly plan but never got an invoice or receipt.",
        "billing",
    ),
    ("Locked out", "I typed my password wrong too often and now my account is locked.", "account"),
    (
        "Reset my 2FA",
        "My authenticator app was on my old phone; I can't log in to my account.",
        "account",
    ),
    (
        "Error when saving a ticket",
        "Clicking save shows an error and the change is lost. Bug?",
        "bug",
    ),
    ("App crashes on open", "The mobile app crashes immediately every time I open it.", "bug"),
    (
        "Idea: Trello integration",
        "It would be nice to sync tickets with Trello. No rush.",
        "feature_request",
    ),
    ("Suggestion", "Would love a dark theme for the agent view someday.", "feature_request"),
    (
        "Do you have a partner program?",
        "We're a consultancy and wonder about partnering.",
        "general",
    ),
    ("Thank you!", "Thanks for the help last week, everything works great now.", "general"),
    ("Set up DNS for email", "What SPF and DKIM records should we add to our domain?", "technical"),
    (
        "API returns 429",
        "Our integration hits the API rate limit. How can we raise it?",
        "technical",
    ),
]


class TestTrain:
    def test_clearly_worded_unseen_tickets_get_their_category(
        self, seed_model: TextClassifier
    ) -> None:
        predictions = seed_model.predict_many([(s, b) for s, b, _ in UNSEEN])
        right = sum(
            p.category == label for p, (_, _, label) in zip(predictions, UNSEEN, strict=True)
        )
        assert right >= 10, [
            (p.category, label) for p, (_, _, label) in zip(predictions, UNSEEN, strict=True)
        ]

    def test_outage_is_urgent_and_a_someday_idea_is_low(self, seed_model: TextClassifier) -> None:
        outage = seed_model.predict("Everything is down", "All users get errors, urgent, asap!")
        idea = seed_model.predict("Small idea", "Maybe add emoji support whenever you have time.")
        assert outage.priority == "urgent"
        assert idea.priority == "low"

    def test_confidences_are_probabilities(self, seed_model: TextClassifier) -> None:
        for prediction in seed_model.predict_many([(s, b) for s, b, _ in UNSEEN]):
            assert 0.0 <= prediction.category_confidence <= 1.0
            assert 0.0 <= prediction.priority_confidence <= 1.0

    def test_labels_are_the_defaults_and_the_four_priorities(
        self, seed_model: TextClassifier
    ) -> None:
        assert seed_model.labels["category"] == sorted(DEFAULT_CATEGORIES)
        assert set(seed_model.labels["priority"]) == {p.value for p in Priority}

    def test_round_trip_through_bytes_keeps_version_and_answers(
        self, seed_model: TextClassifier
    ) -> None:
        loaded = TextClassifier.from_bytes(seed_model.to_bytes())
        assert loaded.version == seed_model.version
        assert loaded.predict("Refund", "charged twice") == seed_model.predict(
            "Refund", "charged twice"
        )
        assert loaded.predict("x", "y").model_version == seed_model.version

    def test_an_unlabeled_field_trains_only_the_other(self) -> None:
        examples = [
            Example("invoice refund charge", "billing", None),
            Example("password login locked", "account", None),
            Example("server down everyone blocked", None, "urgent"),
            Example("idea for later no rush", None, "low"),
        ] * 3
        model = train(examples)
        assert model.labels == {"category": ["account", "billing"], "priority": ["low", "urgent"]}

    def test_a_field_with_one_label_predicts_it_with_full_confidence(self) -> None:
        model = train([Example("a b c", "billing", "low"), Example("d e f", "bug", "low")] * 3)
        prediction = model.predict("anything", "else")
        assert (prediction.priority, prediction.priority_confidence) == ("low", 1.0)


def _noise(size: int) -> list[Example]:
    """Made-up words and random categories: nothing to learn, everything to memorize."""
    rng = random.Random(1)
    letters = "bcdfgklmnprstvz", "aeiou"
    words = ["".join(rng.choice(letters[i % 2]) for i in range(5)) for _ in range(400)]
    return [
        Example(" ".join(rng.sample(words, 6)), rng.choice("abc"), None if i % 2 else "low")
        for i in range(size)
    ]


class TestExplanation:
    def test_the_terms_that_pushed_the_category_are_words_of_the_ticket(
        self, seed_model: TextClassifier
    ) -> None:
        prediction = seed_model.predict("Charged twice", "My invoice shows a double payment")
        assert prediction.category == "billing"
        assert 1 <= len(prediction.explanation) <= 5
        text = "charged twice my invoice shows a double payment"
        assert all(term in text for term in prediction.explanation)

    def test_cue_tokens_are_never_shown(self, seed_model: TextClassifier) -> None:
        prediction = seed_model.predict("URGENT outage", "Production is down, urgent, asap!!")
        assert not any("__" in term for term in prediction.explanation)

    def test_a_stored_model_explains_the_same_and_does_not_store_the_term_list(
        self, seed_model: TextClassifier
    ) -> None:
        before = seed_model.predict("Refund", "charged twice")
        loaded = TextClassifier.from_bytes(seed_model.to_bytes())
        assert loaded._terms is None
        assert loaded.predict("Refund", "charged twice").explanation == before.explanation


class TestTrainOutOfFold:
    def test_every_labeled_example_gets_one_guess_per_field(self) -> None:
        examples = _noise(60)
        trained = train_out_of_fold(examples)
        assert sorted(trained.out_of_fold["category"].guesses) == list(range(60))
        assert sorted(trained.out_of_fold["priority"].guesses) == list(range(0, 60, 2))
        assert trained.out_of_fold["category"].folds == 3
        for label, confidence in trained.out_of_fold["category"].guesses.values():
            assert label in {"a", "b", "c"}
            assert 0.0 <= confidence <= 1.0

    def test_a_field_with_one_label_guesses_it_with_full_confidence_and_no_folds(self) -> None:
        priority = train_out_of_fold(_noise(60)).out_of_fold["priority"]
        assert set(priority.guesses.values()) == {("low", 1.0)}
        assert priority.folds == 0

    def test_guesses_come_from_models_that_never_saw_the_example(self) -> None:
        # The full model memorizes random labels; a guess made without the example cannot.
        examples = _noise(60)
        trained = train_out_of_fold(examples)
        guesses = trained.out_of_fold["category"].guesses
        predictions = trained.model.predict_texts([e.text for e in examples])
        seen = sum(p.category == e.category for p, e in zip(predictions, examples, strict=True))
        unseen = sum(guesses[i][0] == e.category for i, e in enumerate(examples))
        assert seen / 60 > 0.9
        assert unseen / 60 < 0.6

    def test_the_model_is_the_one_train_returns(self) -> None:
        examples = _noise(60)
        trained = train_out_of_fold(examples, seed=3)
        texts = [e.text for e in examples]
        expected = train(examples, seed=3).predict_texts(texts)
        assert [
            (p.category, p.category_confidence) for p in trained.model.predict_texts(texts)
        ] == [(p.category, p.category_confidence) for p in expected]


class TestEvaluateOutOfFold:
    def test_report_counts_the_out_of_fold_guesses(self) -> None:
        examples = _noise(60)
        trained = train_out_of_fold(examples)
        report = evaluate_out_of_fold(trained, examples, threshold=0.5)
        guesses = trained.out_of_fold["category"].guesses
        right = [guesses[i][0] == e.category for i, e in enumerate(examples)]
        kept = [r for i, r in enumerate(right) if guesses[i][1] >= 0.5]
        assert report["method"] == "3-fold out-of-fold on 60 examples"
        assert (report["size"], report["threshold"]) == (60, 0.5)
        category = report["category"]
        assert isinstance(category, dict)
        assert (category["size"], category["accuracy"]) == (60, pytest.approx(sum(right) / 60))
        assert report["coverage"] == pytest.approx(len(kept) / 60)
        assert report["accuracy_at_threshold"] == pytest.approx(
            sum(kept) / len(kept) if kept else 0.0
        )
        assert report["priority"] == field_report([("low", "low")] * 30)
        json.dumps(report)


class TestEvaluate:
    def test_numbers_on_a_hand_computed_case(self) -> None:
        # truth a a b b, guesses a b b b: accuracy 3/4;
        # a: P=1/1 R=1/2 F1=2/3;  b: P=2/3 R=2/2 F1=4/5;  macro (2/3 + 4/5) / 2 = 11/15
        report = field_report([("a", "a"), ("a", "b"), ("b", "b"), ("b", "b")])
        assert report["accuracy"] == pytest.approx(0.75)
        assert report["macro_f1"] == pytest.approx(11 / 15)
        per_label = report["per_label"]
        assert isinstance(per_label, dict)
        assert per_label["a"] == pytest.approx(
            {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2}
        )
        assert per_label["b"] == pytest.approx(
            {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2}
        )

    def test_figures_are_plain_numbers_for_json(self) -> None:
        report = field_report([("a", "a"), ("a", "b"), ("b", "b")])
        per_label = report["per_label"]
        assert isinstance(per_label, dict)
        assert type(report["accuracy"]) is float
        assert type(report["macro_f1"]) is float
        assert type(per_label["a"]["precision"]) is float
        assert type(per_label["a"]["support"]) is int
        json.dumps(report)

    def test_no_pairs_give_zeros(self) -> None:
        assert field_report([]) == {"size": 0, "accuracy": 0.0, "macro_f1": 0.0, "per_label": {}}

    def test_a_predicted_label_outside_the_true_labels_is_only_a_miss(self) -> None:
        report = field_report([("a", "a"), ("a", "c")])
        assert report["macro_f1"] == pytest.approx(2 / 3)
        assert isinstance(report["per_label"], dict) and set(report["per_label"]) == {"a"}

    def test_coverage_and_accuracy_at_threshold(self, seed_model: TextClassifier) -> None:
        examples = [Example(f"{s}\n{b}", label, None) for s, b, label in UNSEEN]
        predictions = seed_model.predict_many([(s, b) for s, b, _ in UNSEEN])
        threshold = sorted(p.category_confidence for p in predictions)[6]  # the top six
        report = evaluate(seed_model, examples, threshold=threshold)
        kept = [
            (p, label)
            for p, (_, _, label) in zip(predictions, UNSEEN, strict=True)
            if p.category_confidence >= threshold
        ]
        assert report["coverage"] == pytest.approx(len(kept) / len(UNSEEN))
        assert report["accuracy_at_threshold"] == pytest.approx(
            sum(p.category == label for p, label in kept) / len(kept)
        )
        assert report["priority"] == {"size": 0, "accuracy": 0.0, "macro_f1": 0.0, "per_label": {}}
