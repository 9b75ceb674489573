"""The runner cases that must answer the same on DuckDB, PostgreSQL and PySpark, and the
deterministic event stream they run on.

:func:`event_stream` draws a few thousand events of a small shop from a seeded
``random.Random``: known customers, anonymous visitors and visitors who log in (an event
carrying both ids links them), sessions crossing midnight in Asia/Shanghai, events at the
same instant (ordered by ``event_id``, which is random with respect to time), gaps of exactly
and just over 30 minutes, several channels and devices, clicks with ``x``/``y``, ``dwell_ms``
on views, and ``properties`` JSON with ``sku``/``element``/``amount_fen``. Rows come back
shuffled, so arrival order is not time order.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

import pyarrow as pa

from shequ.analytics.dwell import DwellQuery, DwellRunner
from shequ.analytics.funnels import FunnelQuery, FunnelRunner
from shequ.analytics.heatmaps import HeatmapQuery, HeatmapRunner
from shequ.analytics.paths import PathsQuery, PathsRunner
from shequ.analytics.retention import RetentionQuery, RetentionRunner
from shequ.analytics.runner import AnalyticsQuery, QueryRunner
from shequ.analytics.sessions import SessionsQuery, SessionsRunner
from shequ.analytics.trends import TrendsQuery, TrendsRunner

SEED = 20261120
FIRST_DAY = date(2026, 11, 19)
DAYS = 4
RANGE = {"date_from": date(2026, 11, 20), "date_to": date(2026, 11, 21)}
EVERY_DAY = {"date_from": FIRST_DAY, "date_to": date(2026, 11, 22)}
SHANGHAI_MIDNIGHT_UTC = 16
CHANNELS = ("app", "wechat_mini", "h5", "douyin", "web")
DEVICE_KINDS = ("ios", "android", "pc")
SEGMENTS = ("vip", "new")
ELEMENTS = (
    "banner",
    "feed_card",
    "buy_button",
    "tab_bar",
    "search_box",
    "like_button",
    "购买按钮",
    'say "hi"',
)
SKUS = tuple(f"SK1000{i:02d}" for i in range(1, 31))
QUANTILE_TOLERANCE = 1e-12
BROWSE = ("page_view", "search", "post_view", "like", "comment", "share", "click")


class Case(NamedTuple):
    """One runner on one query; ``tolerance`` is the relative float tolerance (0 = exact).

    Only plans that do float arithmetic in the database need one: an interpolated quantile
    or a mean may differ in the last bits between backends.
    """

    id: str
    runner: type[QueryRunner[Any, Any]]
    query: AnalyticsQuery
    tolerance: float = 0.0


CASES: list[Case] = [
    Case("funnel-ordered", FunnelRunner, FunnelQuery(
        steps=["product_view", "add_to_cart", "checkout", "payment"],
        window=timedelta(days=1), **RANGE)),
    Case("funnel-strict", FunnelRunner, FunnelQuery(
        steps=["page_view", "product_view", "add_to_cart"], order="strict",
        window=timedelta(minutes=30), **RANGE)),
    Case("funnel-any-order", FunnelRunner, FunnelQuery(
        steps=["search", "product_view", "add_to_cart"], order="any_order",
        window=timedelta(hours=2), **RANGE)),
    Case("funnel-repeated-step-utc", FunnelRunner, FunnelQuery(
        steps=["product_view", "product_view", "add_to_cart"], window=timedelta(hours=1),
        tz="UTC", **RANGE)),
    Case("funnel-breakdown-channel", FunnelRunner, FunnelQuery(
        steps=["product_view", "add_to_cart", "checkout"], breakdown="channel",
        window=timedelta(hours=6), **RANGE)),
    Case("sessions", SessionsRunner, SessionsQuery(**RANGE)),
    Case("sessions-utc-one-day", SessionsRunner, SessionsQuery(
        date_from=date(2026, 11, 20), date_to=date(2026, 11, 20), tz="UTC")),
    Case("trends-count-day-breakdown", TrendsRunner, TrendsQuery(
        event="product_view", breakdown="channel", **EVERY_DAY)),
    Case("trends-persons-hour-filtered", TrendsRunner, TrendsQuery(
        event="page_view", measure="unique_persons", interval="hour",
        devices=["ios", "android"], segment="vip", **RANGE)),
    Case("trends-sum-week-utc", TrendsRunner, TrendsQuery(
        event="payment", measure="sum", property="amount_fen", interval="week", tz="UTC",
        channels=["app", "web", "h5"], **EVERY_DAY)),
    Case("retention-day", RetentionRunner, RetentionQuery(periods=4, **EVERY_DAY)),
    Case("retention-day-events", RetentionRunner, RetentionQuery(
        start_event="product_view", return_event="payment", periods=3, **EVERY_DAY)),
    Case("retention-week", RetentionRunner, RetentionQuery(
        period="week", periods=1, channels=["app", "h5"], **EVERY_DAY)),
    Case("paths-template", PathsRunner, PathsQuery(**RANGE)),
    Case("paths-from-home-exact", PathsRunner, PathsQuery(
        start_page="/home", page_grouping="exact", depth=4, **RANGE)),
    Case("paths-into-checkout", PathsRunner, PathsQuery(
        end_page="/checkout", min_count=2, channels=["app", "wechat_mini", "douyin"], **RANGE)),
    Case("dwell-page-template", DwellRunner, DwellQuery(**RANGE), QUANTILE_TOLERANCE),
    Case("dwell-content-type-filtered", DwellRunner, DwellQuery(
        by="content_type", devices=["pc"], limit=2, **EVERY_DAY), QUANTILE_TOLERANCE),
    Case("heatmap-home", HeatmapRunner, HeatmapQuery(page="/home", bins=10, **EVERY_DAY)),
    Case("heatmap-product-template", HeatmapRunner, HeatmapQuery(
        page="/product/*", segment="new", **EVERY_DAY)),
]  # fmt: skip


@dataclass
class Stream:
    """Event rows (``EVENT_SCHEMA`` keys) and the dimension tables that go with them."""

    rows: list[dict[str, Any]]
    dim_devices: pa.Table
    dim_products: pa.Table
    segment_members: pa.Table


@dataclass
class _Person:
    key: str
    customer_id: str | None
    anonymous_id: str | None
    device_id: str | None
    channels: tuple[str | None, ...]
    logs_in: bool


def event_stream(seed: int = SEED, persons: int = 200) -> Stream:
    """A deterministic random stream of a few thousand events over local days
    ``FIRST_DAY .. FIRST_DAY + DAYS - 1`` (rows shuffled)."""
    rng = random.Random(seed)
    people = [_person(rng, i) for i in range(persons)]
    rows: list[dict[str, Any]] = []
    for person in people:
        anonymous = person.logs_in
        for visit in range(rng.randint(1, 4)):
            known = person.customer_id is not None and not anonymous
            login = person.logs_in and anonymous and (visit >= 1 or rng.random() < 0.3)
            rows.extend(_session(rng, person, _session_start(rng), known, login))
            anonymous = anonymous and not login
    ids = rng.sample(range(16**8), len(rows))
    for row, number in zip(rows, ids, strict=True):
        row["event_id"] = f"{number:08x}"
    rng.shuffle(rows)
    devices = sorted({p.device_id for p in people if p.device_id is not None})
    customers = sorted({p.customer_id for p in people if p.customer_id is not None})
    return Stream(
        rows=rows,
        dim_devices=pa.table({"device_id": devices,
                              "kind": [rng.choice(DEVICE_KINDS) for _ in devices]}),
        dim_products=pa.table({"sku": list(SKUS),
                               "brand_id": [f"b{i % 7}" for i in range(len(SKUS))],
                               "category_id": [f"cat{i % 4}" for i in range(len(SKUS))]}),
        segment_members=pa.table({
            "segment": [SEGMENTS[i % 2] for i in range(len(customers))],
            "customer_id": customers,
        }),
    )  # fmt: skip


def _person(rng: random.Random, index: int) -> _Person:
    kind = rng.choices(["customer", "visitor", "converts"], weights=[6, 2, 2])[0]
    channels: tuple[str | None, ...] = tuple(rng.sample(CHANNELS, rng.choice([1, 1, 2])))
    if rng.random() < 0.08:
        channels = (*channels, None)
    return _Person(
        key=f"p{index:03d}",
        customer_id=f"c{index:04d}" if kind != "visitor" else None,
        anonymous_id=f"anon-{index:04d}" if kind != "customer" else None,
        device_id=f"d{index:04d}" if kind != "visitor" and rng.random() < 0.9 else None,
        channels=channels,
        logs_in=kind == "converts",
    )


def _session_start(rng: random.Random) -> datetime:
    day = datetime.combine(FIRST_DAY, datetime.min.time(), UTC) + timedelta(
        days=rng.randrange(-1, DAYS)
    )
    if rng.random() < 0.3:
        midnight = day + timedelta(hours=SHANGHAI_MIDNIGHT_UTC)
        return midnight - timedelta(seconds=rng.randrange(1, 2400))
    return day + timedelta(seconds=rng.randrange(86_400), milliseconds=rng.randrange(1000))


def _gap(rng: random.Random) -> timedelta:
    roll = rng.random()
    if roll < 0.08:
        return timedelta(0)
    if roll < 0.11:
        return timedelta(minutes=30)
    if roll < 0.13:
        return timedelta(minutes=30, microseconds=1000)
    if roll < 0.16:
        return timedelta(minutes=rng.randint(31, 90))
    return timedelta(seconds=rng.randint(1, 240), milliseconds=rng.randrange(1000))


def _names(rng: random.Random, login: bool) -> list[str]:
    if rng.random() < 0.22:
        return [rng.choice(("page_view", "product_view", "search"))]
    names = ["page_view"]
    for _ in range(rng.randint(1, 8)):
        names.append(rng.choice(BROWSE) if rng.random() < 0.4 else "product_view")
        if names[-1] == "product_view" and rng.random() < 0.35:
            names.append("add_to_cart")
    if login:
        names.insert(rng.randrange(1, len(names) + 1), "login")
    if "add_to_cart" in names and rng.random() < 0.6:
        names.append("checkout")
        if rng.random() < 0.75:
            names.append("payment")
    return names


def _session(rng: random.Random, person: _Person, start: datetime, known: bool,
             login: bool) -> list[dict[str, Any]]:  # fmt: skip
    channel = rng.choice(person.channels)
    ts = start
    sku = rng.choice(SKUS)
    rows = []
    for name in _names(rng, login):
        row: dict[str, Any] = {"name": name, "ts": ts, "channel": channel,
                               "session_id": f"s-{person.key}-{start:%d%H%M%S}"}  # fmt: skip
        if known or (name == "login" and person.customer_id is not None):
            row["customer_id"] = person.customer_id
            row["device_id"] = person.device_id
        if not known and person.anonymous_id is not None:
            row["anonymous_id"] = person.anonymous_id
        if login and name == "login":
            known = True
        if name == "product_view":
            sku = rng.choice(SKUS)
        row.update(_details(rng, name, sku))
        rows.append(row)
        ts += _gap(rng)
    return rows


def _position(rng: random.Random) -> float:
    return rng.choice((0.0, 1.0)) if rng.random() < 0.1 else round(rng.random(), 4)


def _details(rng: random.Random, name: str, sku: str) -> dict[str, Any]:
    amount = rng.randrange(990, 299_900)
    properties: dict[str, Any] = {
        "product_view": {"sku": sku},
        "add_to_cart": {"sku": sku, "quantity": rng.randint(1, 3), "price_fen": amount},
        "checkout": {"order_id": f"o{rng.randrange(10**6):06d}", "amount_fen": amount},
        "payment": {"order_id": f"o{rng.randrange(10**6):06d}", "amount_fen": amount,
                    "method": rng.choice(("alipay", "wxpay"))},
        "click": {"element": rng.choice(ELEMENTS)},
        "search": {"query": rng.choice(("面霜", "防晒", "口红"))},
        "login": {"method": rng.choice(("sms", "wechat", "password"))},
    }.get(name, {})  # fmt: skip
    page = {
        "product_view": f"/product/{sku}", "add_to_cart": f"/product/{sku}",
        "checkout": "/checkout", "payment": "/pay", "search": "/search", "login": "/login",
        "post_view": f"/post/p{rng.randrange(40):03d}", "like": "/post/p001",
        "comment": "/post/p002", "share": "/post/p003",
        "click": rng.choice(("/home", "/cart", f"/product/{sku}")),
    }.get(name, rng.choice(("/home", "/cart", "/me", "/category/beauty")))  # fmt: skip
    details: dict[str, Any] = {
        "page": page,
        "properties": json.dumps(properties, ensure_ascii=False),
    }
    if name == "click":
        details["x"], details["y"] = _position(rng), _position(rng)
    if name in ("page_view", "product_view", "post_view") and rng.random() < 0.75:
        details["dwell_ms"] = min(int(rng.paretovariate(1.3) * 1500), 86_400_000)
    return details
