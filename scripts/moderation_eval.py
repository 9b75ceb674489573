"""Where the automatic verdicts send real texts (docs/moderation.md).

Two public datasets, read from ``../shared/data`` (or ``SHEQU_EVAL_DATA``):

* COLD dev (Apache-2.0): Chinese texts labelled offensive / not offensive. How many of
  the offensive ones the verdict stops (review or block), and how many of the others it
  stops by mistake.
* online_shopping_10_cats: everyday shop reviews, none of them abusive or spam. Every
  review the verdict does not pass is work for a moderator (or a wrongly hidden review):
  the share that passes is the share decided automatically on clean traffic.

Also the classifier threshold choice: the share of negative shop reviews and of
offensive COLD texts at or above each candidate ``REVIEW_OFFENSIVE``.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/moderation_eval.py [--reviews 20000]
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from doc_blocks import DocBlock

from shequ.domains.moderation.decisions import REVIEW_OFFENSIVE, SURE_OFFENSIVE, verdicts
from shequ.text.lexicon import Lexicon
from shequ.text.offensive import offensive_probability

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SHEQU_EVAL_DATA", ROOT.parent / "shared" / "data"))
COLD_DEV = DATA / "moderation" / "cold" / "dev.csv"
SHOPPING = DATA / "sentiment" / "online_shopping_10_cats" / "online_shopping_10_cats.csv"
DOC = ROOT / "docs" / "moderation.md"
BLOCK = DocBlock("scripts/moderation_eval.py")
COMMAND = "OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/moderation_eval.py"
CANDIDATES = (0.7, 0.8, 0.9, 0.95, 0.97)


def cold_dev() -> tuple[list[str], list[int]]:
    with COLD_DEV.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [r["TEXT"] for r in rows], [int(r["label"]) for r in rows]


def shop_reviews(n: int, seed: int) -> tuple[list[str], list[int]]:
    with SHOPPING.open(encoding="utf-8-sig", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["review"].strip()]
    rows = random.Random(seed).sample(rows, min(n, len(rows)))
    return [r["review"] for r in rows], [int(r["label"]) for r in rows]


def shares(labels: list[str]) -> dict[str, float]:
    counts = Counter(labels)
    return {k: counts[k] / max(len(labels), 1) for k in ("pass", "review", "block")}


def pct(value: float) -> str:
    return f"{value:.2%}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reviews", type=int, default=20_000, help="shop reviews sampled")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--doc", type=Path, default=DOC)
    parser.add_argument("--no-doc", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if not COLD_DEV.exists() or not SHOPPING.exists():
        print(f"data missing under {DATA}", file=sys.stderr)
        return 2
    lexicon = Lexicon.default()
    started = time.perf_counter()
    texts, truth = cold_dev()
    cold = verdicts(texts, lexicon)
    offensive = [v.label for v, y in zip(cold, truth, strict=True) if y == 1]
    clean = [v.label for v, y in zip(cold, truth, strict=True) if y == 0]
    reviews, polarity = shop_reviews(args.reviews, args.seed)
    shop = verdicts(reviews, lexicon)
    elapsed = time.perf_counter() - started
    pos = [v.label for v, y in zip(shop, polarity, strict=True) if y == 1]
    neg = [v.label for v, y in zip(shop, polarity, strict=True) if y == 0]
    reasons = Counter(r.split(" (")[0] for v in shop if v.label != "pass" for r in v.reasons)

    lines = [BLOCK.begin, "", f"Command: `{COMMAND} --reviews {args.reviews}` "
             f"(thresholds `REVIEW_OFFENSIVE={REVIEW_OFFENSIVE}`, "
             f"`SURE_OFFENSIVE={SURE_OFFENSIVE}`; {len(texts) + len(reviews):,} texts "
             f"in {elapsed:.0f} s).", "",
             "| texts | n | pass | review | block |", "|---|---|---|---|---|"]
    for name, labels in (("COLD dev, offensive", offensive), ("COLD dev, not offensive", clean),
                         ("shop reviews, positive", pos), ("shop reviews, negative", neg),
                         ("shop reviews, all", pos + neg)):
        s = shares(labels)
        lines.append(f"| {name} | {len(labels):,} | {pct(s['pass'])} | {pct(s['review'])} | "
                     f"{pct(s['block'])} |")
    lines += ["", "Why shop reviews were stopped (a review can have several reasons):", ""]
    lines += [f"- {reason}: {count:,}" for reason, count in reasons.most_common(8)]
    neg_texts = [t for t, y in zip(reviews, polarity, strict=True) if y == 0]
    neg_p = np.array(offensive_probability(neg_texts))
    off_p = np.array([v.offensive for v, y in zip(cold, truth, strict=True) if y == 1])
    clean_p = np.array([v.offensive for v, y in zip(cold, truth, strict=True) if y == 0])
    lines += ["", "The classifier alone at each candidate threshold "
              "(share of texts with P(offensive) at or above it):", "",
              "| threshold | negative shop reviews | COLD offensive | COLD not offensive |",
              "|---|---|---|---|"]
    for t in CANDIDATES:
        lines.append(f"| {t} | {pct(float((neg_p >= t).mean()))} | "
                     f"{pct(float((off_p >= t).mean()))} | {pct(float((clean_p >= t).mean()))} |")
    lines += ["", BLOCK.end, ""]
    block = "\n".join(lines)
    print(block)
    if not args.no_doc:
        BLOCK.write(args.doc, block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
