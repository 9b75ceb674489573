"""Tests of the deterministic demo community generator (size "small" only, to stay fast)."""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from shequ.demo import EVENT_SCHEMA, SIZES, Community, generate
from shequ.demo.phrases_reviews import NEGATIVE, POSITIVE

SHANGHAI = ZoneInfo("Asia/Shanghai")
STATUSES = {"created", "paid", "shipped", "completed", "cancelled", "refunded"}
EVENT_NAMES = {"page_view", "click", "search", "product_view", "add_to_cart", "checkout",
               "payment", "post_view", "like", "share", "comment", "login", "signup"}
GAP = timedelta(minutes=30)
PROMO_DAYS = {(11, 10), (11, 11), (11, 12)}


@pytest.fixture(scope="module")
def community() -> Community:
    return generate("small", seed=7)


@pytest.fixture(scope="module")
def events(community: Community) -> pa.Table:
    return pa.concat_tables(list(community.events(chunk_rows=6_000)))


@pytest.fixture(scope="module")
def rows(events: pa.Table) -> list[dict[str, Any]]:
    return events.to_pylist()


def _local_day(ts: datetime, community: Community) -> int:
    return (ts.astimezone(SHANGHAI).date() - community.start.astimezone(SHANGHAI).date()).days


def _cjk_share(text: str) -> float:
    cjk = sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff")
    letters = sum(1 for ch in text if ch.isalnum())
    return cjk / max(letters, 1)


def _shingles(text: str) -> set[str]:
    return {text[i:i + 3] for i in range(len(text) - 2)}


def _jaccard(a: str, b: str) -> float:
    sa, sb = _shingles(a), _shingles(b)
    return len(sa & sb) / max(len(sa | sb), 1)


# --- determinism and shape -------------------------------------------------------------------

def test_same_seed_gives_identical_rows_and_events(community: Community, events: pa.Table) -> None:
    again = generate("small", seed=7)
    for name in ("brands", "categories", "hubs", "products", "customers", "devices", "orders",
                 "order_lines", "reviews", "creators", "posts", "comments", "planted"):
        assert getattr(again, name) == getattr(community, name), name
    assert pa.concat_tables(list(again.events())).equals(events)


def test_other_seed_differs(community: Community, events: pa.Table) -> None:
    other = generate("small", seed=8)
    assert other.customers != community.customers
    assert other.orders != community.orders
    other_ids = set(pa.concat_tables(list(other.events())).column("event_id").to_pylist())
    assert not other_ids & set(events.column("event_id").to_pylist())


def test_counts_match_the_small_size(community: Community, events: pa.Table) -> None:
    size = SIZES["small"]
    assert len(community.customers) == size.customers == 500
    assert len(community.products) == size.products == 60
    assert len(community.brands) == 10
    assert len(community.hubs) == 3
    assert len(community.creators) == 20
    assert len(community.orders) == size.orders
    assert len(community.posts) == size.posts
    assert len(community.reviews) == size.reviews
    assert len(community.comments) == size.comments
    assert events.num_rows == community.event_count == 20_000
    assert {len(t) for t in community.events(chunk_rows=6_000)} == {6_000, 2_000}


def test_window_is_fixed_and_90_days(community: Community) -> None:
    assert community.end == datetime(2026, 11, 20, 16, 0, tzinfo=UTC)
    assert community.end - community.start == timedelta(days=90)
    shifted = generate("small", seed=7, end=datetime(2026, 6, 30).date(), days=60)
    assert shifted.end == datetime(2026, 6, 30, 16, 0, tzinfo=UTC)


# --- entities ----------------------------------------------------------------------------------

def test_foreign_keys_exist(community: Community) -> None:
    c = community
    brands = {b["external_id"] for b in c.brands}
    cats = {x["external_id"] for x in c.categories}
    hubs = {h["external_id"] for h in c.hubs}
    skus = {p["sku"] for p in c.products}
    customers = {x["external_id"] for x in c.customers}
    devices = {d["external_id"] for d in c.devices}
    orders = {o["external_id"] for o in c.orders}
    posts = {p["external_id"] for p in c.posts}
    assert all(x["parent_external_id"] in cats | {None} for x in c.categories)
    assert all(h["brand_external_id"] in brands | {None} for h in c.hubs)
    assert all(p["brand_external_id"] in brands and p["category_external_id"] in cats
               for p in c.products)
    assert all(d["customer_external_id"] in customers for d in c.devices)
    assert all(o["customer_external_id"] in customers
               and o["device_external_id"] in devices | {None} for o in c.orders)
    assert all(x["order_external_id"] in orders and x["sku"] in skus for x in c.order_lines)
    assert all(r["customer_external_id"] in customers and r["order_external_id"] in orders
               and r["sku"] in skus for r in c.reviews)
    assert all(k["customer_external_id"] in customers and k["hub_external_id"] in hubs | {None}
               for k in c.creators)
    assert all(p["author_customer_external_id"] in customers and p["sku"] in skus | {None}
               and p["hub_external_id"] in hubs | {None} for p in c.posts)
    assert all(m["post_external_id"] in posts and m["customer_external_id"] in customers
               for m in c.comments)


def test_ids_are_unique(community: Community) -> None:
    for name, key in (("customers", "external_id"), ("devices", "external_id"),
                      ("orders", "external_id"), ("products", "sku"), ("posts", "external_id"),
                      ("reviews", "external_id"), ("comments", "external_id"),
                      ("creators", "external_id"), ("customers", "nickname")):
        values = [r[key] for r in getattr(community, name)]
        assert len(values) == len(set(values)), name


def test_order_totals_are_exact_integer_fen(community: Community) -> None:
    subtotal: dict[str, int] = defaultdict(int)
    for line in community.order_lines:
        assert isinstance(line["unit_price_fen"], int)
        assert line["quantity"] >= 1
        subtotal[line["order_external_id"]] += line["quantity"] * line["unit_price_fen"]
    for order in community.orders:
        assert order["total_fen"] == subtotal[order["external_id"]] - order["discount_fen"]
        assert order["total_fen"] > 0
        assert order["discount_fen"] >= 0
        assert (order["discount_fen"] > 0) == (order["coupon_code"] is not None)
    prices = [p["price_fen"] for p in community.products]
    assert all(isinstance(p, int) for p in prices)
    assert 990 <= min(prices) < 5_000
    assert 50_000 < max(prices) <= 299_900


def test_status_timestamps_are_consistent(community: Community) -> None:
    seen = Counter(o["status"] for o in community.orders)
    assert set(seen) <= STATUSES
    assert {"completed", "cancelled", "refunded", "shipped"} <= set(seen)
    for o in community.orders:
        paid, shipped, done = o["paid_at"], o["shipped_at"], o["completed_at"]
        assert o["created_at"].tzinfo is not None
        assert o["created_at"] < community.end
        if o["status"] in ("created", "cancelled"):
            assert (paid, shipped, done, o["refunded_at"]) == (None, None, None, None)
            assert (o["cancelled_at"] is not None) == (o["status"] == "cancelled")
            continue
        assert o["cancelled_at"] is None
        assert o["created_at"] < paid <= community.end
        if o["status"] == "completed":
            assert paid < shipped < done <= community.end
            assert o["refunded_at"] is None
        elif o["status"] == "refunded":
            assert done is None
            assert paid < o["refunded_at"]
            assert shipped is None or shipped < o["refunded_at"]
        elif o["status"] == "shipped":
            assert paid < shipped
            assert done is None
        else:
            assert (shipped, done) == (None, None)


def test_reviews_follow_delivery(community: Community) -> None:
    orders = {o["external_id"]: o for o in community.orders}
    lines = {(x["order_external_id"], x["sku"]) for x in community.order_lines}
    for r in community.reviews:
        order = orders[r["order_external_id"]]
        assert (r["order_external_id"], r["sku"]) in lines
        assert order["status"] in ("completed", "refunded")
        assert order["shipped_at"] is not None
        assert order["shipped_at"] < r["created_at"] < community.end
        assert order["customer_external_id"] == r["customer_external_id"]
        assert 1 <= r["rating"] <= 5


def test_content_follows_its_authors(community: Community) -> None:
    registered = {c["external_id"]: c["registered_at"] for c in community.customers}
    posts = {p["external_id"]: p for p in community.posts}
    assert all(registered[p["author_customer_external_id"]] <= p["created_at"]
               for p in community.posts)
    for m in community.comments:
        assert posts[m["post_external_id"]]["created_at"] < m["created_at"] < community.end
        assert registered[m["customer_external_id"]] < m["created_at"]
    assert Counter(p["content_type"] for p in community.posts).keys() == {
        "knowledge", "scenario", "review", "story"}
    assert all(p["sku"] is not None for p in community.posts if p["content_type"] == "review")


# --- events --------------------------------------------------------------------------------------

def test_event_schema_and_ids(community: Community, events: pa.Table) -> None:
    assert events.schema.equals(EVENT_SCHEMA)
    assert events.schema.names == ["event_id", "name", "ts", "customer_id", "anonymous_id",
                                   "session_id", "device_id", "page", "referrer", "channel",
                                   "properties", "x", "y", "dwell_ms"]
    ids = events.column("event_id").to_pylist()
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 36 for i in ids)
    assert all(i.count("-") == 4 for i in ids[:100])
    assert set(events.column("name").to_pylist()) == EVENT_NAMES
    channels = {"app", "wechat_mini", "h5", "douyin", "web"}
    assert set(events.column("channel").to_pylist()) == channels
    ts = events.column("ts").to_pylist()
    assert community.start <= min(ts)
    assert max(ts) < community.end


def test_chunking_does_not_change_events(events: pa.Table, community: Community) -> None:
    whole = pa.concat_tables(list(community.events(chunk_rows=1_000_000)))
    assert whole.equals(events)


def test_event_fields_by_name(rows: list[dict[str, Any]], community: Community) -> None:
    skus = {p["sku"] for p in community.products}
    customers = {c["external_id"] for c in community.customers} | {None}
    devices = {d["external_id"] for d in community.devices} | {None}
    posts = {p["external_id"]: p["created_at"] for p in community.posts}
    for e in rows:
        props = json.loads(e["properties"])
        assert e["customer_id"] in customers
        assert e["device_id"] in devices
        if "post_id" in props:
            assert posts[props["post_id"]] <= e["ts"]
        clicked = e["name"] == "click"
        assert (e["x"] is not None) == clicked
        assert (e["y"] is not None) == clicked
        if clicked:
            assert 0.0 <= e["x"] <= 1.0
            assert 0.0 <= e["y"] <= 1.0
        has_dwell = e["name"] in ("page_view", "product_view", "post_view")
        assert (e["dwell_ms"] is not None) == has_dwell
        assert e["customer_id"] is not None or e["anonymous_id"] is not None
        assert e["customer_id"] is not None or e["device_id"] is None
        if e["name"] in ("product_view", "add_to_cart"):
            assert props["sku"] in skus
            assert e["page"] == f"/product/{props['sku']}"
        if e["name"] in ("post_view", "like", "share", "comment"):
            assert e["page"] == f"/post/{props['post_id']}"
        if e["name"] in ("checkout", "payment", "like", "comment"):
            assert e["customer_id"] is not None
    dwell = sorted(e["dwell_ms"] for e in rows if e["dwell_ms"] is not None)
    assert dwell[len(dwell) // 2] * 8 < dwell[int(len(dwell) * 0.99)]  # heavy tail


def test_sessions_are_split_by_30_minute_gaps(rows: list[dict[str, Any]]) -> None:
    by_session: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in rows:
        by_session[e["session_id"]].append(e)
    spans: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for events in by_session.values():
        times = sorted(e["ts"] for e in events)
        assert all(b - a < GAP for a, b in pairwise(times))
        assert len({e["channel"] for e in events}) == 1
        owners = {e["customer_id"] for e in events if e["customer_id"]}
        assert len(owners) <= 1
        if owners:
            spans[owners.pop()].append((times[0], times[-1]))
    for windows in spans.values():
        windows.sort()
        assert all(b[0] - a[1] > GAP for a, b in pairwise(windows))


def test_funnel_drop_off(events: pa.Table) -> None:
    names = Counter(events.column("name").to_pylist())
    views, carts = names["product_view"], names["add_to_cart"]
    checkouts, payments = names["checkout"], names["payment"]
    assert 0.25 <= carts / views <= 0.35
    assert 0.50 <= checkouts / carts <= 0.65
    assert 0.70 <= payments / checkouts <= 0.85


def test_orders_and_purchase_events_agree(rows: list[dict[str, Any]],
                                          community: Community) -> None:
    checkouts = {json.loads(e["properties"])["order_id"]: e
                 for e in rows if e["name"] == "checkout"}
    payments: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in rows:
        if e["name"] == "payment":
            payments[json.loads(e["properties"])["order_id"]].append(e)
    assert len(checkouts) == len(community.orders)
    for o in community.orders:
        check = checkouts[o["external_id"]]
        assert check["ts"] == o["created_at"]
        assert check["customer_id"] == o["customer_external_id"]
        assert check["device_id"] == o["device_external_id"]
        assert check["channel"] == o["channel"]
        if o["paid_at"] is None:
            assert o["external_id"] not in payments
            continue
        (pay,) = payments[o["external_id"]]
        assert pay["ts"] == o["paid_at"]
        assert pay["customer_id"] == o["customer_external_id"]
        assert pay["session_id"] == check["session_id"]
        assert json.loads(pay["properties"])["amount_fen"] == o["total_fen"]


def test_anonymous_visitors_merge_by_login_and_signup(rows: list[dict[str, Any]],
                                                      community: Community) -> None:
    merges = [e for e in rows if e["name"] in ("login", "signup") and e["anonymous_id"]]
    assert sum(e["name"] == "login" for e in merges) >= 10
    anonymous_before = {e["anonymous_id"] for e in rows if e["customer_id"] is None}
    assert all(e["customer_id"] for e in merges)
    assert all(e["anonymous_id"] in anonymous_before for e in merges)
    registered = {c["external_id"]: c["registered_at"] for c in community.customers}
    signups = [e for e in rows if e["name"] == "signup"]
    new = [c for c in community.customers if c["registered_at"] >= community.start]
    assert len(signups) == len(new)
    assert len(new) > 100
    assert all(e["ts"] == registered[e["customer_id"]] for e in signups)
    assert all(e["ts"] >= registered[e["customer_id"]] for e in rows if e["customer_id"])


def test_daily_and_weekly_rhythm(rows: list[dict[str, Any]], community: Community) -> None:
    hours = Counter(e["ts"].astimezone(SHANGHAI).hour for e in rows)
    assert hours[3] + hours[4] < 0.15 * (hours[20] + hours[21])
    assert hours[15] < hours[12] < hours[21]
    per_day = Counter(e["ts"].astimezone(SHANGHAI).date() for e in rows)
    ordinary = {d: n for d, n in per_day.items() if (d.month, d.day) not in PROMO_DAYS}
    weekend = statistics.mean(n for d, n in ordinary.items() if d.weekday() >= 5)
    weekday = statistics.mean(n for d, n in ordinary.items() if d.weekday() < 4)
    assert weekend > 1.12 * weekday
    assert per_day[datetime(2026, 11, 11).date()] > 1.5 * weekday  # 双十一


def test_spend_is_heavy_tailed_with_repeat_buyers(community: Community) -> None:
    spend: Counter[str] = Counter()
    count: Counter[str] = Counter()
    for o in community.orders:
        if o["paid_at"] is not None:
            spend[o["customer_external_id"]] += o["total_fen"]
            count[o["customer_external_id"]] += 1
    ranked = sorted(spend.values(), reverse=True)
    assert sum(ranked[: len(ranked) // 10]) > 0.35 * sum(ranked)
    repeat = sum(1 for n in count.values() if n >= 2) / len(count)
    assert 0.5 <= repeat <= 0.8


# --- planted phenomena -------------------------------------------------------------------------

def test_payment_drop_on_two_days(rows: list[dict[str, Any]], community: Community) -> None:
    planted = community.planted["payment_drop"]
    assert planted["day_indexes"] == [64, 65]
    steps: dict[str, Counter[int]] = defaultdict(Counter)
    for e in rows:
        steps[e["name"]][_local_day(e["ts"], community)] += 1
    ratio = {d: steps["payment"][d] / steps["checkout"][d] for d in steps["checkout"]}
    usual = statistics.median(r for d, r in ratio.items() if d not in (64, 65))
    days = (64, 65)
    dropped = sum(steps["payment"][d] for d in days) / sum(steps["checkout"][d] for d in days)
    assert dropped < 0.6 * usual
    assert min(ratio[64], ratio[65]) < min(r for d, r in ratio.items() if d not in (64, 65)) + 0.1
    carts = {d: steps["checkout"][d] / steps["add_to_cart"][d] for d in steps["add_to_cart"]}
    usual_carts = statistics.median(carts.values())
    assert all(abs(carts[d] - usual_carts) < 0.3 for d in (64, 65))  # earlier steps normal


def test_coupon_ring_shares_devices_addresses_and_account(community: Community) -> None:
    ring = community.planted["coupon_ring"]
    members = set(ring["customer_external_ids"])
    assert len(members) == ring["members"] == 30
    registered = [c["registered_at"] for c in community.customers if c["external_id"] in members]
    assert max(registered) - min(registered) <= timedelta(days=3)
    orders = [o for o in community.orders if o["customer_external_id"] in members]
    assert len(orders) >= 30
    assert {o["coupon_code"] for o in orders} == {ring["coupon_code"]}
    assert all(o["total_fen"] < 10_000 for o in orders)
    bad = sum(o["status"] in ("cancelled", "refunded") for o in orders)
    assert bad >= 0.4 * len(orders)
    assert {o["device_external_id"] for o in orders} == set(ring["device_external_ids"])
    assert len(ring["device_external_ids"]) <= 4
    assert {o["shipping_address"] for o in orders} <= set(ring["shipping_addresses"])
    assert len(ring["shipping_addresses"]) == 2
    prefix = ring["payment_account_prefix"]
    assert all(o["payment_account"].startswith(prefix) for o in orders)
    others = [o for o in community.orders if o["customer_external_id"] not in members]
    assert not any(o["payment_account"].startswith(prefix) for o in others)
    per_device: dict[str, set[str]] = defaultdict(set)
    per_address: dict[str, set[str]] = defaultdict(set)
    for o in community.orders:
        per_device[o["device_external_id"]].add(o["customer_external_id"])
        per_address[o["shipping_address"]].add(o["customer_external_id"])
    shared = {d for d, who in per_device.items() if d and len(who) > 1}
    assert shared == set(ring["device_external_ids"])
    assert {a for a, who in per_address.items() if len(who) > 1} == set(ring["shipping_addresses"])


def test_negative_review_burst(community: Community) -> None:
    burst = community.planted["review_burst"]
    assert burst["count"] == SIZES["small"].burst_reviews == 16
    negative: Counter[int] = Counter()
    for r in community.reviews:
        if r["sku"] == burst["sku"] and r["rating"] <= 2:
            negative[_local_day(r["created_at"], community)] += 1
    in_burst = negative[45] + negative[46]
    assert in_burst >= burst["count"]
    assert max((n for d, n in negative.items() if d not in (45, 46)), default=0) <= 2
    assert in_burst / 2 > 5 * max(burst["baseline_reviews_per_day"], 0.2)
    ids = set(burst["review_external_ids"])
    texts = [r["text"] for r in community.reviews if r["external_id"] in ids]
    assert len(texts) == burst["count"]
    markers = ("过敏", "红", "刺痛", "痒", "肿", "批")
    assert sum(any(m in t for m in markers) for t in texts) >= 0.8 * len(texts)


def test_lapsing_customers_go_silent(rows: list[dict[str, Any]], community: Community) -> None:
    lapsing = community.planted["lapsing_customers"]
    ids = set(lapsing["customer_external_ids"])
    assert len(ids) == lapsing["count"] == 10
    cutoff = lapsing["cutoff"]
    assert cutoff == community.start + timedelta(days=60)
    before: Counter[str] = Counter()
    spend: Counter[str] = Counter()
    for o in community.orders:
        who = o["customer_external_id"]
        if o["paid_at"] is not None and o["created_at"] < cutoff:
            spend[who] += o["total_fen"]
        if who in ids:
            assert o["created_at"] < cutoff
            before[who] += 1
    assert min(before[c] for c in ids) >= 6
    assert not [e for e in rows if e["customer_id"] in ids and e["ts"] >= cutoff]
    assert not [x for x in community.reviews + community.comments + community.posts
                if x.get("customer_external_id", x.get("author_customer_external_id")) in ids
                and x["created_at"] >= cutoff]
    ranked = sorted(spend, key=lambda c: -spend[c])
    percentile = sorted(1 - ranked.index(c) / len(ranked) for c in ids if c in spend)
    assert len(percentile) == len(ids)
    assert statistics.median(percentile) > 0.7  # high-value before they went silent
    assert sum(p > 0.5 for p in percentile) >= 0.8 * len(ids)


def test_near_duplicate_posts(community: Community) -> None:
    planted = community.planted["near_duplicate_posts"]
    posts = {p["external_id"]: p for p in community.posts}
    pairs = [(p["post_external_id"], p["source_post_external_id"]) for p in planted["pairs"]]
    assert len(pairs) == planted["count"] == round(0.03 * len(community.posts))
    for dup, src in pairs:
        a, b = posts[dup], posts[src]
        assert a["body"] != b["body"]
        assert a["author_customer_external_id"] != b["author_customer_external_id"]
        assert a["created_at"] > b["created_at"]
        assert _jaccard(a["body"], b["body"]) > 0.7
    planted_set = {frozenset(p) for p in pairs}
    bodies = [(p["external_id"], p["body"]) for p in community.posts]
    for i, (pa_id, a) in enumerate(bodies):
        for pb_id, b in bodies[i + 1:]:
            if frozenset((pa_id, pb_id)) not in planted_set:
                assert _jaccard(a, b) < 0.6, (pa_id, pb_id)


# --- text ----------------------------------------------------------------------------------------

def test_texts_are_chinese_and_varied(community: Community) -> None:
    texts = ([r["text"] for r in community.reviews] + [p["body"] for p in community.posts]
             + [p["title"] for p in community.posts] + [m["text"] for m in community.comments])
    assert statistics.mean(_cjk_share(t) for t in texts) > 0.9
    assert all(_cjk_share(b["name"]) > 0.5 for b in community.brands)
    reviews = [r["text"] for r in community.reviews]
    assert len(set(reviews)) > 0.9 * len(reviews)
    assert len({p["title"] for p in community.posts}) > 0.8 * len(community.posts)
    assert all(len(p["body"]) > 60 for p in community.posts)


def _markers(bank: dict[str, dict[str, tuple[str, ...]]]) -> set[str]:
    return {phrase.split("{")[0][:6] for by_top in bank.values() for phrases in by_top.values()
            for phrase in phrases if len(phrase.split("{")[0]) >= 5}


def test_review_tone_matches_rating(community: Community) -> None:
    positive, negative = _markers(POSITIVE), _markers(NEGATIVE)
    burst = set(community.planted["review_burst"]["review_external_ids"])
    for r in community.reviews:
        text = r["text"]
        if r["rating"] == 5:
            assert not any(m in text for m in negative), text
        if r["rating"] <= 2:
            assert not any(m in text for m in positive), text
            assert r["external_id"] in burst or any(m in text for m in negative), text
    low = [r for r in community.reviews if r["rating"] <= 2 and r["external_id"] not in burst]
    assert 0.05 * len(community.reviews) < len(low) < 0.25 * len(community.reviews)
    aspects = {"质量", "价格", "物流", "客服", "成分", "外观", "尺码", "效果"}
    mentioned = {a for a in aspects for by_top in (POSITIVE[a], NEGATIVE[a])
                 for phrases in by_top.values() for p in phrases
                 if any(p.split("{")[0][:6] in r["text"] for r in community.reviews)}
    assert mentioned == aspects
