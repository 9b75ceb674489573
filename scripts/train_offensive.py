"""Train the shipped offensive-language model on COLD train and evaluate it on COLD dev.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/train_offensive.py [--search] [--no-write]

Reads ``../shared/data/moderation/cold/{train,dev}.csv`` (COLD, Deng et al. 2022,
Apache-2.0; or ``--data``). The configuration (``CHOSEN``) is measured by stratified
cross-validation on the train split only; ``--search`` first runs the candidate ``GRID`` by
the same cross-validation and keeps the best mean accuracy. The model is fitted on every
(normalised, de-duplicated) train text with :func:`shequ.text.sentiment.fit` and written to
``src/shequ/text/models/offensive.npz`` and its ``.json`` sidecar. Dev is read only after the
configuration is fixed, to report accuracy, macro-F1, precision/recall of the offensive class,
per-topic figures and texts/s on one core, written between the markers of docs/offensive.md.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import model_search
import numpy as np
import numpy.typing as npt
from doc_blocks import DocBlock

from shequ.text.normalise import normalise
from shequ.text.offensive import DEFAULT_MODEL_PATH
from shequ.text.sentiment import FeatureConfig, SentimentModel, accuracy_and_macro_f1, fit

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SHEQU_EVAL_DATA", ROOT.parent / "shared" / "data"))
COLD = DATA / "moderation" / "cold"
DOC = ROOT / "docs" / "offensive.md"
BLOCK = DocBlock("scripts/train_offensive.py")
FOLDS = 5
SEED = 0
PAPER_ACCURACY = 0.81
# the fixed dev slice tests/text/test_offensive.py checks the shipped model on
TEST_SLICE_ROWS = 1000
TEST_SLICE_SEED = 7

# The configuration chosen by the last ``--search`` (cross-validation on COLD train only).
CHOSEN = FeatureConfig(max_n=3, bucket_bits=22, negation_window=0, sublinear_tf=True,
                       min_df=2, c=16.0, clause_augment=False)
_BASE = replace(CHOSEN, min_df=1)
GRID = [*(replace(_BASE, c=c) for c in (4.0, 16.0, 64.0)),
        *(replace(_BASE, max_n=2, c=c) for c in (8.0, 16.0, 32.0)),
        *(replace(_BASE, max_n=2, min_df=2, c=c) for c in (8.0, 16.0, 32.0)),
        replace(_BASE, min_df=2), replace(_BASE, max_n=4),
        replace(_BASE, negation_window=3), replace(_BASE, clause_augment=True)]

IntArray = npt.NDArray[np.int64]


def read_split(path: Path) -> list[dict[str, str]]:
    """The rows (``topic``, ``label``, ``TEXT``) of one COLD csv file."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def training_set(rows: list[dict[str, str]]) -> tuple[list[str], IntArray, dict[str, int]]:
    """Normalised unique train texts and labels (a text found under both labels is dropped)."""
    labels: dict[str, set[int]] = {}
    for row in rows:
        text = normalise(row["TEXT"])
        if text:
            labels.setdefault(text, set()).add(int(row["label"]))
    texts = [text for text, values in labels.items() if len(values) == 1]
    targets = np.array([next(iter(labels[text])) for text in texts], dtype=np.int64)
    counts = {"rows": len(rows), "unique_texts": len(labels),
              "conflicting_dropped": len(labels) - len(texts),
              "offensive": int(targets.sum()), "non_offensive": int((targets == 0).sum())}
    return texts, targets, counts


def cross_validate(texts: list[str], targets: IntArray, config: FeatureConfig,
                   folds: int = FOLDS, seed: int = SEED) -> dict[str, float]:
    """Mean accuracy and macro-F1 over stratified folds of the train split."""
    generator = np.random.default_rng(seed)
    fold_of = np.empty(len(texts), dtype=np.int64)
    for value in (0, 1):
        members = np.flatnonzero(targets == value)
        generator.shuffle(members)
        fold_of[members] = np.arange(members.size) % folds
    accuracies, f1s = [], []
    for fold in range(folds):
        train_rows = np.flatnonzero(fold_of != fold)
        test_rows = np.flatnonzero(fold_of == fold)
        model = fit([texts[i] for i in train_rows], targets[train_rows], config)
        predicted = (model.predict_proba([texts[i] for i in test_rows]) > 0.5).astype(np.int64)
        accuracy, macro_f1 = accuracy_and_macro_f1(targets[test_rows], predicted)
        accuracies.append(accuracy)
        f1s.append(macro_f1)
    return {"folds": folds, "accuracy": round(float(np.mean(accuracies)), 4),
            "accuracy_sd": round(float(np.std(accuracies)), 4),
            "macro_f1": round(float(np.mean(f1s)), 4)}


def scores(truth: IntArray, predicted: IntArray) -> dict[str, float | int]:
    """Accuracy, macro-F1 and precision/recall of the offensive class."""
    accuracy, macro_f1 = accuracy_and_macro_f1(truth, predicted)
    hits = int(np.sum((truth == 1) & (predicted == 1)))
    flagged = int(np.sum(predicted == 1))
    actual = int(np.sum(truth == 1))
    return {"rows": int(truth.size), "accuracy": round(accuracy, 4),
            "macro_f1": round(macro_f1, 4),
            "precision": round(hits / flagged, 4) if flagged else 0.0,
            "recall": round(hits / actual, 4) if actual else 0.0}


def test_slice(count: int) -> IntArray:
    """The indices of the fixed dev slice the tests check (sorted)."""
    generator = np.random.default_rng(TEST_SLICE_SEED)
    return np.sort(generator.choice(count, size=min(TEST_SLICE_ROWS, count), replace=False))


def evaluate_dev(model: SentimentModel, rows: list[dict[str, str]]) -> dict[str, Any]:
    """Figures on the dev split: overall, per topic, on the test slice, and speed."""
    texts = [row["TEXT"] for row in rows]
    truth = np.array([int(row["label"]) for row in rows], dtype=np.int64)
    model.predict_proba(texts[:200])  # warm up
    started = time.perf_counter()
    probability = model.predict_proba(texts)
    seconds = time.perf_counter() - started
    predicted = (probability > 0.5).astype(np.int64)
    topics = sorted({row["topic"] for row in rows})
    by_topic = {}
    for topic in topics:
        mask = np.array([row["topic"] == topic for row in rows])
        by_topic[topic] = scores(truth[mask], predicted[mask])
    sliced = test_slice(len(rows))
    return {"all": scores(truth, predicted), "by_topic": by_topic,
            "slice": {"rows": int(sliced.size), "seed": TEST_SLICE_SEED,
                      "accuracy": scores(truth[sliced], predicted[sliced])["accuracy"]},
            "offensive_share": round(float(truth.mean()), 4),
            "texts_per_second": round(len(texts) / seconds),
            "mean_characters": round(float(np.mean([len(t) for t in texts])), 1)}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def render(counts: dict[str, int], config: FeatureConfig, cv: dict[str, float],
           search: list[dict[str, Any]], dev: dict[str, Any], model: SentimentModel,
           size_kib: int) -> str:
    lines = [BLOCK.begin, "",
             "Command: `OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/train_offensive.py"
             + (" --search`" if search else "`"), "",
             f"Train: {counts['rows']:,} rows, {counts['unique_texts']:,} unique normalised "
             f"texts ({counts['conflicting_dropped']} with both labels dropped): "
             f"{counts['offensive']:,} offensive, {counts['non_offensive']:,} not.", "",
             f"Configuration: `{json.dumps(asdict(config))}`; {model.active_buckets:,} active "
             f"buckets, {size_kib} KiB `.npz`.", ""]
    if search:
        lines += [f"Candidates by {FOLDS}-fold cross-validation on train (dev not used):", "",
                  "| configuration | CV accuracy | CV macro-F1 |", "|---|---|---|"]
        for entry in search:
            lines.append(f"| `{json.dumps(entry['config'])}` | {_pct(entry['accuracy'])} "
                         f"± {100 * entry['accuracy_sd']:.1f} | {_pct(entry['macro_f1'])} |")
        lines.append("")
    lines += [f"Chosen configuration, {FOLDS}-fold CV on train: accuracy {_pct(cv['accuracy'])} "
              f"(sd {100 * cv['accuracy_sd']:.1f} points), macro-F1 {_pct(cv['macro_f1'])}.",
              "",
              f"COLD dev ({dev['all']['rows']:,} rows, {_pct(dev['offensive_share'])} offensive; "
              f"the COLD paper's detector: {_pct(PAPER_ACCURACY)} accuracy on its test split):",
              "", "| topic | rows | accuracy | macro-F1 | offensive precision | offensive recall |",
              "|---|---|---|---|---|---|"]
    for name, figures in [("**all**", dev["all"]), *dev["by_topic"].items()]:
        lines.append(f"| {name} | {figures['rows']:,} | {_pct(figures['accuracy'])} | "
                     f"{_pct(figures['macro_f1'])} | {_pct(figures['precision'])} | "
                     f"{_pct(figures['recall'])} |")
    lines += ["",
              f"Fixed dev slice checked by tests/text/test_offensive.py ({dev['slice']['rows']} "
              f"rows, seed {dev['slice']['seed']}): accuracy {_pct(dev['slice']['accuracy'])}.",
              "",
              f"Speed: {dev['texts_per_second']:,} texts/s on one core (all dev texts in one "
              f"call, mean {dev['mean_characters']} characters).", "", BLOCK.end, ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=COLD, help="folder with train.csv, dev.csv")
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--doc", type=Path, default=DOC)
    parser.add_argument("--search", action="store_true", help="choose the configuration by CV")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if not (args.data / "train.csv").is_file():
        sys.exit(f"missing {args.data}/train.csv: the COLD data set is needed")
    texts, targets, counts = training_set(read_split(args.data / "train.csv"))
    print(json.dumps(counts), flush=True)
    config = CHOSEN
    search: list[dict[str, Any]] = []
    chosen: dict[str, float] | None = None
    if args.search:
        config, chosen, search = model_search.search(
            GRID, lambda candidate: cross_validate(texts, targets, candidate), "accuracy")
    cv = chosen or cross_validate(texts, targets, config)
    print("chosen", json.dumps(asdict(config)), json.dumps(cv), flush=True)
    model = fit(texts, targets, config)
    # dev is read only now, after the configuration is fixed
    dev = evaluate_dev(model, read_split(args.data / "dev.csv"))
    print(json.dumps(dev), flush=True)
    model.metadata.update({
        "task": "P(offensive) of a Chinese text (label 1 = offensive)",
        "training_data": "COLD (thu-coai/COLDataset, Deng et al., EMNLP 2022) train.csv, "
                         "normalised and de-duplicated",
        "training_data_licence": "Apache-2.0",
        "training_data_sha256": sha256(args.data / "train.csv"),
        "training_counts": counts,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "trained_by": "scripts/train_offensive.py",
        "cross_validation": cv,
        "search": search,
        "dev": dev,
    })
    if args.no_write:
        return
    path = model.save(args.out)
    block = render(counts, config, cv, search, dev, model, path.stat().st_size // 1024)
    print(block)
    BLOCK.write(args.doc, block)
    print(f"wrote {path}, {path.with_suffix('.json')} and {args.doc}", file=sys.stderr)


if __name__ == "__main__":
    main()
