"""The deterministic demo community generator (pure data: no database, no clock).

>>> community = generate("small", seed=7)
>>> len(community.customers)
500

Same ``size`` and ``seed`` give identical rows and events; nothing depends on today's date.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from shequ.demo import sizes as sz
from shequ.demo.catalog import make_catalog
from shequ.demo.event_context import EventContext, make_context
from shequ.demo.event_fields import EVENT_SCHEMA
from shequ.demo.events import iter_tables
from shequ.demo.orders import make_orders
from shequ.demo.people import device_rows, make_creators, make_people
from shequ.demo.planted import describe
from shequ.demo.posts import make_comments, make_posts
from shequ.demo.reviews import make_burst, make_reviews, pick_burst_product
from shequ.demo.sessions import Plan, device_first_use, make_plan
from shequ.demo.sizes import SIZES, Size
from shequ.demo.slots import filler_probabilities
from shequ.demo.timing import TimeSampler, Window, to_datetime
from shequ.demo.violations import plant_violations

Row = dict[str, Any]
__all__ = ["EVENT_SCHEMA", "SIZES", "Community", "Size", "generate"]


@dataclass(eq=False)
class Community:
    """A generated community: entity rows (lists of plain dicts) and lazily produced events."""

    size: str
    seed: int
    start: datetime
    end: datetime
    brands: list[Row]
    categories: list[Row]
    hubs: list[Row]
    products: list[Row]
    customers: list[Row]
    devices: list[Row]
    orders: list[Row]
    order_lines: list[Row]
    reviews: list[Row]
    creators: list[Row]
    posts: list[Row]
    comments: list[Row]
    planted: dict[str, dict[str, Any]]
    event_count: int
    _context: EventContext = field(repr=False)
    _plan: Plan = field(repr=False)

    def events(self, chunk_rows: int = 500_000) -> Iterator[pa.Table]:
        """The events as Arrow tables of ``chunk_rows`` rows (the last may be shorter).

        Columns follow ``EVENT_SCHEMA``. The rows do not depend on ``chunk_rows``; they are
        roughly chronological (sorted within blocks of sessions, not globally).
        """
        return iter_tables(self._context, self._plan, chunk_rows)


def _window(days: int, start: date | None, end: date | None) -> Window:
    if not sz.MIN_DAYS <= days <= sz.MAX_DAYS:
        raise ValueError(f"days must be between {sz.MIN_DAYS} and {sz.MAX_DAYS}")
    if start is not None and end is not None and start + timedelta(days=days - 1) != end:
        raise ValueError("start, end and days disagree")
    first = start if start is not None else (end or sz.DEFAULT_END) - timedelta(days=days - 1)
    return Window(first_day=first, days=days)


def _rngs(seed: int) -> tuple[Any, Any]:
    def rng(part: int) -> np.random.Generator:
        return np.random.default_rng([seed, part])

    def rnd(part: str) -> random.Random:
        return random.Random(f"shequ-demo:{seed}:{part}")

    return rng, rnd


def generate(size: str = "default", seed: int = 7, *, start: date | None = None,
             days: int = sz.DEFAULT_DAYS, end: date | None = None) -> Community:
    """Generate the demo community of ``size`` ("small", "default" or "large").

    The window is ``days`` Shanghai days ending on ``end`` (default 2026-11-20), or starting
    on ``start`` if given. Deterministic in (size, seed, window).
    """
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {sorted(SIZES)}")
    if seed < 0:
        raise ValueError("seed must be non-negative")
    spec, window = SIZES[size], _window(days, start, end)
    sampler = TimeSampler(window)
    rng, rnd = _rngs(seed)
    catalog = make_catalog(rng(1), rnd("catalog"), spec)
    people = make_people(rng(2), rnd("people"), spec, window, sampler)
    creators, creator_cust, joined = make_creators(rng(3), rnd("creators"), spec, people,
                                                   catalog, window)
    burst = make_burst(catalog, window, pick_burst_product(catalog, spec, days))
    orders = make_orders(rng(4), people, catalog, spec, window, sampler, burst.product)
    reviews = make_reviews(rng(5), rnd("reviews"), orders, people, catalog, spec, window, burst)
    posts = make_posts(rng(6), rnd("posts"), people, catalog, creators, creator_cust, joined,
                       spec, sampler)
    comments = make_comments(rng(7), rnd("comments"), people, catalog, posts, spec,
                             window.end_us)
    violations = plant_violations(rng(9), rnd("violations"), comments,
                                  [str(p["name"]) for p in catalog.products])
    plan = make_plan(rng(8), people, orders, catalog.product_top, sampler, spec.events)
    context = make_context(seed, catalog, people, orders, posts,
                           filler_probabilities(plan, orders))
    return Community(
        size=size, seed=seed, start=to_datetime(window.start_us), end=to_datetime(window.end_us),
        brands=catalog.brands, categories=catalog.categories, hubs=catalog.hubs,
        products=catalog.products, customers=people.rows,
        devices=device_rows(people, device_first_use(plan, people.device_owner.size)),
        orders=orders.rows, order_lines=orders.lines, reviews=reviews, creators=creators,
        posts=posts.rows, comments=comments,
        planted=describe(window, catalog, people, orders, reviews, posts, burst)
        | {"violations": violations},
        event_count=spec.events, _context=context, _plan=plan,
    )
