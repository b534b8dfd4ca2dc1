from __future__ import annotations

import json

import pytest
from sklearn.pipeline import FeatureUnion
from sqlalchemy import select
from sqlalchemy.orm import Session

from doxa.core.triage import labels, store
from doxa.core.triage import text_classifier as triage_text_classifier
from doxa.core.triage.data import Example, seed_examples
from doxa.core.triage.models import ClassificationCorrection, ClassifierModel
from doxa.core.triage.text_classifier import Design, TextClassifier, train
from tests.conftest import MakeTicket


class TestSaveAndLoad:
    def test_saved_model_loads_with_its_version(
        self, db: Session, seed_model: TextClassifier
    ) -> None:
        row = store.save_model(db, seed_model, training_size=325, evaluation={"coverage": 0.9})
        db.commit()
        store._CACHE.clear()  # as in another process
        loaded = store.load_active(db)
        assert loaded is not None
        assert loaded.version == seed_model.version == row.version
        assert loaded.predict("Refund", "charged twice") == seed_model.predict(
            "Refund", "charged twice"
        )
        assert store.load_active(db) is loaded  # cached by version

    def test_saving_a_new_version_deactivates_the_previous(
        self, db: Session, seed_model: TextClassifier
    ) -> None:
        store.save_model(db, seed_model, training_size=1, evaluation={})
        newer = train([Example("refund invoice", "billing", "low"), Example("x", "bug", "high")])
        store.save_model(db, newer, training_size=2, evaluation={})
        db.commit()
        active = db.scalars(select(ClassifierModel).where(ClassifierModel.is_active)).all()
        assert [row.version for row in active] == [newer.version]
        assert store.load_active(db) is newer

    def test_no_model_yet_loads_none(self, db: Session) -> None:
        assert store.load_active(db) is None


class TestTrainingExamples:
    def test_corrections_become_examples_for_their_field(
        self, db: Session, make_ticket: MakeTicket
    ) -> None:
        ticket = make_ticket()
        db.add_all(
            [
                ClassificationCorrection(
                    ticket_id=ticket.id,
                    field="category",
                    predicted="general",
                    corrected="billing",
                    text="Refund\nplease",
                ),
                ClassificationCorrection(
                    ticket_id=ticket.id,
                    field="priority",
                    predicted="low",
                    corrected="urgent",
                    text="Down\nall users",
                ),
            ]
        )
        db.flush()
        examples = store.training_examples(db)
        assert len(examples) == len(seed_examples()) + 2
        assert examples[-2:] == [
            Example("Refund\nplease", "billing", None),
            Example("Down\nall users", None, "urgent"),
        ]

    def test_own_examples_replace_the_seed_set_and_keep_only_corrections_in_their_taxonomy(
        self, db: Session, make_ticket: MakeTicket
    ) -> None:
        own = [Example("leaking pipe", "plumbing", "high"), Example("cold lunch", "catering", None)]
        ticket = make_ticket()  # first: it commits on its own connection
        assert store.replace_own_examples(db, own) == 2
        labels.add_categories(db, ["security"])
        db.add_all(
            ClassificationCorrection(
                ticket_id=ticket.id,
                field="category",
                predicted="x",
                corrected=corrected,
                text=corrected,
            )
            for corrected in ("billing", "plumbing", "security")
        )
        db.flush()
        examples = store.training_examples(db)
        assert examples == [
            *own,
            Example("plumbing", "plumbing", None),
            Example("security", "security", None),
        ]

    def test_own_examples_without_priorities_learn_priority_from_the_seed_set(
        self, db: Session
    ) -> None:
        store.replace_own_examples(db, [Example("leaking pipe", "plumbing", "P1")])
        examples = store.training_examples(db)
        assert examples[0] == Example("leaking pipe", "plumbing", None)  # P1 is not a priority
        assert {e.category for e in examples[1:]} == {None}
        assert len(examples) == 1 + sum(1 for e in seed_examples() if e.priority)

    def test_a_new_import_replaces_the_previous(self, db: Session) -> None:
        store.replace_own_examples(db, [Example("a", "one", None)])
        store.replace_own_examples(db, [Example("b", "two", None)])
        assert store.training_examples(db)[0] == Example("b", "two", None)


class TestEnsureModel:
    def test_fresh_install_trains_and_saves_the_seed_model_once(self, db: Session) -> None:
        model = store.ensure_model(db)
        db.commit()
        row = db.scalars(select(ClassifierModel)).one()
        assert (row.version, row.is_active, row.training_size) == (model.version, True, 325)
        assert row.labels == model.labels
        json.dumps(row.evaluation)
        assert row.evaluation["coverage"] > 0
        assert store.ensure_model(db) is model
        assert db.scalar(select(ClassifierModel.id).where(ClassifierModel.id != row.id)) is None


class TestTrainAndEvaluate:
    def test_one_training_run_gives_the_model_and_an_out_of_fold_evaluation(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        runs: list[int] = []
        vectorizer = triage_text_classifier._vectorizer

        def counted(design: Design, *, min_df: int) -> FeatureUnion:
            runs.append(1)
            return vectorizer(design, min_df=min_df)

        monkeypatch.setattr(triage_text_classifier, "_vectorizer", counted)
        model, evaluation = store.train_and_evaluate(seed_examples(), threshold=0.6)
        assert len(runs) == 1
        assert evaluation["method"] == "3-fold out-of-fold on 325 examples"
        assert evaluation["size"] == evaluation["category"]["size"] == 325
        assert 0.5 < evaluation["category"]["macro_f1"] < 1.0
        assert evaluation["coverage"] > 0
        json.dumps(evaluation)
        assert model.predict("Refund", "You charged my card twice").category == "billing"
