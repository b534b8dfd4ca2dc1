"""Variants of DOXA's category model on the folds of `classifier.py --cv`: a fast screen.

Usage::

    python bench/classifier_variants.py --list
    python bench/classifier_variants.py doxa word-min-df-3               # first repeat: 5 folds
    python bench/classifier_variants.py doxa word-min-df-3 --folds 25    # all of --cv's folds
    python bench/classifier_variants.py --report doxa word-min-df-3

Each variant is DOXA's training scheme for the category alone: the TF-IDF fitted on the
fold's training rows (no labels involved), the C chosen among the variant's grid by the
macro-F1 of 3-fold out-of-fold scores on those rows (KFold, seed 0, as
`doxa.core.triage.text_classifier` does), the model refitted on them and scored on the fold's test
rows.
The folds are `classifier.py --cv`'s (RepeatedStratifiedKFold(5, 5), seed 0, train rows only;
the fixed test splits are never read). `doxa` is today's design: its scores equal `ours` in
classifier-cv.jsonl (the priority model that `ours` also trains does not touch the category),
in 3-10 s a fold on Endava against 30-60 s. Scores are appended to
bench/results/classifier-variants.jsonl and a run resumes from it. The report pairs each
variant, fold by fold, with the baseline's scores in classifier-cv.jsonl (run
`classifier.py --cv --cv-models baseline` first) and with `doxa`, under the corrected
interval of `lib.crossval`. Screening many variants on the same folds and keeping the best is
a selection: confirm a pick on folds it was not chosen on.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from classifier import CV_RESULTS, endava, multilingual  # noqa: E402
from lib.crossval import corrected_interval, macro_f1  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import KFold, RepeatedStratifiedKFold  # noqa: E402
from sklearn.svm import LinearSVC  # noqa: E402

from doxa.core.triage.features import with_cues  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "classifier-variants.jsonl"
DOXA_C = (0.5, 0.25, 1.0)  # doxa.core.triage.text_classifier.Design.c: the first wins a tie
WIDE_C = (0.5, 0.05, 0.1, 0.25, 1.0)
Matrix = Any  # scipy.sparse CSR


# --- features: blocks of TF-IDF over the whole text (with DOXA's cue tokens) or its first line
@dataclass(frozen=True)
class Block:
    analyzer: str = "word"  # "word", "char_wb" or "char"
    ngrams: tuple[int, int] = (1, 2)
    min_df: int = 1
    max_df: float = 1.0
    part: str = "all"  # "all": with_cues(text), as DOXA reads it; "title": the first line
    weight: float = 1.0

    def vectorizer(self) -> TfidfVectorizer:
        extra = {"token_pattern": r"(?u)\b\w+\b"} if self.analyzer == "word" else {}
        return TfidfVectorizer(
            analyzer=self.analyzer,
            ngram_range=self.ngrams,
            min_df=self.min_df,
            max_df=self.max_df,
            max_features=100_000,
            sublinear_tf=True,
            lowercase=True,
            dtype=np.float32,
            **extra,
        )

    def text(self, text: str) -> str:
        return with_cues(text) if self.part == "all" else text.partition("\n")[0]


WORD = Block()
CHAR = Block("char_wb", (2, 5), min_df=2)  # DOXA's blocks (on 50 texts or more)


def featurize(
    blocks: Sequence[Block], fit: Sequence[str], test: Sequence[str]
) -> tuple[Matrix, Matrix]:
    parts = []
    for block in blocks:
        vectorizer = block.vectorizer()
        a = vectorizer.fit_transform([block.text(t) for t in fit]) * block.weight
        b = vectorizer.transform([block.text(t) for t in test]) * block.weight
        parts.append((a, b))
    x_fit = sp.hstack([a for a, _ in parts]).tocsr().astype(np.float64)
    x_test = sp.hstack([b for _, b in parts]).tocsr().astype(np.float64)
    return x_fit, x_test


# --- models: a factory from (a grid value, training labels) to an unfitted estimator
Model = Callable[[Any, np.ndarray], Any]


def _weights(y: np.ndarray, power: float) -> dict[int, float] | str:
    if power == 1.0:
        return "balanced"
    classes, counts = np.unique(y, return_counts=True)
    share = (len(y) / (len(classes) * counts)) ** power
    return {int(c): float(w) for c, w in zip(classes, share, strict=True)}


def svm(power: float = 1.0, **options: Any) -> Model:
    def make(c: float, y: np.ndarray) -> LinearSVC:
        return LinearSVC(
            C=c, class_weight=_weights(y, power), tol=1e-2, random_state=0, max_iter=2000, **options
        )

    return make


SVM = svm()  # DOXA's: class-balanced


class SvmLr:
    """Class-balanced SVM and LR (C x 10) decision scores, each divided by its spread on the
    training rows, summed."""

    def __init__(self, c: float, y: np.ndarray) -> None:
        self.models = [
            SVM(c, y),
            LogisticRegression(C=10 * c, class_weight="balanced", max_iter=3000, tol=1e-3),
        ]

    def fit(self, x: Matrix, y: np.ndarray) -> SvmLr:
        self.spread = []
        for model in self.models:
            model.fit(x, y)
            self.spread.append(float(model.decision_function(x).std()))
        self.classes_ = self.models[0].classes_
        return self

    def decision_function(self, x: Matrix) -> np.ndarray:
        scores: np.ndarray = sum(
            m.decision_function(x) / s for m, s in zip(self.models, self.spread, strict=True)
        )
        return scores


class NbSvm:
    """One-vs-rest NB-SVM (Wang & Manning 2012): each label's binary SVM reads the TF-IDF
    scaled by that label's log-count ratio of (presence) counts, smoothed by 1."""

    def __init__(self, c: float, y: np.ndarray) -> None:
        self.c = c

    def fit(self, x: Matrix, y: np.ndarray) -> NbSvm:
        present = x.copy()
        present.data[:] = 1.0
        self.classes_ = np.unique(y)
        self.parts = []
        for label in self.classes_:
            pos = np.asarray(present[y == label].sum(axis=0)).ravel() + 1.0
            neg = np.asarray(present[y != label].sum(axis=0)).ravel() + 1.0
            ratio = sp.diags(np.log((pos / pos.sum()) / (neg / neg.sum())))
            model = LinearSVC(C=self.c, class_weight="balanced", tol=1e-2, max_iter=2000)
            self.parts.append((ratio, model.fit(x @ ratio, (y == label).astype(int))))
        return self

    def decision_function(self, x: Matrix) -> np.ndarray:
        return np.column_stack([m.decision_function(x @ r) for r, m in self.parts])


class RareNeighbour:
    """The SVM's scores, plus `lam` x the highest cosine similarity to a training ticket of
    the label for labels with fewer than 30 training rows. The grid value is (C, lam)."""

    def __init__(self, grid_value: tuple[float, float], y: np.ndarray) -> None:
        self.c, self.lam = grid_value

    def fit(self, x: Matrix, y: np.ndarray) -> RareNeighbour:
        self.svm = SVM(self.c, y).fit(x, y)
        self.classes_ = self.svm.classes_
        labels, counts = np.unique(y, return_counts=True)
        self.rare = {int(k): x[y == k] for k, n in zip(labels, counts, strict=True) if n < 30}
        return self

    def decision_function(self, x: Matrix) -> np.ndarray:
        scores = _columns(self.svm.decision_function(x))
        blocks = 2.0  # two unit-length blocks: a self-similarity of 2
        for label, rows in self.rare.items():
            column = list(self.classes_).index(label)
            scores[:, column] += self.lam * (x @ rows.T).max(axis=1).toarray().ravel() / blocks
        return scores


def _columns(raw: np.ndarray) -> np.ndarray:
    return np.column_stack([-raw, raw]) if raw.ndim == 1 else np.array(raw)


@dataclass(frozen=True)
class Variant:
    note: str
    blocks: tuple[Block, ...] = (WORD, CHAR)
    model: Model = SVM
    grid: tuple[Any, ...] = DOXA_C


_TITLE = (Block(part="title", weight=0.7), Block("char_wb", (2, 5), 2, part="title", weight=0.7))
_NEIGHBOUR_GRID = tuple((c, lam) for lam in (0.0, 0.5, 1.0, 2.0) for c in DOXA_C)

VARIANTS = {
    "doxa": Variant("today's design (= `ours`)"),
    "word-min-df-3": Variant(
        "words in fewer than 3 training tickets dropped", (Block(min_df=3), CHAR)
    ),
    "title": Variant(
        "plus word and char_wb blocks of the title alone, weight 0.7", (WORD, CHAR, *_TITLE)
    ),
    "word-min-df-3+title": Variant("both of the above", (Block(min_df=3), CHAR, *_TITLE)),
    "wide-c": Variant("C also among 0.05 and 0.1", grid=WIDE_C),
    "word-min-df-3+wide-c": Variant("both", (Block(min_df=3), CHAR), grid=WIDE_C),
    "min-df-3": Variant(
        "words and char n-grams in fewer than 3 tickets dropped",
        (Block(min_df=3), Block("char_wb", (2, 5), 3)),
    ),
    "min-df-3+max-df-0.3": Variant(
        "... and those in over 30 % of them",
        (Block(min_df=3, max_df=0.3), Block("char_wb", (2, 5), 3, 0.3)),
    ),
    "min-df-2+max-df-0.5": Variant(
        "words in fewer than 2, n-grams in over 50 % dropped",
        (Block(min_df=2, max_df=0.5), Block("char_wb", (2, 5), 2, 0.5)),
    ),
    "char-wb-1-6": Variant("char_wb 1-6-grams", (WORD, Block("char_wb", (1, 6), 2))),
    "char-2-5": Variant("char (across words) 2-5-grams", (WORD, Block("char", (2, 5), 2))),
    "sqrt-weights": Variant(
        "class weights: the balanced ones to the power 0.5", model=svm(power=0.5)
    ),
    "crammer-singer": Variant(
        "one multi-class SVM (Crammer-Singer)", model=svm(multi_class="crammer_singer")
    ),
    "svm+lr": Variant("SVM and LR scores standardised and summed", model=SvmLr),
    "nb-svm": Variant("NB-SVM (log-count ratios)", model=NbSvm, grid=(0.1, 0.05, 0.25)),
    "rare-neighbour": Variant(
        "SVM + nearest training ticket of a rare label", model=RareNeighbour, grid=_NEIGHBOUR_GRID
    ),
}


def _scores(model: Any, x: Matrix, n_labels: int) -> np.ndarray:
    raw = _columns(model.decision_function(x))
    scores = np.full((x.shape[0], n_labels), -10.0)
    scores[:, model.classes_] = raw
    return scores


def run(
    variant: Variant, fit: list[str], labels: np.ndarray, test: list[str]
) -> tuple[list[str], Any]:
    """The test rows' labels from DOXA's scheme with this variant, and the grid value chosen."""
    x, x_test = featurize(variant.blocks, fit, test)
    names = np.unique(labels)
    y = np.searchsorted(names, labels)
    chosen = variant.grid[0]
    if len(variant.grid) > 1:
        best = -1.0
        inner = list(KFold(3, shuffle=True, random_state=0).split(x))
        for value in variant.grid:
            oof = np.zeros((len(y), len(names)))
            for a, b in inner:
                oof[b] = _scores(variant.model(value, y[a]).fit(x[a], y[a]), x[b], len(names))
            score = macro_f1(list(y), list(oof.argmax(axis=1)))
            if score > best:  # the first of equal scores stays
                best, chosen = score, value
    model = variant.model(chosen, y).fit(x, y)
    return list(names[_scores(model, x_test, len(names)).argmax(axis=1)]), chosen


def _rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def screen(names: Sequence[str], datasets: Sequence[str], folds: int) -> None:
    done = {(r["dataset"], r["fold"], r["variant"]) for r in _rows(RESULTS)}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    for dataset in datasets:
        fit, _ = endava() if dataset == "endava" else multilingual()
        texts = [e.text for e in fit]
        labels = np.array([str(e.category) for e in fit])
        splitter = RepeatedStratifiedKFold(n_splits=5, n_repeats=5, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # labels with fewer rows than folds
            splits = list(splitter.split(texts, labels))[:folds]
        for k, (train_idx, test_idx) in enumerate(splits):
            for name in names:
                if (dataset, k, name) in done:
                    continue
                started = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # convergence, one-row labels
                    predicted, chosen = run(
                        VARIANTS[name],
                        [texts[i] for i in train_idx],
                        labels[train_idx],
                        [texts[i] for i in test_idx],
                    )
                row = {
                    "dataset": dataset,
                    "fold": k,
                    "variant": name,
                    "macro_f1": macro_f1(list(labels[test_idx]), predicted),
                    "chosen": chosen,
                    "test_size": len(test_idx),
                    "train_size": len(train_idx),
                    "seconds": round(time.perf_counter() - started, 1),
                }
                with RESULTS.open("a") as handle:
                    handle.write(json.dumps(row) + "\n")
                print(
                    f"{dataset:<14}{name:<24}fold {k:>2}  macro-F1 {row['macro_f1']:.3f}  "
                    f"{row['seconds']:.0f} s",
                    flush=True,
                )


def _paired(own: dict[int, float], other: dict[int, float], share: float) -> str:
    folds = sorted(set(own) & set(other))
    if len(folds) < 2:
        return f"{'':>37}"
    differences = [own[k] - other[k] for k in folds]
    mean, low, high, p_value = corrected_interval(differences, test_share=share)
    return f"{mean:>+12.3f} [{low:+.3f}, {high:+.3f}] p {p_value:.2f}"


def report(names: Sequence[str], datasets: Sequence[str], folds: int) -> None:
    """Each variant's first `folds` folds, paired with the baseline's and with `doxa`'s."""
    rows = [r for r in _rows(RESULTS) if r["fold"] < folds]
    print(
        f"{'dataset':<14}{'variant':<24}{'folds':>6}{'mean':>8}"
        f"{'- baseline [95 % interval]':>37}{'- doxa [95 % interval]':>37}"
    )
    for dataset in datasets:
        baseline = {
            5 * r["repeat"] + r["fold"]: r["macro_f1"]
            for r in _rows(CV_RESULTS)
            if r["model"] == "baseline" and r["dataset"] == dataset
        }
        ours = {
            r["fold"]: r["macro_f1"]
            for r in rows
            if r["dataset"] == dataset and r["variant"] == "doxa"
        }
        for name in names:
            mine = [r for r in rows if r["dataset"] == dataset and r["variant"] == name]
            if not mine:
                continue
            own = {r["fold"]: r["macro_f1"] for r in mine}
            share = float(np.mean([r["test_size"] / r["train_size"] for r in mine]))
            print(
                f"{dataset:<14}{name:<24}{len(own):>6}{np.mean(list(own.values())):>8.3f}"
                f"{_paired(own, baseline, share)}"
                f"{_paired(own, ours, share) if name != 'doxa' else ''}"
            )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("variants", nargs="*", help="names (see --list)")
    parser.add_argument("--list", action="store_true", help="the variants")
    parser.add_argument("--folds", type=int, default=5, help="the first N of --cv's 25 folds")
    parser.add_argument("--datasets", default="endava,multilingual")
    parser.add_argument("--report", action="store_true", help="only the report")
    args = parser.parse_args(argv)
    if args.list or not args.variants:
        for name, variant in VARIANTS.items():
            print(f"{name:<24}{variant.note}")
        return
    unknown = [name for name in args.variants if name not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants: {', '.join(unknown)}")
    datasets = [d for d in args.datasets.split(",") if d]
    if not args.report:
        screen(args.variants, datasets, args.folds)
    report(args.variants, datasets, args.folds)


if __name__ == "__main__":
    main()
