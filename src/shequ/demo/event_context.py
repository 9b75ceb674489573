"""Lookup tables for event expansion: string vocabularies and per-entity arrays.

Every string column of an event is an index into a vocabulary built here once (pages,
JSON ``properties``, customer and device ids), so chunks are assembled with Arrow ``take``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from shequ.demo.catalog import TOP_IDS, Catalog
from shequ.demo.orders import Orders
from shequ.demo.people import People
from shequ.demo.phrases_catalog import SEARCH_QUERIES
from shequ.demo.posts import Posts
from shequ.demo.timing import Floats, Ints

EVENT_NAMES = ("page_view", "click", "search", "product_view", "add_to_cart", "checkout",
               "payment", "post_view", "like", "share", "comment", "login", "signup")
CHANNELS = ("app", "wechat_mini", "h5", "douyin", "web")
FIXED_PAGES = ("/home", "/search", "/cart", "/checkout", "/pay", "/login", "/signup", "/me")
HOME, SEARCH_PAGE, CART_PAGE, CHECKOUT_PAGE, PAY_PAGE, LOGIN_PAGE, SIGNUP_PAGE, ME = range(8)
REFERRERS = ("https://www.douyin.com/", "https://servicewechat.com/", "https://www.baidu.com/",
             "https://www.xiaohongshu.com/", "https://weibo.com/")
LOGIN_METHODS = ("sms", "wechat", "password")
CLICK_ELEMENTS = (  # name, x mean, y mean, x sd, y sd, weight
    ("banner", 0.50, 0.17, 0.20, 0.05, 0.18), ("feed_card", 0.50, 0.55, 0.24, 0.18, 0.34),
    ("buy_button", 0.80, 0.93, 0.07, 0.02, 0.16), ("tab_bar", 0.50, 0.97, 0.30, 0.01, 0.12),
    ("search_box", 0.50, 0.06, 0.22, 0.015, 0.10), ("like_button", 0.90, 0.72, 0.03, 0.06, 0.10),
)
SHARE_TARGETS = ("wechat", "moments", "weibo")
QUERY_COUNTS: Ints = np.array([len(SEARCH_QUERIES[t]) for t in TOP_IDS], dtype=np.int64)
QUERY_OFFSETS: Ints = np.concatenate([[0], np.cumsum(QUERY_COUNTS)[:-1]]).astype(np.int64)
MAX_QTY = 5


def _json(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False)


@dataclass
class Offsets:
    """Where each family of strings starts inside a vocabulary."""

    categories: int = 0
    products: int = 0
    posts: int = 0
    hubs: int = 0
    referrers: int = 0
    login: int = 0
    signup: int = 0
    click: int = 0
    search: int = 0
    view: int = 0
    cart: int = 0
    post: int = 0
    share: int = 0
    checkout: int = 0
    payment: int = 0


@dataclass
class EventContext:
    """Everything :mod:`shequ.demo.events` needs besides the session plan."""

    seed: int
    pages: pa.Array
    props: pa.Array
    customers: pa.Array
    devices: pa.Array
    names: pa.Array
    channels: pa.Array
    off: Offsets
    catalog: Catalog
    orders: Orders
    post_created_us: Ints
    post_cum: Floats
    hub_page_by_top: Ints
    n_hubs: int
    filler_p: Floats


def _pages(catalog: Catalog, posts: Posts, off: Offsets) -> list[str]:
    pages = list(FIXED_PAGES)
    off.categories = len(pages)
    pages += [f"/category/{top}" for top in TOP_IDS]
    off.products = len(pages)
    pages += [f"/product/{p['sku']}" for p in catalog.products]
    off.posts = len(pages)
    pages += [f"/post/{p['external_id']}" for p in posts.rows]
    off.hubs = len(pages)
    pages += [f"/hub/{h['external_id']}" for h in catalog.hubs]
    off.referrers = len(pages)
    return pages + list(REFERRERS)


def _fixed_props(off: Offsets) -> list[str]:
    props = ["{}"]
    off.login = len(props)
    props += [_json({"method": m}) for m in LOGIN_METHODS]
    off.signup = len(props)
    props += [_json({"method": m}) for m in LOGIN_METHODS]
    off.click = len(props)
    props += [_json({"element": e[0]}) for e in CLICK_ELEMENTS]
    off.search = len(props)
    props += [_json({"query": q}) for top in TOP_IDS for q in SEARCH_QUERIES[top]]
    return props


def _entity_props(catalog: Catalog, posts: Posts, orders: Orders, off: Offsets) -> list[str]:
    props: list[str] = []
    base = off.view = off.search + sum(len(SEARCH_QUERIES[t]) for t in TOP_IDS)
    props += [_json({"sku": p["sku"]}) for p in catalog.products]
    off.cart = base + len(props)
    props += [_json({"sku": p["sku"], "quantity": q, "price_fen": p["price_fen"]})
              for p in catalog.products for q in range(1, MAX_QTY + 1)]
    off.post = base + len(props)
    props += [_json({"post_id": p["external_id"]}) for p in posts.rows]
    off.share = base + len(props)
    props += [_json({"post_id": p["external_id"], "to": t}) for p in posts.rows
              for t in SHARE_TARGETS]
    off.checkout = base + len(props)
    lines = np.diff(orders.line_ptr)
    props += [_json({"order_id": o["external_id"], "amount_fen": o["total_fen"],
                     "items": int(n)}) for o, n in zip(orders.rows, lines, strict=True)]
    off.payment = base + len(props)
    props += [_json({"order_id": o["external_id"], "amount_fen": o["total_fen"],
                     "method": str(o["payment_account"]).split(":", 1)[0]}) for o in orders.rows]
    return props


def make_context(seed: int, catalog: Catalog, people: People, orders: Orders, posts: Posts,
                 filler_p: Floats) -> EventContext:
    """Build the vocabularies and lookup arrays for event expansion."""
    off = Offsets()
    pages = _pages(catalog, posts, off)
    props = _fixed_props(off)
    props += _entity_props(catalog, posts, orders, off)
    hub_page = np.array([off.hubs + catalog.hub_by_top.get(t, t % len(catalog.hubs))
                         for t in range(len(TOP_IDS))], dtype=np.int64)
    n_dev = people.device_owner.size
    return EventContext(
        seed=seed, pages=pa.array(pages, pa.string()), props=pa.array(props, pa.string()),
        customers=pa.array([r["external_id"] for r in people.rows], pa.string()),
        devices=pa.array([f"d{d + 1:07d}" for d in range(n_dev)], pa.string()),
        names=pa.array(EVENT_NAMES, pa.string()), channels=pa.array(CHANNELS, pa.string()),
        off=off, catalog=catalog, orders=orders, post_created_us=posts.created_us,
        post_cum=np.concatenate([[0.0], np.cumsum(posts.popularity)]),
        hub_page_by_top=hub_page, n_hubs=len(catalog.hubs), filler_p=filler_p,
    )
