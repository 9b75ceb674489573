"""Community posts (four content types), the planted near-duplicates, and comments."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from shequ.demo import sizes as sz
from shequ.demo.catalog import TOP_IDS, Catalog
from shequ.demo.people import People
from shequ.demo.phrases_catalog import BRANDS, LEAVES
from shequ.demo.text import comment_text, perturb, post_text
from shequ.demo.timing import DAY, HOUR, Floats, Ints, TimeSampler, seconds, to_datetime

Row = dict[str, Any]
CONTENT_TYPES = ("knowledge", "scenario", "review", "story")
CONTENT_P = (0.25, 0.25, 0.30, 0.20)
PRODUCT_P = {"knowledge": 0.35, "scenario": 0.7, "review": 1.0, "story": 0.3}
LEVEL_WEIGHT = {"KOC": 1.3, "KOL": 3.0, "expert": 2.0}
NONE = -1


@dataclass
class Posts:
    """Post rows (sorted by time) plus arrays the event builder samples from."""

    rows: list[Row]
    created_us: Ints
    popularity: Floats
    top: Ints
    product: Ints
    author: Ints
    near_duplicates: list[tuple[str, str]]


@dataclass
class _Draft:
    author: Ints
    weight: Floats
    at: Ints


def _authors(rng: np.random.Generator, people: People, creators: list[Row], creator_cust: Ints,
             creator_joined: Ints, n: int, sampler: TimeSampler) -> _Draft:
    """Authors (70 % creators), their popularity weight and a post time in their active span."""
    is_creator = rng.random(n) < 0.7
    level = np.array([LEVEL_WEIGHT[str(c["level"])] for c in creators])
    pick_c = rng.choice(creator_cust.size, size=n, p=level / level.sum())
    w = np.where(people.ring, 0.0, people.activity_w)
    pick_p = rng.choice(w.size, size=n, p=w / w.sum())
    author = np.where(is_creator, creator_cust[pick_c], pick_p)
    floor = sampler.window.start_us - sz.PRE_WINDOW_DAYS * DAY
    lo = np.maximum(np.where(is_creator, creator_joined[pick_c], people.reg_us[author]), floor)
    hi = people.hi_us[author] - HOUR
    lo = np.minimum(lo, hi - HOUR)
    weight = np.where(is_creator, level[pick_c], 0.6) * rng.lognormal(0.0, 1.0, n)
    return _Draft(author.astype(np.int64), weight, sampler.sample(rng, lo, hi))


def _subjects(rng: np.random.Generator, people: People, catalog: Catalog, author: Ints,
              kinds: list[str]) -> tuple[Ints, Ints]:
    """Top category and product (or -1) of every post."""
    n = author.size
    top = np.where(rng.random(n) < 0.8, people.top[author], rng.integers(0, 5, n))
    product = catalog.sample_products(rng, top)
    p_product = np.array([PRODUCT_P[k] for k in kinds])
    return top.astype(np.int64), np.where(rng.random(n) < p_product, product, NONE)


def _hub(rnd: random.Random, catalog: Catalog, top: int, product: int) -> str | None:
    brand = int(catalog.product_brand[product]) if product >= 0 else -1
    if brand in catalog.hub_by_brand and rnd.random() < 0.5:
        return str(catalog.hubs[catalog.hub_by_brand[brand]]["external_id"])
    if top in catalog.hub_by_top and rnd.random() < 0.75:
        return str(catalog.hubs[catalog.hub_by_top[top]]["external_id"])
    return None


def _post_row(rnd: random.Random, catalog: Catalog, people: People, kind: str, top: int,
              product: int, author: int, at: int) -> Row:
    brands = [b[0] for b in BRANDS if b[1] == TOP_IDS[top]]
    nouns = [spec[1] for spec in LEAVES.values() if spec[0] == TOP_IDS[top]]
    text = catalog.texts[product] if product >= 0 else None
    title, body = post_text(rnd, kind, TOP_IDS[top], text, rnd.choice(brands), rnd.choice(nouns))
    return {"author_customer_external_id": people.ext(author),
            "hub_external_id": _hub(rnd, catalog, top, product), "content_type": kind,
            "title": title, "body": body, "sku": catalog.sku(product) if product >= 0 else None,
            "created_at": to_datetime(at)}


def _edits(rnd: random.Random, body: str) -> int:
    """How many small edits a near-copy gets: 2-4, or 1-3 for bodies under 150 characters."""
    return rnd.randint(1, 3) if len(body) < 150 else rnd.randint(2, 4)


def _dup_author(rng: np.random.Generator, people: People, source_author: int, at: int) -> int:
    w = np.where(~people.ring & (people.reg_us < at) & (people.hi_us > at + HOUR),
                 people.activity_w, 0.0)
    w[source_author] = 0.0
    return int(rng.choice(w.size, p=w / w.sum()))


def _near_duplicates(rng: np.random.Generator, rnd: random.Random, people: People,
                     rows: list[Row], draft: _Draft, n_dup: int, end_us: int) -> list[int]:
    """Append ``n_dup`` near-copies of earlier posts; returns the source index of each."""
    eligible = np.flatnonzero(draft.at < end_us - 2 * DAY)
    sources: list[int] = [int(s) for s in np.sort(rng.choice(eligible, size=n_dup, replace=False))]
    authors, times, weights = list(draft.author), list(draft.at), list(draft.weight)
    for s in sources:
        at = min(int(draft.at[s]) + int(seconds(rng.uniform(6 * 3600, 14 * 86400, 1))[0]),
                 end_us - 2 * HOUR)
        author = _dup_author(rng, people, int(draft.author[s]), at)
        src = rows[s]
        rows.append({**src, "author_customer_external_id": people.ext(author),
                     "title": perturb(rnd, str(src["title"]), rnd.randint(0, 1)),
                     "body": perturb(rnd, str(src["body"]), _edits(rnd, str(src["body"]))),
                     "created_at": to_datetime(at)})
        authors.append(author)
        times.append(at)
        weights.append(float(draft.weight[s]) * 0.3)
    draft.author = np.array(authors, dtype=np.int64)
    draft.at = np.array(times, dtype=np.int64)
    draft.weight = np.array(weights, dtype=np.float64)
    return sources


def make_posts(rng: np.random.Generator, rnd: random.Random, people: People, catalog: Catalog,
               creators: list[Row], creator_cust: Ints, creator_joined: Ints, size: sz.Size,
               sampler: TimeSampler) -> Posts:
    """``size.posts`` posts, ~3 % of them planted near-duplicates, sorted by time, with ids."""
    n_dup = round(sz.NEAR_DUP_SHARE * size.posts)
    n_base = size.posts - n_dup
    draft = _authors(rng, people, creators, creator_cust, creator_joined, n_base, sampler)
    kinds = [str(k) for k in rng.choice(CONTENT_TYPES, size=n_base, p=CONTENT_P)]
    top, product = _subjects(rng, people, catalog, draft.author, kinds)
    rows = [_post_row(rnd, catalog, people, k, int(t), int(p), int(a), int(at))
            for k, t, p, a, at in zip(kinds, top.tolist(), product.tolist(),
                                      draft.author.tolist(), draft.at.tolist(), strict=True)]
    sources = _near_duplicates(rng, rnd, people, rows, draft, n_dup, sampler.window.end_us)
    top = np.concatenate([top, top[sources]])
    product = np.concatenate([product, product[sources]])
    order = np.argsort(draft.at, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    for i, row in enumerate(rows):
        row["external_id"] = f"p{int(rank[i]) + 1:06d}"
    pairs = [(str(rows[n_base + k]["external_id"]), str(rows[s]["external_id"]))
             for k, s in enumerate(sources)]
    ordered = [{"external_id": rows[i].pop("external_id"), **rows[i]} for i in order.tolist()]
    return Posts(rows=ordered, created_us=draft.at[order], popularity=draft.weight[order],
                 top=top[order], product=product[order], author=draft.author[order],
                 near_duplicates=pairs)


def _commenters(rng: np.random.Generator, people: People, posts: Posts, n: int,
                end_us: int) -> tuple[Ints, Ints, Ints]:
    """(post, customer, time) of up to ``n`` valid comments drawn from an oversample."""
    m = int(n * 1.6) + 10
    post = rng.choice(posts.popularity.size, size=m, p=posts.popularity / posts.popularity.sum())
    at = posts.created_us[post] + seconds(
        np.minimum(rng.lognormal(np.log(8 * 3600), 1.2, m), 30 * 86400) + 60)
    w = np.where(people.ring, 0.0, people.activity_w)
    who = rng.choice(w.size, size=m, p=w / w.sum())
    ok = (at < np.minimum(people.hi_us[who], end_us) - HOUR) & (people.reg_us[who] < at)
    ok &= who != posts.author[post]
    keep = np.flatnonzero(ok)[:n]
    return post[keep].astype(np.int64), who[keep].astype(np.int64), at[keep].astype(np.int64)


def make_comments(rng: np.random.Generator, rnd: random.Random, people: People,
                  catalog: Catalog, posts: Posts, size: sz.Size, end_us: int) -> list[Row]:
    """Comments under posts (after the post, by someone else), sorted by time, with ids."""
    post, who, at = _commenters(rng, people, posts, size.comments, end_us)
    order = np.lexsort((post, at))
    rows: list[Row] = []
    for i, k in enumerate(order.tolist()):
        p = int(post[k])
        product = int(posts.product[p])
        text = comment_text(rnd, TOP_IDS[int(posts.top[p])],
                            catalog.texts[product] if product >= 0 else None)
        rows.append({"external_id": f"m{i + 1:07d}",
                     "post_external_id": posts.rows[p]["external_id"],
                     "customer_external_id": people.ext(int(who[k])), "text": text,
                     "created_at": to_datetime(int(at[k]))})
    return rows
