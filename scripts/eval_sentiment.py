"""Evaluate the shipped sentiment model beside SnowNLP's built-in one (docs/sentiment.md).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/eval_sentiment.py --out docs/sentiment.md

Reads ``online_shopping_10_cats.csv`` (evaluation only: it has no licence), drops empty
reviews and every review whose normalised text appears in the SnowNLP training corpus, and
reports accuracy and macro-F1 of ours on all remaining rows and of both models on the same
fixed random sample (SnowNLP scores about 40-90 texts/s, so all rows would take 10-25
minutes; ``--snownlp-limit 0`` uses every row), per category, the speed of both on one
core, and both on the hand-written set ``tests/text/data/sentiment_other_domains.jsonl``.

``--shop-models`` (part of the published run, about a minute) also measures the shop path
(``shequ nlp train-sentiment``): each category is taken as one shop's rated reviews (the
rows' labels standing in for 1-2 / 4-5 stars), plus one shop holding every category; for
each, :func:`shequ.text.sentiment.train` fits a throwaway model on a stratified 80 % (seed
0) exactly as the command does, and that model and the shipped default are measured on the
same held-out 20 %. The throwaway models live in memory only and are never saved: the
evaluation data has no licence, so nothing trained on it may be shipped.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/eval_sentiment.py --shop-models \
        --out docs/sentiment.md
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from doc_blocks import DocBlock

from shequ.text.normalise import normalise
from shequ.text.sentiment import (
    accuracy_and_macro_f1,
    default_model,
    held_out_split,
    labels_of,
    train,
    unique_labelled,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("SHEQU_EVAL_DATA", ROOT.parent / "shared" / "data"))
EVAL_FILE = Path("sentiment") / "online_shopping_10_cats" / "online_shopping_10_cats.csv"
CORPUS = Path("sentiment") / "snownlp"
OTHER_DOMAINS = ROOT / "tests" / "text" / "data" / "sentiment_other_domains.jsonl"
BLOCK = DocBlock("scripts/eval_sentiment.py")
SAMPLE_SEED = 0
DEFAULT_SNOWNLP_LIMIT = 5000
SPEED_RUNS = 5
# the shop path's defaults (``shequ nlp train-sentiment --held-out 0.2 --seed 0
# --min-per-class 200``)
SHOP_HELD_OUT = 0.2
SHOP_SEED = 0
SHOP_MIN_PER_CLASS = 200
ALL_SHOPS = "all categories"
POOLED_SHOPS = "per-category models, held-out rows pooled"


@dataclass
class EvalRows:
    """The evaluation rows left after cleaning, and the counts of each step."""

    categories: list[str]
    labels: np.ndarray
    texts: list[str]
    counts: dict[str, int]


def training_keys(data: Path) -> set[str]:
    """Normalised texts of every line of the SnowNLP training corpus (both labels)."""
    keys: set[str] = set()
    for name in ("pos", "neg"):
        for line in (data / CORPUS / f"{name}.txt").read_text(encoding="utf-8").splitlines():
            keys.add(normalise(line.replace("\ufeff", "")))
    keys.discard("")
    return keys


def load_eval_rows(data: Path) -> EvalRows:
    """online_shopping_10_cats without empty reviews and without training-corpus texts."""
    keys = training_keys(data)
    categories: list[str] = []
    labels: list[int] = []
    texts: list[str] = []
    raw = empty = overlap = 0
    with (data / EVAL_FILE).open(encoding="utf-8-sig", newline="") as handle:
        for record in csv.DictReader(handle):
            raw += 1
            text = (record["review"] or "").replace("\ufeff", "")
            key = normalise(text)
            if not key:
                empty += 1
                continue
            if key in keys:
                overlap += 1
                continue
            categories.append(record["cat"])
            labels.append(int(record["label"]))
            texts.append(text)
    counts = {"raw": raw, "empty_dropped": empty, "overlap_removed": overlap,
              "final": len(texts), "pos": sum(labels), "neg": len(labels) - sum(labels)}
    return EvalRows(categories, np.array(labels, dtype=np.int64), texts, counts)


def sample_indices(total: int, limit: int, seed: int = SAMPLE_SEED) -> np.ndarray:
    """A fixed random sample of ``limit`` row indices (all rows when ``limit`` is 0)."""
    if limit <= 0 or limit >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, size=limit, replace=False))


def snownlp_scores(texts: Sequence[str]) -> np.ndarray:
    """SnowNLP's built-in P(positive) of each text (a comparison peer, never shipped)."""
    from snownlp import SnowNLP

    return np.array([SnowNLP(text).sentiments if text.strip() else 0.5 for text in texts])


def ours(texts: Sequence[str]) -> np.ndarray:
    """P(positive) from the shipped model."""
    return default_model().predict_proba(texts)


def pin_one_core() -> str:
    """Run on the first allowed core only; returns a note on what was done."""
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"pinned to core {core}"
    return "not pinned (no sched_setaffinity)"  # pragma: no cover - Linux has it


def texts_per_second(scorer: Callable[[Sequence[str]], np.ndarray], texts: Sequence[str],
                     runs: int) -> float:
    """Median texts/s over ``runs`` timed runs."""
    rates = []
    for _ in range(runs):
        started = time.perf_counter()
        scorer(texts)
        rates.append(len(texts) / (time.perf_counter() - started))
    return statistics.median(rates)


def figures(labels: np.ndarray, probabilities: np.ndarray) -> tuple[float, float]:
    """Accuracy and macro-F1 at the 0.5 threshold."""
    return accuracy_and_macro_f1(labels, (probabilities >= 0.5).astype(np.int64))


def load_other_domains(path: Path = OTHER_DOMAINS) -> tuple[list[str], list[str], np.ndarray]:
    """Domains, texts and labels (1 pos) of the hand-written robustness set."""
    domains, texts, labels = [], [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            domains.append(row["domain"])
            texts.append(row["text"])
            labels.append(1 if row["label"] == "pos" else 0)
    return domains, texts, np.array(labels, dtype=np.int64)


def _shop_row(shop: str, texts: Sequence[str], labels: np.ndarray,
              baseline: Callable[[Sequence[str]], np.ndarray], held_out: float, seed: int,
              min_per_class: int) -> tuple[dict[str, object], tuple[np.ndarray, ...] | None]:
    """One shop: train on its stratified ``1 - held_out``, measure both on the rest."""
    positives = int(labels.sum())
    row: dict[str, object] = {"shop": shop, "rows": len(texts), "pos": positives,
                              "neg": len(texts) - positives}
    # the held-out part exactly as train() (and so `shequ nlp train-sentiment`) chooses it:
    # the distinct normalised texts (first label kept), split stratified by ``seed``
    unique, targets = unique_labelled(texts, labels_of(labels.tolist()))
    train_index, test_index = held_out_split(targets, held_out, seed)
    held_labels = targets[test_index]
    if min(int(np.sum(held_labels == 1)), int(np.sum(held_labels == 0))) < 1 \
            or min(int(np.sum(targets[train_index] == value)) for value in (0, 1)) < 2:
        row.update(trained=False, note="too few reviews of one class to train")
        return row, None
    started = time.perf_counter()
    # a throwaway model: kept in memory for this measurement only, never saved
    model, report = train(texts, labels.tolist(), held_out=held_out, seed=seed)
    seconds = time.perf_counter() - started
    held_texts = [unique[i] for i in test_index]
    assert report.held_out_rows == len(held_texts)
    shop_probabilities = model.predict_proba(held_texts)
    default_probabilities = baseline(held_texts)
    del model
    row.update(trained=True, distinct=len(unique), train_rows=report.train_rows,
               held_out_rows=report.held_out_rows, seconds=seconds,
               below_minimum=min(report.positives, report.negatives) < min_per_class,
               shop_model=figures(held_labels, shop_probabilities),
               default_model=figures(held_labels, default_probabilities))
    return row, (held_labels, shop_probabilities, default_probabilities)


def evaluate_shops(shops: Sequence[str], texts: Sequence[str], labels: np.ndarray, *,
                   baseline: Callable[[Sequence[str]], np.ndarray] | None = None,
                   held_out: float = SHOP_HELD_OUT, seed: int = SHOP_SEED,
                   min_per_class: int = SHOP_MIN_PER_CLASS,
                   include_all: bool = True) -> list[dict[str, object]]:
    """Each shop's own throwaway model against ``baseline`` (default: the shipped model) on
    the shop's held-out part; then (with several shops) the per-shop models' held-out rows
    pooled, and (``include_all``) one shop holding every row.

    A row has ``shop``, ``rows``, ``pos``, ``neg``, ``trained``; a trained one also
    ``distinct``, ``train_rows``, ``held_out_rows``, ``seconds``, ``below_minimum`` (fewer
    than ``min_per_class`` distinct texts of one class: the command refuses such a shop
    unless ``--min-per-class`` is lowered) and ``shop_model`` / ``default_model``
    (accuracy, macro-F1); a shop that cannot be trained has a ``note`` instead.
    """
    scorer = baseline or ours
    shop_of = np.array(list(shops))
    if len(shop_of) != len(texts) or len(labels) != len(texts):
        raise ValueError("shops, texts and labels must have the same length")
    results: list[dict[str, object]] = []
    pooled: list[tuple[np.ndarray, ...]] = []
    names = sorted(set(shop_of.tolist()))
    for shop in names:
        index = np.flatnonzero(shop_of == shop)
        print(f"shop model {shop} ({index.size} rows) ...", file=sys.stderr, flush=True)
        row, held = _shop_row(shop, [texts[i] for i in index.tolist()], labels[index], scorer,
                              held_out, seed, min_per_class)
        results.append(row)
        if held is not None:
            pooled.append(held)
    if len(pooled) > 1:
        truth, mine, theirs = (np.concatenate(part) for part in zip(*pooled, strict=True))
        counted = np.isin(shop_of, [str(row["shop"]) for row in results if row["trained"]])
        positives = int(np.asarray(labels)[counted].sum())
        results.append({
            "shop": POOLED_SHOPS, "pooled": True, "trained": True,
            "rows": int(counted.sum()), "pos": positives, "neg": int(counted.sum()) - positives,
            "held_out_rows": int(truth.size), "shop_model": figures(truth, mine),
            "default_model": figures(truth, theirs)})
    if include_all and len(names) > 1:
        print(f"shop model {ALL_SHOPS} ({len(texts)} rows) ...", file=sys.stderr, flush=True)
        results.append(_shop_row(ALL_SHOPS, list(texts), np.asarray(labels), scorer, held_out,
                                 seed, min_per_class)[0])
    return results


def build_report(data: Path, snownlp_limit: int, runs: int = SPEED_RUNS,
                 shop_models: bool = False) -> dict[str, object]:
    """Every figure of the generated block."""
    pinned = pin_one_core()
    rows = load_eval_rows(data)
    model = default_model()
    ours(["预热"])
    started = time.perf_counter()
    ours_all = ours(rows.texts)
    first_pass = time.perf_counter() - started
    ours_rate = texts_per_second(ours, rows.texts, runs)
    sample = sample_indices(len(rows.texts), snownlp_limit)
    sample_texts = [rows.texts[i] for i in sample]
    print(f"SnowNLP on {len(sample)} rows ...", file=sys.stderr, flush=True)
    snownlp_scores(["预热一下"])
    started = time.perf_counter()
    snow_sample = snownlp_scores(sample_texts)
    snow_rate = len(sample) / (time.perf_counter() - started)
    sample_labels = rows.labels[sample]
    categories = sorted(set(rows.categories))
    category_of = np.array(rows.categories)
    per_category = []
    for category in categories:
        mask_all = category_of == category
        mask_sample = category_of[sample] == category
        per_category.append({
            "category": category, "rows": int(mask_all.sum()),
            "ours": figures(rows.labels[mask_all], ours_all[mask_all])[0],
            "sample_rows": int(mask_sample.sum()),
            "ours_sample": figures(sample_labels[mask_sample], ours_all[sample][mask_sample])[0]
            if mask_sample.any() else None,
            "snownlp_sample": figures(sample_labels[mask_sample], snow_sample[mask_sample])[0]
            if mask_sample.any() else None})
    domains, other_texts, other_labels = load_other_domains()
    other_ours = ours(other_texts)
    other_snow = snownlp_scores(other_texts)
    shops = None
    if shop_models:
        started = time.perf_counter()
        shops = {"rows": evaluate_shops(rows.categories, rows.texts, rows.labels),
                 "seconds": time.perf_counter() - started}
    return {
        "shops": shops, "pinned": pinned, "counts": rows.counts, "model": model.metadata,
        "ours_all": figures(rows.labels, ours_all), "sample_rows": len(sample),
        "ours_sample": figures(sample_labels, ours_all[sample]),
        "snownlp_sample": figures(sample_labels, snow_sample),
        "ours_rate": ours_rate, "ours_first_pass_rate": len(rows.texts) / first_pass,
        "snownlp_rate": snow_rate, "runs": runs, "per_category": per_category,
        "other": {"rows": len(other_texts), "pos": int(other_labels.sum()),
                  "ours": figures(other_labels, other_ours),
                  "snownlp": figures(other_labels, other_snow),
                  "domains": {d: (figures(other_labels[np.array(domains) == d],
                                          other_ours[np.array(domains) == d])[0],
                                  figures(other_labels[np.array(domains) == d],
                                          other_snow[np.array(domains) == d])[0],
                                  int((np.array(domains) == d).sum()))
                              for d in dict.fromkeys(domains)}}}


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _gain(mine: float, theirs: float) -> str:
    return f"{mine - theirs:+.3f}"


def render_shops(shops: dict[str, object]) -> list[str]:
    """The lines of the section on the shop path."""
    rows = shops["rows"]
    assert isinstance(rows, list)
    lines = [
        "### A shop's own model (`shequ nlp train-sentiment`)", "",
        "Each category is taken as one shop's rated reviews (the rows' labels standing in for "
        "1-2 / 4-5 stars), plus one shop holding every category. For each, "
        "`shequ.text.sentiment.train` fits a model exactly as `shequ nlp train-sentiment` "
        f"does: on a stratified {1 - SHOP_HELD_OUT:.0%} of the shop's distinct normalised "
        f"texts (seed {SHOP_SEED}); that model and the shipped default are then measured on "
        f"the same held-out {SHOP_HELD_OUT:.0%}. These models are throwaway: the "
        "evaluation-only data (no licence) trains them in memory only to measure what the "
        "shop path reaches; they are never saved, shipped or committed, and the shipped "
        "model is not trained on this data.", "",
        "| shop | rows (pos / neg) | trained on | held out | own model: accuracy | "
        "macro-F1 | shipped default: accuracy | macro-F1 | gain: accuracy | macro-F1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    flagged = False
    for row in rows:
        name = str(row["shop"])
        sizes = f"{row['rows']:,} ({row['pos']:,} / {row['neg']:,})"
        if not row["trained"]:
            lines.append(f"| {name} | {sizes} | – | – | {row['note']} | | | | | |")
            continue
        if row.get("below_minimum"):
            name += " *"
            flagged = True
        if row.get("pooled"):
            name = f"*{name}*"
        mine, theirs = row["shop_model"], row["default_model"]
        trained_on = "–" if row.get("pooled") else f"{row['train_rows']:,}"
        lines.append(f"| {name} | {sizes} | {trained_on} | {row['held_out_rows']:,} | "
                     f"{_pct(mine[0])} | {_pct(mine[1])} | {_pct(theirs[0])} | "
                     f"{_pct(theirs[1])} | {_gain(mine[0], theirs[0])} | "
                     f"{_gain(mine[1], theirs[1])} |")
    lines.append("")
    if flagged:
        lines += [f"\\* fewer than {SHOP_MIN_PER_CLASS} distinct reviews of one class: "
                  "`shequ nlp train-sentiment` refuses such a shop unless `--min-per-class` is "
                  "lowered; its held-out part is small, so its figures are noisy.", ""]
    lines += [
        "Rows: the evaluated rows of the shop; the split is over its distinct normalised "
        "texts (duplicates counted once), so trained on + held out can be fewer. The pooled "
        "row puts the held-out rows of every per-category model together (each scored by its "
        f"own shop's model). Training all of them took {shops['seconds']:.0f} s on one core "
        "(features, fitting and scoring included)."]
    return lines


def render(report: dict[str, object]) -> str:
    """The generated markdown block."""
    counts = report["counts"]
    assert isinstance(counts, dict)
    ours_all, ours_sample, snow_sample = (report["ours_all"], report["ours_sample"],
                                          report["snownlp_sample"])
    assert isinstance(ours_all, tuple)
    assert isinstance(ours_sample, tuple)
    assert isinstance(snow_sample, tuple)
    sample_rows = report["sample_rows"]
    whole = sample_rows == counts["final"]
    sample_note = ("all rows" if whole else
                   f"a fixed random sample of {sample_rows:,} rows (numpy seed {SAMPLE_SEED})")
    flags = "--shop-models " if report.get("shops") else ""
    lines = [
        BLOCK.begin, "",
        f"Command: `OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/eval_sentiment.py "
        f"{flags}--out docs/sentiment.md` ({report['pinned']}).", "",
        "Rows of `online_shopping_10_cats.csv`:", "",
        "| step | rows |", "|---|---:|",
        f"| raw | {counts['raw']:,} |",
        f"| empty review dropped | {counts['empty_dropped']:,} |",
        f"| text also in the SnowNLP training corpus removed | {counts['overlap_removed']:,} |",
        f"| evaluated | {counts['final']:,} ({counts['pos']:,} pos, {counts['neg']:,} neg) |",
        "",
        f"SnowNLP is measured on {sample_note}; ours on the same rows and on all rows.", "",
        "| model | rows | accuracy | macro-F1 | texts/s (one core) |",
        "|---|---:|---:|---:|---:|",
        f"| ours (shipped) | all {counts['final']:,} | {_pct(ours_all[0])} | "
        f"{_pct(ours_all[1])} | {report['ours_rate']:,.0f} |",
        f"| ours (shipped) | sample {sample_rows:,} | {_pct(ours_sample[0])} | "
        f"{_pct(ours_sample[1])} | |",
        f"| SnowNLP 0.12.3 built-in | sample {sample_rows:,} | {_pct(snow_sample[0])} | "
        f"{_pct(snow_sample[1])} | {report['snownlp_rate']:,.0f} |", "",
        f"Ours: median of {report['runs']} runs over all rows, normalisation included "
        f"(first, cold run: {report['ours_first_pass_rate']:,.0f} texts/s). SnowNLP: one run "
        "over the sample.", "",
        "Accuracy per category:", "",
        "| category | rows | ours (all) | sample rows | ours (sample) | SnowNLP (sample) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    per_category = report["per_category"]
    assert isinstance(per_category, list)
    for row in per_category:
        lines.append(f"| {row['category']} | {row['rows']:,} | {_pct(row['ours'])} | "
                     f"{row['sample_rows']:,} | {_pct(row['ours_sample'])} | "
                     f"{_pct(row['snownlp_sample'])} |")
    other = report["other"]
    assert isinstance(other, dict)
    lines += [
        "", f"Hand-written set of other domains (`tests/text/data/sentiment_other_domains.jsonl`"
        f", {other['rows']} short texts, {other['pos']} pos; small, written by us, so a rough "
        "check only):", "",
        "| model | accuracy | macro-F1 |", "|---|---:|---:|",
        f"| ours | {_pct(other['ours'][0])} | {_pct(other['ours'][1])} |",
        f"| SnowNLP | {_pct(other['snownlp'][0])} | {_pct(other['snownlp'][1])} |", "",
        "| domain | texts | ours | SnowNLP |", "|---|---:|---:|---:|",
    ]
    for domain, (mine, theirs, size) in other["domains"].items():
        lines.append(f"| {domain} | {size} | {_pct(mine)} | {_pct(theirs)} |")
    model = report["model"]
    assert isinstance(model, dict)
    cv = model.get("cross_validation", {})
    lines += ["", f"Shipped model: trained {model.get('trained_at', '?')} by "
              f"`{model.get('trained_by', '?')}`; {cv.get('folds', '?')}-fold cross-validation "
              f"on the training corpus: accuracy {cv.get('accuracy', '?')}, macro-F1 "
              f"{cv.get('macro_f1', '?')}, accuracy on held-out clauses "
              f"{cv.get('clause_accuracy', '?')}."]
    search = model.get("search") or []
    if search:
        lines += ["", "Its configuration search (`--search`, cross-validation on the training "
                  "corpus only; chosen: the best mean of whole-text and clause accuracy):", "",
                  "| clause augment | C | max n | negation window | min df | accuracy | "
                  "macro-F1 | clause accuracy | mean |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for entry in search:
            config = entry["config"]
            lines.append(f"| {'yes' if config['clause_augment'] else 'no'} | {config['c']:g} | "
                         f"{config['max_n']} | {config['negation_window']} | "
                         f"{config['min_df']} | {entry['accuracy']:.4f} | "
                         f"{entry['macro_f1']:.4f} | {entry['clause_accuracy']:.4f} | "
                         f"{entry['criterion']:.4f} |")
    shops = report.get("shops")
    if shops:
        assert isinstance(shops, dict)
        lines += ["", *render_shops(shops)]
    lines += ["", BLOCK.end]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """Print (and, with ``--out``, write) the generated block."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--snownlp-limit", type=int, default=DEFAULT_SNOWNLP_LIMIT,
                        help="rows scored by SnowNLP (a fixed random sample; 0: all rows)")
    parser.add_argument("--runs", type=int, default=SPEED_RUNS, help="timed runs of ours")
    parser.add_argument("--shop-models", action="store_true",
                        help="also train a throwaway model per category (the shop path) and "
                        "compare it with the shipped one on its held-out 20 %% (about a minute)")
    parser.add_argument("--out", type=Path, default=None)
    arguments = parser.parse_args(argv)
    if not (arguments.data / EVAL_FILE).is_file():
        sys.exit(f"missing {arguments.data / EVAL_FILE}: the evaluation data is needed")
    block = render(build_report(arguments.data, arguments.snownlp_limit, arguments.runs,
                                arguments.shop_models))
    print(block, end="")
    if arguments.out is not None:
        BLOCK.write(arguments.out, block)


if __name__ == "__main__":
    main()
