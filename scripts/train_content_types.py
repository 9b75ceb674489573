"""Evaluate and train the content type classifier (knowledge / scenario / review / story).

    python scripts/train_content_types.py [--data FILE.jsonl] [--out FILE.md] [--model DIR]
                                          [--no-write]

Reads the hand-labelled posts (``data/content_types/labelled.jsonl``, labelling guide in
docs/content-types.md), validates them, and reports:

* a fixed stratified 70/30 train/test split (strata: label x source): accuracy, macro-F1,
  per-label precision/recall/F1, the confusion matrix, and the figures for hand-written and
  demo posts separately;
* 5-fold stratified cross-validation (accuracy and macro-F1, mean ± sd);
* baselines: the majority class and a keyword-rule classifier; an ablation without the cue
  features; a cross-source check (trained on hand-written posts only, tested on the demo
  posts).

The model settings (cue features on or off, the regularisation ``C``) are chosen by an inner
3-fold cross-validation on the training part only, in every evaluation (nested), so the
test figures are not tuned on the test posts. Finally the model is trained on all labelled
posts with settings chosen the same way and written to ``src/shequ/text/models/``
(``content_types.npz`` + ``content_types.json``, no pickle), and the results block is
written between the markers of docs/content-types.md.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from doc_blocks import DocBlock
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)
from sklearn.model_selection import StratifiedKFold, train_test_split

from shequ.text.content_types import (
    LABELS,
    MODEL_DIR,
    ContentTypeModel,
    FeatureConfig,
    Prepared,
    Vectoriser,
    prepare,
)

REPO = Path(__file__).resolve().parents[1]
EVAL_DATA = Path(os.environ.get("SHEQU_EVAL_DATA", REPO.parent / "shared" / "data"))
REAL_REVIEWS = Path("sentiment/online_shopping_10_cats/online_shopping_10_cats.csv")
REAL_SAMPLE = 1000
DATA = REPO / "data" / "content_types" / "labelled.jsonl"
DOC = REPO / "docs" / "content-types.md"
BLOCK = DocBlock("scripts/train_content_types.py")
SEED = 20260522
TEST_SHARE = 0.3
FOLDS = 5
INNER_FOLDS = 3
C_GRID = (1.0, 4.0, 16.0)
BASE = FeatureConfig()
CONFIGS = (BASE, replace(BASE, cues=False))
SOURCES = ("hand", "demo")
FIELDS = ("id", "source", "title", "body", "label", "note")
NAMES_ZH = {"knowledge": "知识科普", "scenario": "场景种草", "review": "产品测评",
            "story": "用户故事"}

# The keyword baseline: a label's score is the number of its patterns found in title + body.
KEYWORDS: dict[str, tuple[str, ...]] = {
    "knowledge": ("怎么", "如何", "为什么", "原理", "科普", "误区", "区别", "注意", "干货",
                  "方法", "是什么", "建议"),
    "scenario": ("清单", "必备", "通勤", "出差", "露营", "周末", "办公室", "场景", "日常",
                 "带娃", "穿搭", "的一天", "出门"),
    "review": ("测评", "横评", "对比", "优点", "缺点", "评分", "打分", "/10", "星", "值不值",
               "不推荐", "红黑榜", "回购", "性价比"),
    "story": ("那年", "后来", "那天", "记录", "回头", "第一次", "那时", "故事", "日记", "年前",
              "终于", "小时候"),
}


@dataclass(frozen=True)
class Post:
    """One labelled post of the data file."""

    id: str
    source: str
    title: str
    body: str
    label: str
    note: str

    @property
    def pair(self) -> tuple[str, str]:
        return self.title, self.body


def validate(rows: Sequence[dict[str, Any]]) -> list[Post]:
    """The rows as posts; raises ``ValueError`` naming the first row that breaks a rule."""
    seen: set[str] = set()
    posts: list[Post] = []
    for line, row in enumerate(rows, start=1):
        if set(row) != set(FIELDS):
            raise ValueError(f"line {line}: fields must be {FIELDS}, got {sorted(row)}")
        if not all(isinstance(row[f], str) for f in FIELDS):
            raise ValueError(f"line {line}: every field must be a string")
        if row["id"] in seen or not row["id"]:
            raise ValueError(f"line {line}: duplicate or empty id {row['id']!r}")
        if row["label"] not in LABELS:
            raise ValueError(f"line {line}: unknown label {row['label']!r}")
        if row["source"] not in SOURCES:
            raise ValueError(f"line {line}: unknown source {row['source']!r}")
        if not row["title"].strip() or not row["body"].strip():
            raise ValueError(f"line {line}: empty title or body")
        seen.add(row["id"])
        posts.append(Post(**row))
    return posts


def load(path: Path = DATA) -> list[Post]:
    """The validated posts of a JSONL file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return validate([json.loads(line) for line in lines if line.strip()])


_PREPARED: dict[tuple[Post, FeatureConfig], Prepared] = {}


def prepared(posts: Sequence[Post], config: FeatureConfig) -> list[Prepared]:
    """:func:`prepare` output of every post (memoised: CV fits many models on each post)."""
    for p in posts:
        if (p, config) not in _PREPARED:
            _PREPARED[(p, config)] = prepare(p.title, p.body, config)
    return [_PREPARED[(p, config)] for p in posts]


def fit(posts: Sequence[Post], config: FeatureConfig, c: float) -> ContentTypeModel:
    """A model trained on ``posts`` with feature settings ``config`` and regularisation ``c``."""
    items = prepared(posts, config)
    vectoriser = Vectoriser(config).fit_prepared(items)
    x = vectoriser.transform_prepared(items)
    y = np.array([LABELS.index(p.label) for p in posts])
    clf = LogisticRegression(C=c, max_iter=5000)
    clf.fit(x, y)
    coef = np.zeros((len(LABELS), x.shape[1]))
    intercept = np.zeros(len(LABELS))
    coef[clf.classes_] = clf.coef_
    intercept[clf.classes_] = clf.intercept_
    return ContentTypeModel(vectoriser, coef, intercept)


def predict(model: ContentTypeModel, posts: Sequence[Post]) -> list[str]:
    """``model.classify`` of the posts, reusing their memoised :func:`prepare` output."""
    x = model.vectoriser.transform_prepared(prepared(posts, model.vectoriser.config))
    return [model.labels[i] for i in model.probabilities(x).argmax(axis=1).tolist()]


def strata(posts: Sequence[Post]) -> list[str]:
    """Stratification key of every post: label and source."""
    return [f"{p.label}|{p.source}" for p in posts]


def choose(posts: Sequence[Post], configs: Sequence[FeatureConfig] = CONFIGS,
           grid: Sequence[float] = C_GRID) -> tuple[FeatureConfig, float, float]:
    """(config, C, inner accuracy) with the best mean accuracy of an inner stratified CV."""
    splitter = StratifiedKFold(INNER_FOLDS, shuffle=True, random_state=SEED)
    folds = list(splitter.split(np.zeros(len(posts)), [p.label for p in posts]))
    best: tuple[float, int, FeatureConfig, float] | None = None
    for ci, config in enumerate(configs):
        for c in grid:
            scores = []
            for train, test in folds:
                model = fit([posts[i] for i in train], config, c)
                predicted = predict(model, [posts[i] for i in test])
                scores.append(np.mean([a == posts[i].label for a, i in zip(predicted, test,
                                                                            strict=True)]))
            # Ties: the earlier config (with cues) and the smaller C.
            key = (float(np.mean(scores)), -ci, config, c)
            if best is None or key[:2] > best[:2]:
                best = key
    assert best is not None
    return best[2], best[3], best[0]


def split(posts: Sequence[Post]) -> tuple[list[Post], list[Post]]:
    """The fixed stratified 70/30 train/test split."""
    train, test = train_test_split(list(posts), test_size=TEST_SHARE, random_state=SEED,
                                   stratify=strata(posts))
    return list(train), list(test)


@dataclass(frozen=True)
class Scores:
    """Accuracy, macro-F1, per-label (precision, recall, F1, support), confusion matrix."""

    n: int
    accuracy: float
    macro_f1: float
    per_label: dict[str, tuple[float, float, float, int]]
    confusion: list[list[int]]


def score(truth: Sequence[str], predicted: Sequence[str]) -> Scores:
    """The figures of ``predicted`` against ``truth``."""
    p, r, f, s = precision_recall_fscore_support(truth, predicted, labels=list(LABELS),
                                                 zero_division=0)
    per = {lab: (float(p[i]), float(r[i]), float(f[i]), int(s[i]))
           for i, lab in enumerate(LABELS)}
    return Scores(len(truth), float(accuracy_score(truth, predicted)),
                  float(f1_score(truth, predicted, labels=list(LABELS), average="macro",
                                 zero_division=0)),
                  per, confusion_matrix(truth, predicted, labels=list(LABELS)).tolist())


def keyword_rule(post: Post, fallback: str) -> str:
    """The label whose keywords occur most often (``fallback`` when none occurs)."""
    text = (post.title + "\n" + post.body).lower()
    hits = {lab: sum(len(re.findall(re.escape(k), text)) for k in words)
            for lab, words in KEYWORDS.items()}
    top = max(hits.values())
    if top == 0:
        return fallback
    return next(lab for lab in LABELS if hits[lab] == top)


def majority(posts: Sequence[Post]) -> str:
    """The most frequent label (ties: :data:`LABELS` order)."""
    counts = Counter(p.label for p in posts)
    return max(LABELS, key=lambda lab: (counts[lab], -LABELS.index(lab)))


@dataclass(frozen=True)
class Holdout:
    """The fixed split: chosen settings, the model's scores and the baselines' scores."""

    config: FeatureConfig
    c: float
    inner_accuracy: float
    model: Scores
    by_source: dict[str, Scores]
    no_cues: Scores
    majority: Scores
    keywords: Scores
    errors: list[tuple[str, str, str, bool]]  # id, label, predicted, has a note


def evaluate_holdout(posts: Sequence[Post]) -> Holdout:
    """Choose settings on the 70 %, train there, score the 30 % (and the baselines)."""
    train, test = split(posts)
    config, c, inner = choose(train)
    truth = [p.label for p in test]
    predicted = predict(fit(train, config, c), test)
    by_source = {src: score([t for t, p in zip(truth, test, strict=True) if p.source == src],
                            [y for y, p in zip(predicted, test, strict=True) if p.source == src])
                 for src in SOURCES}
    other = replace(config, cues=not config.cues)
    no_cues_config = other if config.cues else config
    no_cues = score(truth, predict(fit(train, no_cues_config, c), test))
    fallback = majority(train)
    errors = [(p.id, p.label, y, bool(p.note) and p.source == "hand")
              for p, y in zip(test, predicted, strict=True) if y != p.label]
    return Holdout(config, c, inner, score(truth, predicted), by_source, no_cues,
                   score(truth, [fallback] * len(test)),
                   score(truth, [keyword_rule(p, fallback) for p in test]), errors)


@dataclass(frozen=True)
class CrossValidation:
    """Per-fold accuracy and macro-F1 (nested selection), out-of-fold accuracy by source."""

    accuracy: list[float]
    macro_f1: list[float]
    by_source: dict[str, float]
    hard: float
    clear: float
    keyword_accuracy: list[float]
    chosen: list[str]


def cross_validate(posts: Sequence[Post]) -> CrossValidation:
    """5-fold stratified CV; settings chosen inside every training fold."""
    splitter = StratifiedKFold(FOLDS, shuffle=True, random_state=SEED)
    acc, f1, kw, chosen = [], [], [], []
    oof: dict[int, str] = {}
    for train_idx, test_idx in splitter.split(np.zeros(len(posts)), strata(posts)):
        train = [posts[i] for i in train_idx]
        test = [posts[i] for i in test_idx]
        config, c, _ = choose(train)
        chosen.append(f"{'cues' if config.cues else 'no cues'}, C={c:g}")
        predicted = predict(fit(train, config, c), test)
        oof.update(zip(test_idx.tolist(), predicted, strict=True))
        s = score([p.label for p in test], predicted)
        acc.append(s.accuracy)
        f1.append(s.macro_f1)
        fallback = majority(train)
        kw.append(float(np.mean([keyword_rule(p, fallback) == p.label for p in test])))
    by_source = {src: float(np.mean([oof[i] == p.label for i, p in enumerate(posts)
                                     if p.source == src])) for src in SOURCES}
    hand = [(i, p) for i, p in enumerate(posts) if p.source == "hand"]
    hard = float(np.mean([oof[i] == p.label for i, p in hand if p.note]))
    clear = float(np.mean([oof[i] == p.label for i, p in hand if not p.note]))
    return CrossValidation(acc, f1, by_source, hard, clear, kw, chosen)


def cross_source(posts: Sequence[Post]) -> tuple[Scores, FeatureConfig, float]:
    """Trained on hand-written posts only (settings chosen there), scored on the demo posts."""
    hand = [p for p in posts if p.source == "hand"]
    demo = [p for p in posts if p.source == "demo"]
    config, c, _ = choose(hand)
    predicted = predict(fit(hand, config, c), demo)
    return score([p.label for p in demo], predicted), config, c


@dataclass(frozen=True)
class RealReviews:
    """The shipped model on real shopping reviews (all of them product reviews by the guide)."""

    n: int
    predicted: dict[str, int]
    review_share_by_category: dict[str, float]


def real_reviews(path: Path, n: int = REAL_SAMPLE) -> list[tuple[str, str]]:
    """``n`` distinct (category, review) rows drawn with the fixed seed (evaluation only)."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    seen: dict[str, str] = {}
    for row in rows:
        text = " ".join(row["review"].split())
        if text and text not in seen:
            seen[text] = row["cat"]
    return random.Random(SEED).sample([(cat, text) for text, cat in seen.items()], n)


def check_real_reviews(model: ContentTypeModel, rows: Sequence[tuple[str, str]]) -> RealReviews:
    """How the model labels real reviews given as body with an empty title."""
    predicted = model.classify([("", text) for _, text in rows])
    by_cat: dict[str, list[bool]] = {}
    for (cat, _), label in zip(rows, predicted, strict=True):
        by_cat.setdefault(cat, []).append(label == "review")
    counts = Counter(predicted)
    return RealReviews(len(rows), {lab: counts[lab] for lab in LABELS},
                       {cat: float(np.mean(v)) for cat, v in sorted(by_cat.items())})


def data_summary(posts: Sequence[Post]) -> dict[str, Any]:
    """Counts by source and label, hard cases (hand posts with a note), body lengths."""
    hand = [p for p in posts if p.source == "hand"]
    lengths = np.array([len(p.body) for p in hand])
    categories = Counter(p.id.split("-", 1)[1] for p in hand if "-" in p.id)
    return {
        "posts": len(posts),
        "by_source": {s: sum(p.source == s for p in posts) for s in SOURCES},
        "by_label": {lab: sum(p.label == lab for p in posts) for lab in LABELS},
        "hand_by_label": {lab: sum(p.label == lab for p in hand) for lab in LABELS},
        "hand_hard": sum(bool(p.note) for p in hand),
        "hand_categories": dict(sorted(categories.items())),
        "hand_length": {"min": int(lengths.min()), "median": int(np.median(lengths)),
                        "max": int(lengths.max()), "under_50": int((lengths < 50).sum()),
                        "over_400": int((lengths > 400).sum())},
        # A demo post's note says "同意" (agree) when the label is the generator's type.
        "demo_disagreements": sum(p.source == "demo" and "同意" not in p.note for p in posts),
    }


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _mean_sd(values: Sequence[float]) -> str:
    return f"{100 * np.mean(values):.1f} ± {100 * np.std(values, ddof=1):.1f} %"


def _config_name(config: FeatureConfig, c: float) -> str:
    return f"{'with' if config.cues else 'without'} cue features, C = {c:g}"


def render(summary: dict[str, Any], holdout: Holdout, cv: CrossValidation,
           transfer: tuple[Scores, FeatureConfig, float], final: tuple[FeatureConfig, float],
           data_hash: str, real: RealReviews | None = None) -> str:
    """The generated Markdown block (between the document's markers)."""
    h, m = holdout, holdout.model
    out = [BLOCK.begin, "",
           f"Data: `data/content_types/labelled.jsonl` ({summary['posts']} posts, "
           f"{summary['by_source']['hand']} hand-written, {summary['by_source']['demo']} from "
           f"the demo generator; SHA-256 `{data_hash[:16]}…`).", "",
           "| label | all posts | hand-written |", "|---|---:|---:|"]
    for lab in LABELS:
        out.append(f"| {lab} ({NAMES_ZH[lab]}) | {summary['by_label'][lab]} | "
                   f"{summary['hand_by_label'][lab]} |")
    hl = summary["hand_length"]
    cats = ", ".join(f"{k} {v}" for k, v in summary["hand_categories"].items())
    out += ["",
            f"Hand-written posts: {summary['hand_hard']} hard cases with a note "
            f"({_pct(summary['hand_hard'] / summary['by_source']['hand'])}); body length "
            f"{hl['min']}–{hl['max']} characters (median {hl['median']}, {hl['under_50']} under "
            f"50, {hl['over_400']} over 400); categories: {cats}. Demo posts where the label "
            f"differs from the generator's intended type: {summary['demo_disagreements']}.", "",
            f"### Fixed stratified 70/30 split (seed {SEED})", "",
            f"Settings chosen by {INNER_FOLDS}-fold CV on the 70 %: {_config_name(h.config, h.c)} "
            f"(inner accuracy {_pct(h.inner_accuracy)}).", "",
            "| classifier | test posts | accuracy | macro-F1 |", "|---|---:|---:|---:|",
            f"| model | {m.n} | {_pct(m.accuracy)} | {_pct(m.macro_f1)} |"]
    for src in SOURCES:
        s = h.by_source[src]
        out.append(f"| model, {src} posts only | {s.n} | {_pct(s.accuracy)} | "
                   f"{_pct(s.macro_f1)} |")
    out += [f"| model without cue features | {h.no_cues.n} | {_pct(h.no_cues.accuracy)} | "
            f"{_pct(h.no_cues.macro_f1)} |",
            f"| keyword rules | {h.keywords.n} | {_pct(h.keywords.accuracy)} | "
            f"{_pct(h.keywords.macro_f1)} |",
            f"| majority class | {h.majority.n} | {_pct(h.majority.accuracy)} | "
            f"{_pct(h.majority.macro_f1)} |", "",
            "| label | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for lab in LABELS:
        p, r, f, s_ = m.per_label[lab]
        out.append(f"| {lab} | {_pct(p)} | {_pct(r)} | {_pct(f)} | {s_} |")
    out += ["", "Confusion matrix (rows: hand label, columns: predicted):", "",
            "| | " + " | ".join(LABELS) + " |", "|---|" + "---:|" * len(LABELS)]
    for lab, row in zip(LABELS, m.confusion, strict=True):
        out.append(f"| {lab} | " + " | ".join(str(v) for v in row) + " |")
    wrong = ", ".join(f"`{i}` {lab}→{y}{'*' if hard else ''}" for i, lab, y, hard in h.errors)
    out += ["", f"Misclassified test posts (label→predicted; * = a hard case with a note): "
            f"{wrong}."]
    t, tc, tcv = transfer
    out += ["", f"### {FOLDS}-fold stratified cross-validation (nested settings choice)", "",
            f"- model accuracy {_mean_sd(cv.accuracy)}, macro-F1 {_mean_sd(cv.macro_f1)} "
            f"(folds: {', '.join(_pct(a) for a in cv.accuracy)})",
            f"- out-of-fold accuracy: hand-written posts {_pct(cv.by_source['hand'])}, demo "
            f"posts {_pct(cv.by_source['demo'])}; hand-written hard cases (with a note) "
            f"{_pct(cv.hard)}, the other hand-written posts {_pct(cv.clear)}",
            f"- keyword rules accuracy {_mean_sd(cv.keyword_accuracy)}",
            f"- settings chosen per fold: {'; '.join(cv.chosen)}", "",
            "### Across sources", "",
            f"Trained on the {summary['by_source']['hand']} hand-written posts only "
            f"({_config_name(tc, tcv)}), tested on the {t.n} demo posts: accuracy "
            f"{_pct(t.accuracy)}, macro-F1 {_pct(t.macro_f1)}.", "",
            *_render_real(real),
            "### Shipped model", "",
            f"Trained on all {summary['posts']} posts, {_config_name(*final)} (chosen by "
            f"{INNER_FOLDS}-fold CV on all posts); files `src/shequ/text/models/content_types.npz`"
            " and `content_types.json`.", "",
            "Rerun: `OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/train_content_types.py`", "",
            BLOCK.end]
    return "\n".join(out) + "\n"


def _render_real(real: RealReviews | None) -> list[str]:
    head = ["### Real shopping reviews (evaluation only)", ""]
    if real is None:
        return [*head, f"Not run: `$SHEQU_EVAL_DATA/{REAL_REVIEWS}` was not found.", ""]
    dist = ", ".join(f"{lab} {real.predicted[lab]}" for lab in LABELS)
    cats = ", ".join(f"{cat} {_pct(v)}" for cat, v in real.review_share_by_category.items())
    return [*head,
            f"{real.n} distinct reviews drawn (seed {SEED}) from the real "
            "online_shopping_10_cats corpus (`$SHEQU_EVAL_DATA/"
            f"{REAL_REVIEWS}`; not in the repo, never trained on), given as body with an empty "
            "title. By the guide every one is a `review`; the shipped model says "
            f"`review` for {_pct(real.predicted['review'] / real.n)} ({dist}). "
            f"Share called `review` per category: {cats}.", ""]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=DOC)
    parser.add_argument("--model", type=Path, default=MODEL_DIR)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    posts = load(args.data)
    summary = data_summary(posts)
    holdout = evaluate_holdout(posts)
    cv = cross_validate(posts)
    transfer = cross_source(posts)
    config, c, inner = choose(posts)
    data_hash = sha256(args.data)
    model = fit(posts, config, c)
    real_path = EVAL_DATA / REAL_REVIEWS
    real = check_real_reviews(model, real_reviews(real_path)) if real_path.exists() else None
    block = render(summary, holdout, cv, transfer, (config, c), data_hash, real)
    print(block)
    if args.no_write:
        return 0
    model.metadata = {
        "trained_on": {"posts": len(posts), "data_sha256": data_hash, **summary["by_source"]},
        "c": c, "inner_cv_accuracy": inner,
        "holdout": {"seed": SEED, "test_share": TEST_SHARE, "c": holdout.c,
                    "features": holdout.config.to_json(), "test_posts": holdout.model.n,
                    "accuracy": holdout.model.accuracy, "macro_f1": holdout.model.macro_f1,
                    "keyword_accuracy": holdout.keywords.accuracy,
                    "majority_accuracy": holdout.majority.accuracy},
        "cross_validation": {"folds": FOLDS, "accuracy_mean": float(np.mean(cv.accuracy)),
                             "accuracy_sd": float(np.std(cv.accuracy, ddof=1)),
                             "macro_f1_mean": float(np.mean(cv.macro_f1))},
    }
    if real is not None:
        model.metadata["real_reviews"] = {"n": real.n,
                                          "review_share": real.predicted["review"] / real.n}
    npz, meta = model.save(args.model)
    BLOCK.write(args.out, block)
    print(f"wrote {npz}, {meta} and {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
