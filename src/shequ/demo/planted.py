"""The ``Community.planted`` description: where each planted phenomenon is and how big it is."""

from __future__ import annotations

from typing import Any

import numpy as np

from shequ.demo import sizes as sz
from shequ.demo.catalog import Catalog
from shequ.demo.orders import BURST, RING, Orders
from shequ.demo.people import People
from shequ.demo.posts import Posts
from shequ.demo.reviews import Burst, burst_baseline
from shequ.demo.timing import Window, to_datetime

Row = dict[str, Any]


def _payment_drop(window: Window, orders: Orders) -> dict[str, Any]:
    days = sz.planted_days(window.days).payment_drop
    on_days = np.isin(window.day_index(orders.created_us), days)
    return {
        "day_indexes": list(days), "days": [window.local_date(d) for d in days],
        "start": to_datetime(window.day_us(days[0])),
        "end": to_datetime(window.day_us(days[1] + 1)),
        "factor": sz.PAYMENT_DROP_FACTOR, "channels": "all", "step": "checkout -> payment",
        "usual_pay_rate_by_channel": dict(sz.PAY_RATE_BY_CHANNEL),
        "checkouts_on_days": int(on_days.sum()),
        "payments_on_days": int((on_days & (orders.paid_us >= 0)).sum()),
    }


def _coupon_ring(window: Window, people: People, orders: Orders) -> dict[str, Any]:
    members = np.flatnonzero(people.ring)
    ring_orders = np.flatnonzero(orders.kind == RING)
    devices = sorted({str(orders.rows[o]["device_external_id"]) for o in ring_orders})
    first_day = sz.planted_days(window.days).ring_registration
    return {
        "customer_external_ids": [people.ext(int(c)) for c in members],
        "members": int(members.size),
        "registered_from": to_datetime(window.day_us(first_day)),
        "registered_until": to_datetime(window.day_us(first_day + sz.RING_REGISTRATION_DAYS)),
        "device_external_ids": devices, "shipping_addresses": list(people.ring_addresses),
        "payment_account_prefix": people.ring_account_prefix, "coupon_code": sz.COUPON_NEWBIE,
        "order_external_ids": [str(orders.rows[o]["external_id"]) for o in ring_orders],
        "statuses": {s: sum(1 for o in ring_orders if orders.rows[o]["status"] == s)
                     for s in sorted({str(orders.rows[o]["status"]) for o in ring_orders})},
    }


def _review_burst(window: Window, catalog: Catalog, orders: Orders, reviews: list[Row],
                  burst: Burst) -> dict[str, Any]:
    sku = catalog.sku(burst.product)
    burst_orders = {str(orders.rows[o]["external_id"])
                    for o in np.flatnonzero(orders.kind == BURST)}
    ids = [str(r["external_id"]) for r in reviews if r["order_external_id"] in burst_orders]
    return {
        "sku": sku, "product_name": catalog.products[burst.product]["name"], "issue": burst.issue,
        "batch": burst.batch, "start": to_datetime(burst.start_us),
        "end": to_datetime(burst.end_us),
        "day_index": sz.planted_days(window.days).burst_start, "hours": sz.BURST_HOURS,
        "ratings": [1, 2], "count": len(ids), "review_external_ids": ids,
        "order_external_ids": sorted(burst_orders),
        "baseline_reviews_per_day": round(burst_baseline(reviews, sku, burst, window), 3),
    }


def _lapsing(window: Window, people: People, orders: Orders) -> dict[str, Any]:
    lapsing = np.flatnonzero(people.lapsing)
    cutoff_day = sz.planted_days(window.days).lapse_cutoff
    counts = np.bincount(orders.cust, minlength=people.lapsing.size)
    return {
        "customer_external_ids": [people.ext(int(c)) for c in lapsing], "count": int(lapsing.size),
        "cutoff": to_datetime(window.day_us(cutoff_day)), "cutoff_day_index": cutoff_day,
        "silent_days": sz.LAPSE_DAYS, "pool": f"top {round((1 - sz.LAPSING_POOL_QUANTILE) * 100)} %"
                                            " of customers by purchase propensity",
        "min_orders_before_cutoff": int(counts[lapsing].min()) if lapsing.size else 0,
    }


def _near_duplicates(posts: Posts) -> dict[str, Any]:
    return {
        "count": len(posts.near_duplicates), "share": sz.NEAR_DUP_SHARE,
        "pairs": [{"post_external_id": dup, "source_post_external_id": src}
                  for dup, src in posts.near_duplicates],
        "edits": ("title 0-1, body 2-4 small edits (1-3 under 150 characters); other author; "
                  "6 h to 14 days later"),
    }


def describe(window: Window, catalog: Catalog, people: People, orders: Orders,
             reviews: list[Row], posts: Posts, burst: Burst) -> dict[str, dict[str, Any]]:
    """The ``planted`` dict of a community (see docs/demo.md)."""
    return {
        "payment_drop": _payment_drop(window, orders),
        "coupon_ring": _coupon_ring(window, people, orders),
        "review_burst": _review_burst(window, catalog, orders, reviews, burst),
        "lapsing_customers": _lapsing(window, people, orders),
        "near_duplicate_posts": _near_duplicates(posts),
    }

