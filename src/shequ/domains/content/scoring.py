"""Content scoring (SPEC M2.1, M2.2, M1.2; docs/content-quality.md).

* **On arrival** (API, importers, bulk loader): a missing content type is classified, the
  sentiment is scored, and a post gets its MinHash signature and LSH band buckets stored in
  ``post_signatures`` / ``post_lsh_bands``. Its originality is found by a database lookup of
  the posts sharing a band bucket, compared by signature; only *earlier* posts count, so
  the earliest of near-duplicates is the original. Works across processes: no index lives
  in memory.
* **Refresh** (:func:`refresh_scores`): originality again from the stored bands (arrival
  order and concurrent arrivals no longer matter), reach and conversion from the event
  store, normalised as percentiles within the content type, and the explained quality.
* **Dwell** (:func:`dwell_by_content_type`): dwell of post views per content type.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, cast

import ibis
import numpy as np
import pandas as pd
from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    Table,
    bindparam,
    column,
    delete,
    insert,
    or_,
    select,
    table,
    update,
)
from sqlalchemy.orm import Session

from shequ.analytics.dwell import dwell_summary, summary, view_dwell
from shequ.analytics.events import POST_ID_PATTERN
from shequ.analytics.persons import ANONYMOUS_PREFIX, with_person_id
from shequ.analytics.store import EventStore
from shequ.core.days import instants
from shequ.core.db import exclusive
from shequ.domains.content.models import Post, PostLshBand, PostScore, PostSignature, Review
from shequ.domains.content.schemas import (
    DwellByType,
    ScoreRefreshIn,
    ScoreRefreshReport,
    SentimentBand,
)
from shequ.text import content_types, sentiment
from shequ.text.minhash import MinHashIndex

# --- settings of the near-duplicate index ------------------------------------------------
NUM_PERM = 128
BANDS = 32  # 4 rows per band: a pair at Jaccard 0.5 shares a bucket with P = 0.87
SHINGLE = 4  # characters per shingle
THRESHOLD = 0.5  # estimated Jaccard at which an earlier post counts as a source
MAX_SOURCES = 5
CHUNK = 5_000
FULL_READ = 20_000  # a batch holding more buckets reads all stored band rows at once
# --- sentiment bands (scores are P(positive) in [0, 1]) -----------------------------------
POSITIVE_AT = 0.6
NEGATIVE_AT = 0.4
# --- exposure normalisation ---------------------------------------------------------------
PRIOR_VIEWS = 10  # engagement per view is shrunk as if every post had 10 more views
PRIOR_VIEWERS = 20  # conversion per viewer as if every post had 20 more viewers
UNCLASSIFIED = "unclassified"
POST_EVENTS = ("post_view", "like", "share", "comment")
LOCK = "content_scores"

_SCORES = cast(Table, PostScore.__table__)
_SIGNATURES = cast(Table, PostSignature.__table__)
_BANDS = cast(Table, PostLshBand.__table__)
# Times read untyped (SQLite's UTC text, PostgreSQL's aware datetimes), parsed in one pass.
_orders_raw = table("orders", column("id", Integer), column("customer_id", Integer),
                    column("status", String), column("paid_at"), column("refunded_at"))
_customers = table("customers", column("id", Integer), column("external_id", String))
_lines = table("order_lines", column("order_id", Integer), column("product_id", Integer),
               column("quantity", Integer), column("unit_price_fen", BigInteger))


# --- text models (shequ.text), loaded once per process ------------------------------------


@cache
def _index() -> MinHashIndex:
    return MinHashIndex(num_perm=NUM_PERM, bands=BANDS, shingle=SHINGLE, threshold=THRESHOLD)


def signatures(texts: Sequence[str]) -> np.ndarray:
    """MinHash signatures, one row per text (``NUM_PERM`` unsigned values), in one call."""
    return np.asarray(_index().signatures(list(texts)))


def _to_bytes(signature: np.ndarray) -> bytes:
    return bytes(_index().signature_to_bytes(signature))


def _from_bytes(data: bytes) -> np.ndarray:
    return np.asarray(_index().signature_from_bytes(bytes(data)))


def band_buckets(sigs: np.ndarray) -> np.ndarray:
    """``(n, BANDS)`` signed 64-bit LSH bucket keys (the index's salted band hashes)."""
    return np.asarray(_index().band_keys(sigs))


def post_text(title: str, body: str) -> str:
    """The text a post is compared and scored by."""
    return f"{title}\n{body}"


def sentiment_scores(texts: Sequence[str]) -> list[float | None]:
    """P(positive) per text, None for an empty one; one model call for all."""
    wanted = [i for i, t in enumerate(texts) if t.strip()]
    found: list[float | None] = [None] * len(texts)
    if wanted:
        scores = sentiment.score([texts[i] for i in wanted])
        for i, value in zip(wanted, scores, strict=True):
            found[i] = round(float(value), 4)
    return found


def sentiment_band(band: SentimentBand) -> tuple[float | None, float | None]:
    """``[low, high)`` of a sentiment band (None: unbounded)."""
    if band is SentimentBand.POSITIVE:
        return POSITIVE_AT, None
    if band is SentimentBand.NEGATIVE:
        return None, NEGATIVE_AT
    return NEGATIVE_AT, POSITIVE_AT


def enrich_posts(values: list[dict[str, Any]]) -> None:
    """Fill in a missing ``content_type`` (one classifier call) and the ``sentiment`` of
    every post's row values, in place."""
    if not values:
        return
    missing = [v for v in values if v.get("content_type") is None]
    if missing:
        labels = content_types.classify([(v["title"], v["body"]) for v in missing])
        for row, label in zip(missing, labels, strict=True):
            row["content_type"] = str(label)
    texts = [post_text(v["title"], v["body"]) for v in values]
    for row, value in zip(values, sentiment_scores(texts), strict=True):
        row["sentiment"] = value


def enrich_reviews(values: list[dict[str, Any]]) -> None:
    """Set the ``sentiment`` of every review's row values (None without words), in place."""
    for row, value in zip(values, sentiment_scores([v["text"] for v in values]), strict=True):
        row["sentiment"] = value


# --- originality on arrival ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Arrival:
    """A post just written: its id, natural key, time and text."""

    post_id: int
    external_id: str
    created_at: datetime
    text: str


Found = dict[int, tuple[float, list[dict[str, Any]]]]  # post id -> (originality, sources)


@dataclass(frozen=True, slots=True)
class _Pool:
    """Posts with signatures: the ones judged first, then the stored candidates."""

    post_id: list[int]
    external_id: list[str]
    created_at: list[datetime]
    sigs: np.ndarray

    def rank(self) -> np.ndarray:
        """Position of each post in time order (ties by external id)."""
        order = sorted(range(len(self.post_id)),
                       key=lambda i: (self.created_at[i], self.external_id[i]))
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        return rank


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _pairs(owner: np.ndarray, bucket: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct pairs of owners holding an equal bucket (bucket keys are salted per band,
    so equal keys mean the same band)."""
    order = np.argsort(bucket, kind="stable")
    keys, owners = bucket[order], owner[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    sizes = np.diff(np.r_[starts, len(keys)])
    twos = starts[sizes == 2]
    left: list[np.ndarray] = [owners[twos]]
    right: list[np.ndarray] = [owners[twos + 1]]
    for first, size in zip(starts[sizes > 2].tolist(), sizes[sizes > 2].tolist(), strict=True):
        members = owners[first:first + size]
        a, b = np.triu_indices(size, 1)
        left.append(members[a])
        right.append(members[b])
    x, y = np.concatenate(left), np.concatenate(right)
    keep = x != y
    width = int(owner.max(initial=0)) + 1
    unique = np.unique(np.minimum(x, y)[keep] * width + np.maximum(x, y)[keep])
    return unique // width, unique % width


def _judge(pool: _Pool, owner: np.ndarray, bucket: np.ndarray, judged: int) -> Found:
    """Originality and sources of the first ``judged`` posts of ``pool``: against every
    earlier post sharing a bucket with it (1 - the highest similarity; sources are those at
    or above ``THRESHOLD``, most similar first, at most ``MAX_SOURCES``)."""
    found: Found = {pool.post_id[i]: (1.0, []) for i in range(judged)}
    i, j = _pairs(owner, bucket)
    if len(i) == 0:
        return found
    rank = pool.rank()
    later = np.where(rank[i] > rank[j], i, j)
    earlier = np.where(rank[i] > rank[j], j, i)
    keep = later < judged
    later, earlier = later[keep], earlier[keep]
    sims = (pool.sigs[later] == pool.sigs[earlier]).mean(axis=1)
    order = np.lexsort((rank[earlier], -sims, later))
    best: dict[int, float] = {}
    sources: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for k in order.tolist():
        me, sim = int(later[k]), float(sims[k])
        best.setdefault(me, sim)
        if sim >= THRESHOLD and len(sources[me]) < MAX_SOURCES:
            sources[me].append({"post": pool.external_id[int(earlier[k])],
                                "similarity": round(sim, 4)})
    for me, sim in best.items():
        found[pool.post_id[me]] = (round(1.0 - sim, 4), sources.get(me, []))
    return found


def _stored_pool(session: Session, ids: Iterable[int]) -> _Pool:
    """The stored posts ``ids`` with their signatures, by id."""
    rows: list[Any] = []
    for part in _chunks(sorted(set(ids))):
        rows += session.execute(select(Post.id, Post.external_id, Post.created_at,
                                       PostSignature.signature)
                                .join(PostSignature, PostSignature.post_id == Post.id)
                                .where(Post.id.in_(part))).all()
    sigs = (np.vstack([_from_bytes(r.signature) for r in rows]) if rows
            else np.zeros((0, NUM_PERM), dtype=np.uint32))
    return _Pool([r.id for r in rows], [r.external_id for r in rows],
                 [r.created_at for r in rows], sigs)


def _save_scores(session: Session, found: Found) -> None:
    """Originality and sources of these posts: updated where a score row exists."""
    ids = sorted(found)
    existing: set[int] = set()
    for part in _chunks(ids):
        existing.update(session.scalars(select(PostScore.post_id)
                                        .where(PostScore.post_id.in_(part))))
    fresh = [{"post_id": i, "originality": found[i][0], "sources": found[i][1]}
             for i in ids if i not in existing]
    for part in _chunks(fresh):
        session.execute(insert(_SCORES), list(part))
    changed = [{"b_post_id": i, "originality": found[i][0], "sources": found[i][1]}
               for i in ids if i in existing]
    if changed:
        score = _SCORES
        session.execute(update(score).where(score.c.post_id == bindparam("b_post_id"))
                        .values(originality=bindparam("originality"),
                                sources=bindparam("sources")), changed)


def _int_columns(rows: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Two integer columns of result rows as arrays (numpy is slow on Row objects)."""
    first = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    second = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
    return first, second


def _stored_bands(session: Session, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(post ids, buckets)`` of the stored band rows holding one of the ``wanted``
    buckets; a batch with more buckets than ``FULL_READ`` reads the table once instead."""
    query = select(PostLshBand.post_id, PostLshBand.bucket)
    rows: list[Any] = []
    if len(wanted) > FULL_READ:
        rows = list(session.execute(query).tuples())
    else:
        for part in _chunks(wanted.tolist()):
            rows += session.execute(query.where(PostLshBand.bucket.in_(part))).tuples().all()
    post_ids, buckets = _int_columns(rows)
    keep = np.isin(buckets, wanted)
    return post_ids[keep], buckets[keep]


def _insert_bands(session: Session, post_ids: list[int], buckets: np.ndarray) -> None:
    """One row per (post, band): a plain DBAPI ``executemany`` (a demo load writes a
    quarter of a million rows; SQLAlchemy's per-row parameter processing would dominate)."""
    marks = {"qmark": "?, ?, ?", "numeric": ":1, :2, :3", "named": ":a, :b, :c",
             "format": "%s, %s, %s", "pyformat": "%(a)s, %(b)s, %(c)s"}
    style = session.get_bind().dialect.paramstyle
    statement = f"INSERT INTO post_lsh_bands (post_id, band, bucket) VALUES ({marks[style]})"
    rows: list[Any] = [(post_id, band, bucket)
                       for post_id, row in zip(post_ids, buckets.tolist(), strict=True)
                       for band, bucket in enumerate(row)]
    if style in ("named", "pyformat"):
        rows = [{"a": a, "b": b, "c": c} for a, b, c in rows]
    connection = session.connection()
    for part in _chunks(rows, 50_000):
        connection.exec_driver_sql(statement, list(part))


def index_posts(session: Session, arrivals: Sequence[Arrival], *, fresh: bool = False
                ) -> Found:
    """Store the signature and band buckets of posts just written (replacing earlier ones
    of the same posts unless ``fresh``) and their originality against earlier posts.

    Batched: one signature call, one bucket lookup per chunk, the pairs found with numpy;
    posts of the batch count as each other's candidates in time order."""
    if not arrivals:
        return {}
    ids = [a.post_id for a in arrivals]
    if not fresh:
        for part in _chunks(ids):
            session.execute(delete(PostLshBand).where(PostLshBand.post_id.in_(part)))
            session.execute(delete(PostSignature).where(PostSignature.post_id.in_(part)))
    sigs = signatures([a.text for a in arrivals])
    buckets = band_buckets(sigs)
    stored_ids, stored_buckets = _stored_bands(session, np.unique(buckets))
    mine = set(ids)
    keep = np.array([p not in mine for p in stored_ids.tolist()], dtype=bool)
    stored = _stored_pool(session, stored_ids[keep].tolist())
    pool = _Pool(ids + stored.post_id, [a.external_id for a in arrivals] + stored.external_id,
                 [a.created_at for a in arrivals] + stored.created_at,
                 np.vstack([sigs.astype(np.uint32), stored.sigs]))
    where = {post_id: k for k, post_id in enumerate(pool.post_id)}
    n = len(arrivals)
    stored_owner = np.array([where.get(p, -1) for p in stored_ids.tolist()], dtype=np.int64)
    known = stored_owner >= n
    owner = np.concatenate([np.repeat(np.arange(n, dtype=np.int64), BANDS),
                            stored_owner[known]])
    bucket = np.concatenate([buckets.reshape(-1), stored_buckets[known]])
    found = _judge(pool, owner, bucket, n)
    session.execute(insert(_SIGNATURES), [{"post_id": post_id, "signature": _to_bytes(sig)}
                                          for post_id, sig in zip(ids, sigs, strict=True)])
    _insert_bands(session, ids, buckets)
    _save_scores(session, found)
    return found


def index_by_keys(session: Session, external_ids: Sequence[str], *,
                  fresh: bool = False) -> None:
    """:func:`index_posts` for posts named by external id (importers, bulk loader)."""
    rows: list[Any] = []
    for part in _chunks(sorted(set(external_ids))):
        rows += session.execute(select(Post.id, Post.external_id, Post.created_at, Post.title,
                                       Post.body).where(Post.external_id.in_(part))).all()
    rows.sort(key=lambda r: (r.created_at, r.external_id))
    index_posts(session, [Arrival(r.id, r.external_id, r.created_at, post_text(r.title, r.body))
                          for r in rows], fresh=fresh)


def backfill_text(session: Session) -> int:
    """Classify posts without a content type and score the sentiment of posts and worded
    reviews without one (rows written before these columns existed); rows changed."""
    posts = session.execute(select(Post.id, Post.title, Post.body, Post.content_type)
                            .where(or_(Post.content_type.is_(None),
                                       Post.sentiment.is_(None)))).all()
    values = [{"title": r.title, "body": r.body, "content_type": r.content_type}
              for r in posts]
    enrich_posts(values)
    post_table = cast(Table, Post.__table__)
    if values:
        session.execute(update(post_table).where(post_table.c.id == bindparam("b_id"))
                        .values(content_type=bindparam("content_type"),
                                sentiment=bindparam("sentiment")),
                        [{"b_id": r.id, "content_type": v["content_type"],
                          "sentiment": v["sentiment"]} for r, v in zip(posts, values,
                                                                        strict=True)])
    reviews = session.execute(select(Review.id, Review.text).where(
        Review.sentiment.is_(None), Review.text != "")).all()
    scored = sentiment_scores([r.text for r in reviews])
    review_table = cast(Table, Review.__table__)
    if reviews:
        session.execute(update(review_table).where(review_table.c.id == bindparam("b_id"))
                        .values(sentiment=bindparam("sentiment")),
                        [{"b_id": r.id, "sentiment": v} for r, v in zip(reviews, scored,
                                                                         strict=True)])
    return len(posts) + len(reviews)


def _unindexed(session: Session) -> list[str]:
    return list(session.scalars(select(Post.external_id).where(
        ~select(PostSignature.post_id).where(PostSignature.post_id == Post.id).exists())))


def recompute_originality(session: Session) -> Found:
    """Originality of every indexed post against all others: the band buckets of the
    stored signatures (the same keys as ``post_lsh_bands``, recomputed in memory rather
    than read back), pairs sharing a bucket compared by signature, earlier posts only —
    independent of arrival order."""
    ids = session.scalars(select(PostSignature.post_id)).all()
    pool = _stored_pool(session, ids)
    owner = np.repeat(np.arange(len(pool.post_id), dtype=np.int64), BANDS)
    return _judge(pool, owner, band_buckets(pool.sigs).reshape(-1), len(pool.post_id))


# --- reach and conversion from the event store ------------------------------------------


def _post_events(store: EventStore, until: datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Counts per (post, event name) with unique viewers, and the views of known customers
    (``post, person, viewed_at``) for attribution."""
    events = store.table("events")
    events = events.filter(events.name.isin(POST_EVENTS), events.ts < until)
    events = events.select("name", "ts", "customer_id", "anonymous_id",
                           post=events.properties.re_extract(POST_ID_PATTERN, 1))
    counts = events.group_by(["post", "name"]).aggregate(n=events.count())
    views = with_person_id(store, events.filter(events.name == "post_view"))
    viewers = views.group_by("post").aggregate(unique_viewers=views.person_id.nunique())
    known = views.filter(~views.person_id.startswith(ANONYMOUS_PREFIX))
    known = known.select("post", person=known.person_id, viewed_at=known.ts)
    frame = store.to_arrow(counts).to_pandas()
    wide = frame.pivot_table(index="post", columns="name", values="n", aggfunc="sum",
                             fill_value=0)
    wide = wide.reindex(columns=list(POST_EVENTS), fill_value=0)
    unique = store.to_arrow(viewers).to_pandas().set_index("post")["unique_viewers"]
    wide["unique_viewers"] = unique.reindex(wide.index).to_numpy(dtype=float, na_value=0.0)
    seen = store.to_arrow(known).to_pandas()
    seen["viewed_at"] = pd.to_datetime(seen["viewed_at"], utc=True)
    return wide, seen


def _paid_lines(session: Session, until: datetime) -> pd.DataFrame:
    """Paid, never refunded order lines of products some post is about, summed per
    (order, product): ``order_id, buyer, product_id, paid_at, amount_fen``.

    Read as two plain scans joined in pandas (times untyped, parsed in one pass): on the
    demo that is several times faster than the grouped SQL join."""
    o, c, li = _orders_raw.c, _customers.c, _lines.c
    promoted = set(session.scalars(select(Post.product_id).where(Post.product_id.is_not(None))
                                   .distinct()))
    orders = pd.DataFrame(session.execute(
        select(o.id, c.external_id, o.paid_at).join(_customers, c.id == o.customer_id)
        .where(o.paid_at.is_not(None), o.refunded_at.is_(None), o.status != "refunded")
    ).all(), columns=["order_id", "buyer", "paid_at"])
    lines = pd.DataFrame(session.execute(
        select(li.order_id, li.product_id, li.quantity * li.unit_price_fen)).all(),
        columns=["order_id", "product_id", "amount_fen"])
    orders["paid_at"] = instants(orders["paid_at"])
    orders = orders[orders["paid_at"] < pd.Timestamp(until)]
    lines = lines[lines["product_id"].isin(promoted)]
    lines = lines.groupby(["order_id", "product_id"], as_index=False)["amount_fen"].sum()
    return orders.merge(lines, on="order_id")[["order_id", "buyer", "product_id", "paid_at",
                                               "amount_fen"]]


def attribute_orders(views: pd.DataFrame, posts: pd.DataFrame, lines: pd.DataFrame,
                     window_days: int) -> pd.DataFrame:
    """Order lines credited to posts: ``post, order_id, product_id, amount_fen``.

    ``views``: ``post, person, viewed_at``; ``posts``: ``post, author, product_id``;
    ``lines``: paid, unrefunded ``order_id, buyer, product_id, paid_at, amount_fen``.
    A line is credited when its buyer viewed a post about its product, is not the post's
    author, and paid within ``window_days`` after the view; when several views qualify, the
    latest view before payment takes the credit (last touch; ties by post key), so an
    order line is never counted twice.
    """
    columns = ["post", "order_id", "product_id", "amount_fen"]
    if views.empty or lines.empty:
        return pd.DataFrame(columns=columns)
    about = views.merge(posts[["post", "author", "product_id"]], on="post")
    about = about[about["person"] != about["author"]]
    joined = about.merge(lines, left_on=["person", "product_id"],
                         right_on=["buyer", "product_id"])
    window = pd.Timedelta(days=window_days)
    joined = joined[(joined["paid_at"] >= joined["viewed_at"])
                    & (joined["paid_at"] <= joined["viewed_at"] + window)]
    joined = joined.sort_values(["order_id", "product_id", "viewed_at", "post"],
                                ascending=[True, True, False, True])
    return joined.drop_duplicates(["order_id", "product_id"])[columns]


def percentile_within(values: pd.Series, groups: pd.Series) -> pd.Series:
    """Share of the other posts of the same group with a strictly lower value (0 for the
    lowest, 1 for the highest; a post alone in its group: 1 if its value is above 0)."""
    frame = pd.DataFrame({"v": values.astype(float), "g": groups})
    ranks = frame.groupby("g")["v"].rank(method="min") - 1
    sizes = frame.groupby("g")["v"].transform("size") - 1
    alone = (frame["v"] > 0).astype(float)
    out = np.where(sizes > 0, ranks / sizes.where(sizes > 0, 1), alone)
    return pd.Series(out, index=values.index, dtype=float)


def _posts_frame(session: Session) -> pd.DataFrame:
    c = _customers.c
    rows = session.execute(select(Post.id, Post.external_id, c.external_id, Post.product_id,
                                  Post.content_type, Post.created_at)
                           .join(_customers, c.id == Post.customer_id)
                           .order_by(Post.id)).all()
    frame = pd.DataFrame(rows, columns=["post_id", "post", "author", "product_id",
                                        "content_type", "created_at"])
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    frame["group"] = frame["content_type"].fillna(UNCLASSIFIED)
    return frame


def _component(inputs: dict[str, Any], value: float, weight: float) -> dict[str, Any]:
    return {"inputs": inputs, "normalised": round(value, 6), "weight": round(weight, 6),
            "contribution": round(100.0 * weight * value, 6)}


def _explained(row: Any, weights: dict[str, float], sources: int) -> dict[str, Any]:
    return {
        "originality": _component({"max_similarity": round(1.0 - row.originality, 4),
                                   "sources": sources}, row.originality,
                                  weights["originality"]),
        "reach": _component({
            "views": int(row.views), "likes": int(row.likes), "shares": int(row.shares),
            "comments": int(row.comments), "days_live": round(row.days_live, 3),
            "views_per_day": round(row.views_per_day, 4),
            "engagement_per_view": round(row.engagement_rate, 6),
            "views_per_day_percentile": round(row.p_views, 6),
            "engagement_percentile": round(row.p_engagement, 6)}, row.reach, weights["reach"]),
        "conversion": _component({
            "unique_viewers": int(row.unique_viewers),
            "attributed_orders": int(row.orders), "attributed_gmv_fen": int(row.gmv_fen),
            "orders_per_viewer": round(row.order_rate, 6),
            "gmv_fen_per_viewer": round(row.gmv_rate, 4),
            "orders_percentile": round(row.p_orders, 6),
            "gmv_percentile": round(row.p_gmv, 6)}, row.conversion, weights["conversion"]),
    }


def score_frame(posts: pd.DataFrame, config: ScoreRefreshIn, as_of: datetime) -> pd.DataFrame:
    """Reach, conversion and quality of every post from its counts (pure).

    ``posts`` holds ``group, created_at, originality, views, unique_viewers, likes, shares,
    comments, orders, gmv_fen``; returns it with the normalised components and quality.
    """
    frame = posts.copy()
    age = (pd.Timestamp(as_of) - frame["created_at"]).dt.total_seconds() / 86_400
    frame["days_live"] = age.clip(lower=1.0, upper=float(config.live_days_cap))
    frame["views_per_day"] = frame["views"] / frame["days_live"]
    engaged = frame["likes"] + frame["shares"] + frame["comments"]
    frame["engagement_rate"] = engaged / (frame["views"] + PRIOR_VIEWS)
    frame["order_rate"] = frame["orders"] / (frame["unique_viewers"] + PRIOR_VIEWERS)
    frame["gmv_rate"] = frame["gmv_fen"] / (frame["unique_viewers"] + PRIOR_VIEWERS)
    group = frame["group"]
    frame["p_views"] = percentile_within(frame["views_per_day"], group)
    frame["p_engagement"] = percentile_within(frame["engagement_rate"], group)
    frame["p_orders"] = percentile_within(frame["order_rate"], group)
    frame["p_gmv"] = percentile_within(frame["gmv_rate"], group)
    frame["reach"] = (frame["p_views"] + frame["p_engagement"]) / 2
    frame["conversion"] = (frame["p_orders"] + frame["p_gmv"]) / 2
    weights = config.weights.normalised()
    frame["quality"] = 100.0 * (weights["originality"] * frame["originality"]
                                + weights["reach"] * frame["reach"]
                                + weights["conversion"] * frame["conversion"])
    return frame


def _write_scores(session: Session, rows: list[dict[str, Any]]) -> None:
    """Replace the score rows of these posts (a post arriving meanwhile keeps its own)."""
    ids = [r["post_id"] for r in rows]
    for part in _chunks(ids):
        session.execute(delete(PostScore).where(PostScore.post_id.in_(part)))
    for part in _chunks(rows):
        session.execute(insert(_SCORES), list(part))


def refresh_scores(session: Session, store: EventStore, now: datetime,
                   config: ScoreRefreshIn | None = None,
                   on_progress: Callable[[str, int, int], None] | None = None
                   ) -> ScoreRefreshReport:
    """Recompute every post's originality, reach, conversion and explained quality as of
    ``now`` (idempotent: the same inputs give the same rows)."""
    config = config or ScoreRefreshIn()
    started = time.perf_counter()
    steps = 5

    def step(label: str, done: int) -> None:
        if on_progress is not None:
            on_progress(label, done, steps)

    exclusive(session, LOCK)
    step("index", 0)
    backfill_text(session)
    index_by_keys(session, _unindexed(session))
    step("originality", 1)
    originality = recompute_originality(session)
    posts = _posts_frame(session)
    step("events", 2)
    counts, views = _post_events(store, now)
    step("attribution", 3)
    credited = attribute_orders(views, posts, _paid_lines(session, now),
                                config.attribution_days)
    per_post = credited.groupby("post").agg(orders=("order_id", "nunique"),
                                            gmv_fen=("amount_fen", "sum"))
    frame = posts.join(counts, on="post").join(per_post, on="post")
    for name in ("post_view", "like", "share", "comment", "unique_viewers", "orders",
                 "gmv_fen"):
        frame[name] = frame[name].to_numpy(dtype=float, na_value=0.0).astype(np.int64)
    frame = frame.rename(columns={"post_view": "views", "like": "likes", "share": "shares",
                                  "comment": "comments"})
    found = [originality.get(int(i), (1.0, [])) for i in frame["post_id"]]
    frame["originality"] = [o for o, _ in found]
    step("scores", 4)
    scored = score_frame(frame, config, now)
    weights = config.weights.normalised()
    rows = []
    for row, (_orig, sources) in zip(scored.itertuples(index=False), found, strict=True):
        components = _explained(row, weights, len(sources))
        quality = sum(c["contribution"] for c in components.values())
        rows.append({
            "post_id": int(row.post_id), "originality": float(row.originality),
            "sources": sources, "views": int(row.views),
            "unique_viewers": int(row.unique_viewers), "likes": int(row.likes),
            "shares": int(row.shares), "comments": int(row.comments),
            "attributed_orders": int(row.orders), "attributed_gmv_fen": int(row.gmv_fen),
            "reach": round(float(row.reach), 6), "conversion": round(float(row.conversion), 6),
            "quality": min(100.0, max(0.0, round(quality, 6))),
            "explanation": {"group": row.group, "as_of": now.isoformat(),
                            "attribution_days": config.attribution_days,
                            "components": components},
            "refreshed_at": now})
    _write_scores(session, rows)
    step("done", steps)
    return ScoreRefreshReport(
        posts=len(rows), with_views=int((frame["views"] > 0).sum()),
        attributed_orders=int(credited["order_id"].nunique()) if len(credited) else 0,
        attributed_gmv_fen=int(credited["amount_fen"].sum()) if len(credited) else 0,
        near_duplicates=sum(1 for _o, s in found if s), weights=weights,
        attribution_days=config.attribution_days, refreshed_at=now,
        seconds=round(time.perf_counter() - started, 3))


# --- dwell per content type -------------------------------------------------------------


def dwell_by_content_type(session: Session, store: EventStore, since: datetime,
                          until: datetime, brand_ids: frozenset[int] | None = None
                          ) -> DwellByType:
    """Dwell of ``post_view`` events in ``[since, until)`` per content type of the post
    (``unclassified`` without one), as :mod:`shequ.analytics.dwell` measures it: the
    client's ``dwell_ms``, else the time to the person's next event within 30 minutes.
    ``brand_ids`` limits the posts (partners)."""
    query = select(Post.external_id, Post.content_type)
    if brand_ids is not None:
        query = query.where(Post.brand_id.in_(sorted(brand_ids)))
    kinds = pd.DataFrame(session.execute(query).all(), columns=["post", "kind"])
    kinds["kind"] = kinds["kind"].fillna(UNCLASSIFIED)
    if kinds.empty:
        return DwellByType(since=since, until=until, groups=[])
    views = view_dwell(store, since, until, ("post_view",), "properties")
    views = views.mutate(post=views.properties.re_extract(POST_ID_PATTERN, 1))
    lookup = ibis.memtable(kinds)
    views = views.join(lookup, views.post == lookup.post)
    groups = dwell_summary(views.mutate(group=views.kind))
    rows = store.to_arrow(groups).to_pylist()
    return DwellByType(since=since, until=until, groups=[summary(r) for r in rows])

