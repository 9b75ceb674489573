"""Product reviews: written after delivery, rating tied to text, plus the planted burst."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np

from shequ.demo import sizes as sz
from shequ.demo.catalog import Catalog
from shequ.demo.orders import BURST, Orders
from shequ.demo.people import People
from shequ.demo.text import burst_review_text, review_text
from shequ.demo.timing import DAY, HOUR, Floats, Ints, Window, seconds, to_datetime, to_us

Row = dict[str, Any]
BASE_RATING_P = np.array([0.04, 0.04, 0.08, 0.22, 0.62])  # 1..5 stars
ISSUE_BY_TOP = {0: "过敏", 1: "漏液"}  # other categories: 发货慢


@dataclass(frozen=True)
class Burst:
    """The planted negative-review burst."""

    product: int
    issue: str
    batch: str
    start_us: int
    end_us: int


def pick_burst_product(catalog: Catalog, size: sz.Size, days: int) -> int:
    """The face cream whose expected ordinary review rate is closest to one a day."""
    creams = [i for i, p in enumerate(catalog.products)
              if p["category_external_id"] == "beauty.cream"]
    top = catalog.product_top
    share = catalog.popularity / np.array([catalog.popularity[top == t].sum() for t in top])
    expected = share * 0.3 * size.reviews / days
    return min(creams, key=lambda i: (abs(float(expected[i]) - 1.0), i))


def make_burst(catalog: Catalog, window: Window, product: int) -> Burst:
    """Issue, batch code and 48-hour window of the burst for ``product``."""
    start = window.day_us(sz.planted_days(window.days).burst_start)
    issue = ISSUE_BY_TOP.get(int(catalog.product_top[product]), "发货慢")
    made = window.local_date(sz.planted_days(window.days).burst_start) - timedelta(days=24)
    return Burst(product=product, issue=issue, batch=f"L{made:%y%m%d}A",
                 start_us=start, end_us=start + sz.BURST_HOURS * HOUR)


def _ratings(rng: np.random.Generator, quality: Floats, refunded: np.ndarray) -> Ints:
    """Star ratings 1..5: product quality and refunds tilt a skewed base distribution."""
    tilt = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    logits = np.log(BASE_RATING_P)[None, :] + quality[:, None] * tilt[None, :]
    logits = logits - 1.2 * refunded[:, None] * tilt[None, :]
    gumbel = -np.log(-np.log(rng.random(logits.shape)))
    stars: Ints = (np.argmax(logits + gumbel, axis=1) + 1).astype(np.int64)
    return stars


def _candidates(rng: np.random.Generator, orders: Orders, people: People,
                window: Window) -> tuple[Ints, Ints, Ints]:
    """(line index, order index, review time) of every line that may be reviewed."""
    n_lines = np.diff(orders.line_ptr)
    owner = np.repeat(np.arange(n_lines.size), n_lines)
    completed = orders.completed_us[owner]
    refunded_shipped = (orders.refunded_us[owner] >= 0) & (orders.shipped_us[owner] >= 0)
    base = np.where(completed >= 0, completed, orders.shipped_us[owner] + 2 * DAY)
    ok = ((completed >= 0) | refunded_shipped) & (orders.kind[owner] != BURST)
    at = base + seconds(np.minimum(rng.lognormal(np.log(1.5 * 86400), 0.8, owner.size), 20 * 86400))
    limit = np.minimum(people.hi_us[orders.cust[owner]], window.end_us) - HOUR
    ok &= at < limit
    lines = np.flatnonzero(ok)
    return lines.astype(np.int64), owner[lines].astype(np.int64), at[lines].astype(np.int64)


def _review_row(order: Row, sku: str, rating: int, text: str, at: int) -> Row:
    return {"customer_external_id": order["customer_external_id"],
            "order_external_id": order["external_id"], "sku": sku, "rating": rating,
            "text": text, "created_at": to_datetime(at)}


def make_reviews(rng: np.random.Generator, rnd: random.Random, orders: Orders, people: People,
                 catalog: Catalog, size: sz.Size, window: Window, burst: Burst) -> list[Row]:
    """Ordinary reviews of delivered lines plus the burst, sorted by time, with ids."""
    lines, owner, at = _candidates(rng, orders, people, window)
    target = max(0, size.reviews - int((orders.kind == BURST).sum()))
    take = np.sort(rng.choice(lines.size, size=min(target, lines.size), replace=False))
    lines, owner, at = lines[take], owner[take], at[take]
    quality = rng.normal(0.0, 0.35, len(catalog.products))
    product = orders.line_product[lines]
    ratings = _ratings(rng, quality[product], (orders.refunded_us[owner] >= 0).astype(float))
    rows = [_review_row(orders.rows[o], catalog.sku(p), r, review_text(rnd, r, catalog.texts[p]), t)
            for o, p, r, t in zip(owner.tolist(), product.tolist(), ratings.tolist(), at.tolist(),
                                  strict=True)]
    for o in np.flatnonzero(orders.kind == BURST).tolist():
        rating = 1 if rnd.random() < 0.65 else 2
        text = burst_review_text(rnd, burst.issue, catalog.texts[burst.product], burst.batch)
        rows.append(_review_row(orders.rows[o], catalog.sku(burst.product), rating, text,
                                int(orders.burst_review_us[o])))
    rows.sort(key=lambda r: (r["created_at"], r["order_external_id"], r["sku"]))
    return [{"external_id": f"r{i + 1:07d}", **row} for i, row in enumerate(rows)]


def burst_baseline(reviews: list[Row], sku: str, burst: Burst, window: Window) -> float:
    """Average reviews a day of the burst product outside the burst window."""
    outside = [r for r in reviews if r["sku"] == sku
               and not burst.start_us <= to_us(r["created_at"]) < burst.end_us]
    return len(outside) / (window.days - sz.BURST_HOURS / 24)
