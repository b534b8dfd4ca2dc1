"""The triage classifier against two reference baselines, on two labeled sets and our seed set.

Usage::

    python bench/classifier.py                 # both corpora (fixed split.json) + seed 5-fold CV
    python bench/classifier.py --select        # also: the design grid on a validation split
    python bench/classifier.py --scale 10000   # also: retraining time on 10,000 examples
    python bench/classifier.py --cv            # only: 5 x 5 repeated CV, DOXA vs the baseline
    python bench/classifier.py --cv --cv-models baseline   # one side (two processes, resumed)

Corpora live under ../shared/corpus/tickets/ (never shipped: see their PROVENANCE.md). Each is
trained on its `train` rows and reported on its `test` rows (split.json); the seed set is
reported by 5-fold cross-validation. `--select` chooses among designs on a validation split
cut from the train rows only (25 %, seeded), so the test rows never steer a choice.

Models:
- ours: doxa.core.triage.text_classifier.train (class-balanced linear SVM over word + char n-grams,
  urgency cues, a correctness calibrator fitted out of fold);
- word-lr: word TF-IDF + logistic regression;
- wordchar-lr-bal: word + char TF-IDF + class-balanced logistic regression;
- wordchar-lr-bal-tuned (and `baseline` in --cv): word 1-2-gram + char 2-5-gram TF-IDF,
  class-balanced logistic regression whose C is chosen by inner 3-fold CV on the training rows
  only (bench/lib/crossval.py: tuned_baseline).

--cv: 5-fold stratified CV (by category), repeated 5 times, on each labeled set's train rows;
both models see the same folds and each fold gives one paired macro-F1 difference of the
category. The interval is the corrected resampled t of Nadeau & Bengio (bench/lib/crossval.py).
Scores are appended to bench/results/classifier-cv.jsonl as they come and a run resumes from
it (a (dataset, repeat, fold, model) already there is skipped): delete the file after changing
a model.

Columns: accuracy and macro-F1 of the category (Endava `category`, multilingual `queue`) and of
the priority (Endava `urgency`, multilingual `priority`); coverage = share of test tickets whose
category confidence is >= 0.6, and the category accuracy on that share; train time; per-ticket
latency (one ticket at a time, one core); model load time (from bytes). Each run appends JSON
lines to bench/results/classifier.jsonl.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import pickle
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

# One core, as the target says; set before numpy/scipy load their BLAS.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline, make_union  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lib.crossval import Fold, compare, repeated_cv, tuned_baseline  # noqa: E402

from doxa.core.triage.data import Example, seed_examples  # noqa: E402
from doxa.core.triage.evaluation import field_report  # noqa: E402
from doxa.core.triage.store import train_and_evaluate  # noqa: E402
from doxa.core.triage.text_classifier import Design, TextClassifier, train  # noqa: E402

CORPUS = Path(os.environ.get("DOXA_CORPUS") or ROOT.parent / "shared" / "corpus") / "tickets"
RESULTS = ROOT / "bench" / "results" / "classifier.jsonl"
THRESHOLD = 0.6
LATENCY_SAMPLE = 200


@dataclass(frozen=True)
class Row:
    dataset: str
    model: str
    category_accuracy: float
    category_macro_f1: float
    priority_accuracy: float
    priority_macro_f1: float
    coverage: float
    accuracy_at_threshold: float
    train_seconds: float
    latency_ms: float
    load_ms: float
    test_size: int


class Fitted(Protocol):
    def predict(self, texts: Sequence[str]) -> tuple[list[str], list[float], list[str]]: ...
    def dump(self) -> bytes: ...


Trainer = Callable[[list[Example]], Fitted]


class Ours:
    def __init__(self, model: TextClassifier) -> None:
        self.model = model

    def predict(self, texts: Sequence[str]) -> tuple[list[str], list[float], list[str]]:
        predictions = self.model.predict_texts(texts)
        return (
            [p.category for p in predictions],
            [p.category_confidence for p in predictions],
            [p.priority for p in predictions],
        )

    def dump(self) -> bytes:
        return self.model.to_bytes()


class Baseline:
    """A scikit-learn pipeline per field; confidence is the category's top probability."""

    def __init__(self, category: Pipeline, priority: Pipeline) -> None:
        self.category = category
        self.priority = priority

    def predict(self, texts: Sequence[str]) -> tuple[list[str], list[float], list[str]]:
        probabilities = self.category.predict_proba(list(texts))
        classes = self.category.classes_
        return (
            [str(classes[i]) for i in probabilities.argmax(axis=1)],
            [float(p) for p in probabilities.max(axis=1)],
            [str(label) for label in self.priority.predict(list(texts))],
        )

    def dump(self) -> bytes:
        return pickle.dumps(self)


def word_lr() -> Pipeline:
    return make_pipeline(TfidfVectorizer(sublinear_tf=True), LogisticRegression(max_iter=2000))


def wordchar_lr_balanced() -> Pipeline:
    features = make_union(
        TfidfVectorizer(sublinear_tf=True),
        TfidfVectorizer(sublinear_tf=True, analyzer="char_wb", ngram_range=(2, 5), min_df=2),
    )
    return make_pipeline(features, LogisticRegression(max_iter=2000, class_weight="balanced"))


def baseline(factory: Callable[[], Pipeline]) -> Trainer:
    def fit(examples: list[Example]) -> Fitted:
        category = [e for e in examples if e.category]
        priority = [e for e in examples if e.priority]
        return Baseline(
            factory().fit([e.text for e in category], [e.category for e in category]),
            factory().fit([e.text for e in priority], [e.priority for e in priority]),
        )

    return fit


def ours(design: Design | None = None) -> Trainer:
    return lambda examples: Ours(train(examples, design=design))


def tuned(examples: list[Example]) -> Fitted:
    category = [e for e in examples if e.category]
    priority = [e for e in examples if e.priority]
    return Baseline(
        tuned_baseline([e.text for e in category], [str(e.category) for e in category]),
        tuned_baseline([e.text for e in priority], [str(e.priority) for e in priority]),
    )


MODELS: dict[str, Trainer] = {
    "word-lr": baseline(word_lr),
    "wordchar-lr-bal": baseline(wordchar_lr_balanced),
    "wordchar-lr-bal-tuned": tuned,
    "ours": ours(),
}

CV_RESULTS = ROOT / "bench" / "results" / "classifier-cv.jsonl"
CV_MODELS = ("ours", "baseline")


def _cv_fit(
    name: str, priorities: dict[str, str | None]
) -> Callable[[list[str], list[str]], Callable[[list[str]], list[str]]]:
    """Category only: texts and labels in, a predictor out."""

    def fit(texts: list[str], labels: list[str]) -> Callable[[list[str]], list[str]]:
        if name == "baseline":
            pipeline = tuned_baseline(texts, labels)
            return lambda batch: [str(label) for label in pipeline.predict(batch)]
        # DOXA learns priority alongside; the CV scores the category (the corpus' priorities
        # go with each example, as a help desk's export would carry them).
        examples = [Example(t, c, priorities.get(t)) for t, c in zip(texts, labels, strict=True)]
        model = train(examples)
        return lambda batch: [p.category for p in model.predict_texts(batch)]

    return fit


def cross_validate(
    datasets: dict[str, tuple[list[Example], list[Example]]],
    models: Sequence[str],
    repeats: int,
) -> None:
    """5 x `repeats` stratified CV on each set's train rows; resumes from CV_RESULTS."""
    CV_RESULTS.parent.mkdir(parents=True, exist_ok=True)
    for dataset, (fit, _) in datasets.items():
        priorities = {e.text: e.priority for e in fit}
        texts, labels = [e.text for e in fit], [str(e.category) for e in fit]
        done = {(f.repeat, f.fold, f.model) for f in _cv_rows(dataset)}

        def record(fold: Fold, dataset: str = dataset) -> None:
            with CV_RESULTS.open("a") as handle:
                handle.write(json.dumps({"dataset": dataset, **asdict(fold)}) + "\n")
            print(
                f"{dataset:<14}{fold.model:<10}repeat {fold.repeat} fold {fold.fold}  "
                f"macro-F1 {fold.macro_f1:.3f}  {fold.seconds:.0f} s",
                flush=True,
            )

        repeated_cv(
            texts,
            labels,
            {name: _cv_fit(name, priorities) for name in models},
            repeats=repeats,
            done=done,
            report=record,
        )


def _cv_rows(dataset: str) -> list[Fold]:
    if not CV_RESULTS.is_file():
        return []
    rows = [json.loads(line) for line in CV_RESULTS.read_text().splitlines() if line.strip()]
    return [
        Fold(**{k: v for k, v in row.items() if k != "dataset"})
        for row in rows
        if row["dataset"] == dataset
    ]


def cv_report(datasets: Sequence[str]) -> None:
    print(
        f"{'dataset':<14}{'folds':>6}{'DOXA':>8}{'baseline':>10}{'diff':>8}"
        f"{'95% interval (corrected t)':>30}{'p':>8}"
    )
    for dataset in datasets:
        try:
            c = compare(_cv_rows(dataset), "ours", "baseline")
        except ValueError as exc:  # one side not run yet
            print(f"{dataset:<14}{exc}")
            continue
        print(
            f"{dataset:<14}{c.folds:>6}{c.mean_a:>8.3f}{c.mean_b:>10.3f}"
            f"{c.mean_difference:>+8.3f}{f'[{c.low:+.3f}, {c.high:+.3f}]':>30}"
            f"{c.p_value:>8.3f}"
        )


def measure(
    dataset: str, name: str, trainer: Trainer, fit: list[Example], test: list[Example]
) -> Row:
    started = time.perf_counter()
    model = trainer(fit)
    train_seconds = time.perf_counter() - started
    texts = [e.text for e in test]
    categories, confidences, priorities = model.predict(texts)
    category = field_report([(str(e.category), c) for e, c in zip(test, categories, strict=True)])
    priority = field_report([(str(e.priority), p) for e, p in zip(test, priorities, strict=True)])
    covered = [
        e.category == c
        for e, c, conf in zip(test, categories, confidences, strict=True)
        if conf >= THRESHOLD
    ]
    sample = texts[:LATENCY_SAMPLE]
    started = time.perf_counter()
    for text in sample:
        model.predict([text])
    latency_ms = (time.perf_counter() - started) / len(sample) * 1000
    blob = model.dump()
    started = time.perf_counter()
    if isinstance(model, Ours):
        TextClassifier.from_bytes(blob)
    else:
        pickle.loads(blob)  # noqa: S301 - our own baseline, pickled just above
    load_ms = (time.perf_counter() - started) * 1000
    return Row(
        dataset,
        name,
        _float(category["accuracy"]),
        _float(category["macro_f1"]),
        _float(priority["accuracy"]),
        _float(priority["macro_f1"]),
        len(covered) / len(test),
        sum(covered) / len(covered) if covered else 0.0,
        train_seconds,
        latency_ms,
        load_ms,
        len(test),
    )


def _float(value: object) -> float:
    assert isinstance(value, float | int)
    return float(value)


def endava() -> tuple[list[Example], list[Example]]:
    folder = CORPUS / "endava-it-tickets"
    test_ids = set(json.loads((folder / "split.json").read_text())["test_ids"])
    fit: list[Example] = []
    test: list[Example] = []
    with (folder / "all_tickets_subset.csv").open(newline="") as handle:
        for row_id, row in enumerate(csv.DictReader(handle)):
            example = Example(f"{row['title']}\n{row['body']}", row["category"], row["urgency"])
            (test if str(row_id) in test_ids else fit).append(example)
    return fit, test


def multilingual() -> tuple[list[Example], list[Example]]:
    folder = CORPUS / "multilingual-helpdesk-tickets-600"
    test_ids = set(json.loads((folder / "split.json").read_text())["test_ids"])
    fit: list[Example] = []
    test: list[Example] = []
    with (folder / "helpdesk_customer_tickets.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            example = Example(f"{row['subject']}\n{row['body']}", row["queue"], row["priority"])
            (test if row["id"] in test_ids else fit).append(example)
    return fit, test


def validation_split(
    examples: list[Example], share: float = 0.25
) -> tuple[list[Example], list[Example]]:
    shuffled = list(examples)
    random.Random(0).shuffle(shuffled)
    cut = int(len(shuffled) * share)
    return shuffled[cut:], shuffled[:cut]


def seed_cv(folds: int = 5) -> list[Row]:
    examples = seed_examples()
    random.Random(0).shuffle(examples)
    rows = []
    for name, trainer in MODELS.items():
        parts = [
            measure(
                "seed-cv",
                name,
                trainer,
                examples[:k] + examples[k + len(examples) // folds :],
                examples[k : k + len(examples) // folds],
            )
            for k in range(0, folds * (len(examples) // folds), len(examples) // folds)
        ]
        rows.append(_mean(parts))
    return rows


def _mean(parts: list[Row]) -> Row:
    values = [asdict(part) for part in parts]
    averaged: dict[str, Any] = {
        key: float(np.mean([v[key] for v in values]))
        for key in values[0]
        if key not in ("dataset", "model", "test_size")
    }
    return Row(
        dataset=parts[0].dataset,
        model=parts[0].model,
        test_size=sum(p.test_size for p in parts),
        **averaged,
    )


SELECTION = [
    Design(),
    Design(c=(0.25,)),
    Design(c=(1.0,)),
    Design(balanced=False),
    Design(word_ngrams=(1, 1)),
    Design(char_ngrams=(1, 4)),
    Design(loss="hinge"),
]


def select(datasets: dict[str, tuple[list[Example], list[Example]]]) -> list[Row]:
    rows = []
    for dataset, (fit, _) in datasets.items():
        part, validation = validation_split(fit)
        for design in SELECTION:
            label = ",".join(
                f"{k}={v}" for k, v in asdict(design).items() if v != getattr(Design(), k)
            )
            name = f"ours[{label or 'default'}]"
            rows.append(measure(f"{dataset}-val", name, ours(design), part, validation))
            print(_line(rows[-1]), flush=True)
    return rows


def scale(size: int) -> Row:
    """Retraining as the service does it (store.train_and_evaluate: one fit + its evaluation)."""
    fit, test = endava()
    pool = fit + multilingual()[0] + seed_examples()
    examples = [pool[i % len(pool)] for i in range(size)]
    return measure(f"scale-{size}", "ours (retrain)", retrain, examples, test[:200])


def retrain(examples: list[Example]) -> Fitted:
    return Ours(train_and_evaluate(examples, threshold=THRESHOLD)[0])


HEADER = (
    f"{'dataset':<22}{'model':<34}{'cat acc':>8}{'cat F1':>8}{'pri acc':>8}{'pri F1':>8}"
    f"{'cov@.6':>8}{'acc@.6':>8}{'train s':>9}{'ms/tkt':>8}{'load ms':>9}"
)


def _line(row: Row) -> str:
    return (
        f"{row.dataset:<22}{row.model:<34}{row.category_accuracy:>8.3f}"
        f"{row.category_macro_f1:>8.3f}{row.priority_accuracy:>8.3f}{row.priority_macro_f1:>8.3f}"
        f"{row.coverage:>8.3f}{row.accuracy_at_threshold:>8.3f}{row.train_seconds:>9.2f}"
        f"{row.latency_ms:>8.2f}{row.load_ms:>9.1f}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--select", action="store_true", help="design grid on validation")
    parser.add_argument("--scale", type=int, default=0, help="also time training on N examples")
    parser.add_argument("--cv", action="store_true", help="only the repeated-CV comparison")
    parser.add_argument("--cv-models", default=",".join(CV_MODELS), help="ours,baseline")
    parser.add_argument("--repeats", type=int, default=5, help="CV repeats (of 5 folds)")
    args = parser.parse_args(argv)
    datasets = {"endava": endava(), "multilingual": multilingual()}
    if args.cv:
        cross_validate(datasets, [m for m in args.cv_models.split(",") if m], args.repeats)
        cv_report(list(datasets))
        return
    print(HEADER, flush=True)
    rows = select(datasets) if args.select else []
    for dataset, (fit, test) in datasets.items():
        for name, trainer in MODELS.items():
            rows.append(measure(dataset, name, trainer, fit, test))
            print(_line(rows[-1]), flush=True)
    for row in seed_cv():
        rows.append(row)
        print(_line(row), flush=True)
    if args.scale:
        rows.append(scale(args.scale))
        print(_line(rows[-1]), flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    buffer = io.StringIO()
    for row in rows:
        buffer.write(json.dumps({"at": stamp, "threshold": THRESHOLD, **asdict(row)}) + "\n")
    with RESULTS.open("a") as handle:
        handle.write(buffer.getvalue())


if __name__ == "__main__":
    main()
