"""The 18 core metrics on hand-written journeys (DuckDB and PostgreSQL), against a brute-force
reference on random event streams, stored by ``refresh``, and on the small demo."""

from __future__ import annotations

import json
import math
import random
import statistics
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import ibis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from journeys import (  # the two fixtures are used by name: pg_url, store
    ingest_rows,
    journeys_for,
    open_store,
    pg_url_fixture,  # noqa: F401
    store_fixture,  # noqa: F401
)

from shequ.analytics.metric_values import Grain, read_values
from shequ.analytics.metrics import FAMILIES, METRICS, compute, plan, refresh
from shequ.analytics.store import EventStore
from shequ.core.errors import ValidationFailed
from shequ.demo.generator import generate

DAY = date(2026, 11, 20)
SHANGHAI = "Asia/Shanghai"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
Values = dict[str, list[float | None]]


def at(clock: str, day: int = 20, month: int = 11) -> str:
    """An Asia/Shanghai wall-clock instant in 2026."""
    return f"2026-{month:02d}-{day:02d}T{clock}+08:00"


def ev(name: str, clock: str, day: int = 20, month: int = 11, **fields: Any) -> dict[str, Any]:
    return {"event": name, "ts": at(clock, day, month), **fields}


def table(store: EventStore, grain: Grain = "day", day_from: date = DAY,
          day_to: date | None = None, tz: str = SHANGHAI, **options: Any) -> Values:
    """Values per metric, one per bucket in order."""
    found: Values = {}
    for value in compute(store, grain, day_from, day_to or day_from, tz, **options):
        found.setdefault(value.metric, []).append(value.value)
    return found


def day(store: EventStore, **options: Any) -> dict[str, float | None]:
    """The metrics of DAY."""
    return {name: values[0] for name, values in table(store, **options).items()}


def hours(store: EventStore, *indexes: int) -> list[dict[str, float | None]]:
    """The metrics of the hours ``indexes`` (local) of DAY."""
    every = table(store, "hour")
    return [{name: values[index] for name, values in every.items()} for index in indexes]


# --- the catalogue ---------------------------------------------------------------------------


def test_eighteen_metrics_in_four_families_all_documented() -> None:
    assert len(METRICS) == 18
    assert list(FAMILIES) == ["traffic", "content", "conversion", "churn"]
    per_family = [[m.name for m in METRICS.values() if m.family == f] for f in FAMILIES]
    assert [len(names) for names in per_family] == [5, 4, 5, 4]
    assert [name for names in per_family for name in names] == list(METRICS)  # contiguous
    assert {m.unit for m in METRICS.values()} <= {"count", "rate", "seconds", "fen", "ratio"}
    lower_better = {m.name for m in METRICS.values() if not m.higher_is_better}
    assert lower_better == {"bounce_rate", "period_churn_rate"}
    text = DOCS.read_text(encoding="utf-8")
    for metric in METRICS.values():
        assert f"`{metric.name}`" in text
        assert metric.label_zh in text


# --- traffic, content and conversion counts ------------------------------------------------------


def test_visitors_and_dwell_per_day_and_hour(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [ev("page_view", "10:00", dwell_ms=4000), ev("product_view", "10:10", dwell_ms=1000),
               ev("click", "10:20", dwell_ms=9000), ev("post_view", "11:05", dwell_ms=3000)],
        "c2": [ev("page_view", "10:30")],
        "c3": [ev("search", "15:00")],
    })  # fmt: skip
    whole = day(store)
    assert whole["visitors"] == 3.0
    assert whole["avg_dwell_seconds"] == pytest.approx(8 / 3)
    ten, eleven, three_pm = hours(store, 10, 11, 15)
    assert (ten["visitors"], ten["avg_dwell_seconds"]) == (2.0, 2.5)
    assert (eleven["visitors"], eleven["avg_dwell_seconds"]) == (1.0, 3.0)
    assert (three_pm["visitors"], three_pm["avg_dwell_seconds"]) == (1.0, None)


def test_content_and_conversion_rates(store: EventStore) -> None:
    pay = '{"order_id": "o1", "amount_fen": 5000, "method": "wxpay"}'
    journeys_for(store, {
        "c1": [ev("post_view", "10:00"), ev("like", "10:01"), ev("share", "10:02"),
               ev("product_view", "10:03"), ev("add_to_cart", "10:04"),
               ev("checkout", "10:05", properties='{"amount_fen": 5000}'),
               ev("payment", "10:06", properties=pay)],
        "c2": [ev("post_view", "11:00"), ev("comment", "11:01"), ev("post_view", "11:02"),
               ev("product_view", "11:03"), ev("add_to_cart", "11:04"), ev("add_to_cart", "11:05"),
               ev("checkout", "11:06"), ev("payment", "11:07", properties='{"amount_fen":1999}')],
        "c3": [ev("product_view", "12:00"), ev("product_view", "12:01"), ev("checkout", "12:02"),
               ev("payment", "12:03", properties='{"method": "alipay"}')],
        "c4": [ev("post_view", "13:00"), ev("checkout", "13:05")],
    })  # fmt: skip
    whole = day(store)
    assert whole["post_views"] == 4.0
    assert whole["interaction_rate"] == 3 / 4
    assert whole["share_rate"] == 1 / 4
    assert whole["engaged_visitor_rate"] == 2 / 4
    assert whole["view_to_cart_rate"] == 3 / 4
    assert whole["cart_to_checkout_rate"] == 4 / 3  # event counts: a rate may exceed 1
    assert whole["payment_rate"] == 3 / 4
    assert whole["gmv_fen"] == 6999.0  # c3's payment names no amount
    [eleven] = hours(store, 11)
    assert (eleven["post_views"], eleven["interaction_rate"]) == (2.0, 0.5)
    assert eleven["share_rate"] == 0.0
    assert (eleven["view_to_cart_rate"], eleven["cart_to_checkout_rate"]) == (2.0, 0.5)
    assert (eleven["payment_rate"], eleven["gmv_fen"], eleven["engaged_visitor_rate"]) == (
        1.0, 1999.0, 1.0)  # fmt: skip


def test_zero_denominators_are_none_and_empty_buckets_are_zero(store: EventStore) -> None:
    journeys_for(store, {"c1": [ev("page_view", "10:00")]})
    whole = day(store)
    assert (whole["visitors"], whole["post_views"], whole["gmv_fen"]) == (1.0, 0.0, 0.0)
    for name in ("interaction_rate", "share_rate", "view_to_cart_rate", "cart_to_checkout_rate",
                 "payment_rate", "avg_dwell_seconds"):
        assert whole[name] is None, name
    assert whole["engaged_visitor_rate"] == 0.0
    assert whole["period_churn_rate"] is None  # nobody on the day before
    [quiet] = hours(store, 3)
    counts = {n for n, m in METRICS.items() if m.unit in ("count", "fen")}
    assert {n: v for n, v in quiet.items() if n in counts} == dict.fromkeys(counts, 0.0)
    assert all(v is None for n, v in quiet.items() if n not in counts)
    next_day = table(store, day_from=DAY, day_to=date(2026, 11, 21))
    assert next_day["visitors"] == [1.0, 0.0]
    assert next_day["period_churn_rate"] == [None, 1.0]
    assert next_day["bounce_rate"] == [1.0, None]


# --- sessions ----------------------------------------------------------------------------------


SESSION_JOURNEYS = {
    # one session 10:50 … 12:20 (no gap over 30 min); hour 10 counts it up to 11:30
    "c1": [ev("page_view", "10:50"), ev("product_view", "11:10"), ev("page_view", "11:25"),
           ev("post_view", "11:50"), ev("page_view", "12:15"), ev("payment", "12:20")],
    # starts in hour 9 and runs into hour 10
    "c2": [ev("page_view", "09:40"), ev("page_view", "10:05")],
    # a bounce at 10:20, then (30 min 1 s later) a paying session
    "c3": [ev("page_view", "10:20"), ev("page_view", "10:50:01"), ev("checkout", "11:00"),
           ev("payment", "11:10")],
    "c4": [ev("page_view", "10:40")],
    # exactly 30 minutes apart: one session
    "c5": [ev("page_view", "10:45"), ev("page_view", "11:15")],
    # starts on the day before and crosses local midnight
    "c6": [ev("page_view", "23:50", day=19), ev("page_view", "00:10")],
}


def test_sessions_are_counted_in_the_bucket_where_they_start(store: EventStore) -> None:
    journeys_for(store, SESSION_JOURNEYS)
    nine, ten, eleven = hours(store, 9, 10, 11)
    assert ten["sessions"] == 5.0
    assert ten["bounce_rate"] == 2 / 5
    assert ten["pages_per_session"] == 8 / 5
    assert ten["session_conversion_rate"] == 1 / 5  # c1 pays after 11:30
    assert eleven["sessions"] == 0.0
    assert eleven["bounce_rate"] is eleven["pages_per_session"] is None
    assert (nine["sessions"], nine["bounce_rate"], nine["pages_per_session"]) == (1.0, 0.0, 2.0)
    days = table(store, day_from=date(2026, 11, 19), day_to=DAY)
    assert days["sessions"] == [1.0, 6.0]
    assert days["bounce_rate"] == [0.0, 2 / 6]
    assert days["pages_per_session"] == [2.0, 12 / 6]
    assert days["session_conversion_rate"] == [0.0, 2 / 6]
    assert days["visitors"] == [1.0, 6.0]


def test_an_anonymous_visitor_who_logs_in_is_one_person(store: EventStore) -> None:
    journeys_for(store, {
        "c9": [ev("page_view", "09:00", day=1)],
        "a1": [ev("page_view", "10:00", anonymous_id="a1"),
               ev("login", "10:05", anonymous_id="a1", customer_id="c9"),
               ev("like", "10:06", customer_id="c9")],
        "a2": [ev("page_view", "10:00", anonymous_id="a2")],
    })  # fmt: skip
    whole = day(store)
    assert (whole["visitors"], whole["sessions"], whole["bounce_rate"]) == (2.0, 2.0, 0.5)
    assert whole["engaged_visitor_rate"] == 0.5
    assert (whole["returning_visitor_rate"], whole["new_visitor_rate"]) == (0.5, 0.5)


def test_local_midnight_in_shanghai(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [ev("page_view", "23:59:59", day=19)],
        "c2": [ev("page_view", "00:00:00")],
        "c3": [ev("page_view", "07:59:59")],
        "c4": [ev("page_view", "08:00:00")],
    })  # fmt: skip
    values = compute(store, "day", DAY, DAY, SHANGHAI, metrics=["visitors"])
    assert [(v.bucket_start, v.value) for v in values] == [
        (datetime(2026, 11, 19, 16, tzinfo=UTC), 3.0)]
    assert table(store, tz="UTC", day_from=date(2026, 11, 19), day_to=DAY,
                 metrics=["visitors"]) == {"visitors": [3.0, 1.0]}  # fmt: skip
    hourly = compute(store, "hour", DAY, DAY, SHANGHAI, metrics=["visitors"])
    assert len(hourly) == 24
    assert hourly[0].bucket_start == datetime(2026, 11, 19, 16, tzinfo=UTC)
    assert [v.value for v in hourly][:9] == [1.0, 0, 0, 0, 0, 0, 0, 1.0, 1.0]


def test_hours_and_days_across_a_daylight_saving_change(store: EventStore) -> None:
    ingest_rows(store, [
        {"event_id": "e1", "name": "page_view", "customer_id": "c1",
         "ts": datetime(2026, 10, 25, 0, 30, tzinfo=UTC)},   # 02:30 summer time
        {"event_id": "e2", "name": "page_view", "customer_id": "c2",
         "ts": datetime(2026, 10, 25, 1, 30, tzinfo=UTC)},   # 02:30 winter time
        {"event_id": "e3", "name": "page_view", "customer_id": "c3",
         "ts": datetime(2026, 10, 25, 22, 59, tzinfo=UTC)},  # 23:59 winter time
        {"event_id": "e4", "name": "page_view", "customer_id": "c4",
         "ts": datetime(2026, 10, 24, 21, 59, tzinfo=UTC)},  # 23:59 the day before
    ])  # fmt: skip
    berlin = "Europe/Berlin"
    hourly = compute(store, "hour", date(2026, 10, 25), date(2026, 10, 25), berlin,
                    metrics=["visitors"])  # fmt: skip
    days = compute(store, "day", date(2026, 10, 24), date(2026, 10, 26), berlin,
                   metrics=["visitors"])  # fmt: skip
    assert len(hourly) == 25
    assert {v.bucket_start.hour: v.value for v in hourly if v.value} == {0: 1.0, 1: 1.0, 22: 1.0}
    assert [(v.bucket_start, v.value) for v in days] == [
        (datetime(2026, 10, 23, 22, tzinfo=UTC), 1.0),
        (datetime(2026, 10, 24, 22, tzinfo=UTC), 3.0),
        (datetime(2026, 10, 25, 23, tzinfo=UTC), 0.0),
    ]  # fmt: skip


# --- churn -------------------------------------------------------------------------------------


def test_returning_reactivated_and_new_at_the_30_and_90_day_edges(store: EventStore) -> None:
    today = ev("page_view", "12:00")
    journeys_for(store, {
        "r1": [ev("page_view", "00:00:00", day=21, month=10), today],  # exactly 30 days
        "r2": [ev("page_view", "23:59", day=19), today],
        "r3": [ev("page_view", "10:00", day=11, month=10), ev("page_view", "10:00", day=10),
               today],  # the latest earlier event decides
        "h1": [ev("page_view", "12:00", day=21, month=10), today],  # 29.5 days
        "a1": [ev("page_view", "23:59:59", day=20, month=10), today],  # 30 days and 1 s
        "a2": [ev("page_view", "00:00:00", day=22, month=8), today],  # exactly 90 days
        "n1": [ev("page_view", "23:59:59", day=21, month=8), today],  # 90 days and 1 s
        "n2": [today],
    })  # fmt: skip
    whole = day(store)
    assert whole["visitors"] == 8.0
    assert whole["returning_visitor_rate"] == 4 / 8  # r1 r2 r3 h1
    assert whole["reactivated_visitor_rate"] == 2 / 8  # a1 a2
    assert whole["new_visitor_rate"] == 2 / 8  # n1 n2
    [noon] = hours(store, 12)  # the edges move 12 hours later
    assert noon["returning_visitor_rate"] == 3 / 8  # r2 r3 h1
    assert noon["reactivated_visitor_rate"] == 2 / 8  # r1 a1
    assert noon["new_visitor_rate"] == 3 / 8  # a2 n1 n2


def test_period_churn_and_returning_inside_the_range(store: EventStore) -> None:
    noon = "12:00"
    journeys_for(store, {
        "p1": [ev("page_view", noon, day=19), ev("page_view", noon), ev("page_view", noon, 21)],
        "p2": [ev("page_view", noon, day=19)],
        "p3": [ev("page_view", noon)],
        "p4": [ev("page_view", noon, day=21)],
        "p5": [ev("page_view", noon, day=19), ev("page_view", noon, day=21)],
        "p6": [ev("page_view", "23:30", day=19), ev("page_view", "00:10")],
        "p7": [ev("page_view", "23:59", day=19)],
    })  # fmt: skip
    days = table(store, day_to=date(2026, 11, 21))
    assert days["period_churn_rate"] == [3 / 5, 2 / 3]  # p2 p5 p7 of 5; p3 p6 of 3
    assert days["returning_visitor_rate"] == [2 / 3, 2 / 3]  # not p3, not p4
    hourly = table(store, "hour")
    assert hourly["period_churn_rate"][:3] == [1 / 2, 1.0, None]  # p7 of p6 p7; p6 of p6
    assert hourly["period_churn_rate"][12:14] == [None, 1.0]


# --- the API -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "code", "attr"),
    [
        ({"grain": "week"}, "unknown_grain", "grain"),
        ({"tz": "Mars/Olympus"}, "unknown_timezone", "tz"),
        ({"day_to": date(2026, 11, 19)}, "bad_date_range", "day_to"),
        ({"day_to": date(2027, 12, 1)}, "date_range_too_long", "day_to"),
        ({"metrics": ["visitors", "revenue"]}, "unknown_metric", "metrics"),
        ({"metrics": []}, "unknown_metric", "metrics"),
        ({"metrics": "visitors"}, "unknown_metric", "metrics"),
    ],
)
def test_validation_codes(arguments: dict[str, Any], code: str, attr: str) -> None:
    call: dict[str, Any] = {"grain": "day", "day_from": DAY, "day_to": DAY, "tz": SHANGHAI,
                            **arguments}  # fmt: skip
    with pytest.raises(ValidationFailed) as info:
        compute(None, **call)  # type: ignore[arg-type]  # rejected before the store is read
    assert (info.value.code, info.value.attr) == (code, attr)


def test_a_subset_of_metrics_has_the_same_values_in_catalogue_order(store: EventStore) -> None:
    journeys_for(store, SESSION_JOURNEYS)
    everything = table(store, "hour")
    names = ["session_conversion_rate", "visitors", "new_visitor_rate"]
    values = compute(store, "hour", DAY, DAY, SHANGHAI, metrics=names)
    assert [v.metric for v in values[::24]] == ["visitors", "session_conversion_rate",
                                                "new_visitor_rate"]  # fmt: skip
    subset: Values = {}
    for value in values:
        subset.setdefault(value.metric, []).append(value.value)
    assert subset == {name: everything[name] for name in names}


def test_the_plan_compiles_for_every_backend(store: EventStore) -> None:
    expr = plan(store, "hour", DAY, date(2026, 11, 21), "Europe/Berlin")
    ibis.pyspark  # noqa: B018  # registers the PySpark compiler's options
    for dialect in ("duckdb", "postgres", "pyspark"):
        sql = str(ibis.to_sql(expr, dialect=dialect))
        assert "FROM" in sql.upper(), dialect
        assert "timezone(" not in sql.lower(), dialect


def test_refresh_replaces_the_ended_buckets(store: EventStore) -> None:
    journeys_for(store, SESSION_JOURNEYS)
    start, end = datetime(2026, 11, 19, 16, tzinfo=UTC), datetime(2026, 11, 20, 16, tzinfo=UTC)
    later = datetime(2026, 11, 21, 1, tzinfo=UTC)
    stored = store.table("metric_values")
    assert refresh(store, DAY, DAY, SHANGHAI, later) == 18 * 25
    first = read_values(store, None, "hour", start, end)
    assert refresh(store, DAY, DAY, SHANGHAI, later) == 18 * 25
    assert read_values(store, None, "hour", start, end) == first
    assert store.to_arrow(stored.count()).as_py() == 18 * 25
    grains: tuple[Grain, ...] = ("hour", "day")
    for grain in grains:  # one query for both grains gives each grain's values
        found = {(v.metric, v.bucket_start): v.value
                 for v in read_values(store, None, grain, start, end)}  # fmt: skip
        assert found == {(v.metric, v.bucket_start): v.value
                         for v in compute(store, grain, DAY, DAY)}
    journeys_for(store, {"c7": [ev("page_view", "10:10")]})
    refresh(store, DAY, DAY, SHANGHAI, later)
    visitors = read_values(store, ["visitors"], "day", start, end)
    assert [v.value for v in visitors] == [7.0]
    assert store.to_arrow(stored.count()).as_py() == 18 * 25
    assert refresh(store, DAY, DAY, SHANGHAI, datetime(2026, 11, 20, 4, 30, tzinfo=UTC)) == 18 * 12
    assert read_values(store, None, "day", start, end) == []
    hourly = read_values(store, ["visitors"], "hour", start, end)
    assert [v.bucket_start.hour for v in hourly] == [16, 17, 18, 19, 20, 21, 22, 23, 0, 1, 2, 3]
    with pytest.raises(ValidationFailed) as info:
        refresh(store, DAY, DAY, SHANGHAI, datetime(2026, 11, 21))
    assert info.value.attr == "now"


# --- brute force reference ---------------------------------------------------------------------

VIEWS = ("page_view", "product_view", "post_view")
GAP = timedelta(minutes=30)


def reference(rows: Sequence[Mapping[str, Any]], grain: str, day_from: date, day_to: date,
              tz: str) -> Values:
    """Every metric of every bucket, straight from the definitions in docs/metrics.md."""
    zone = ZoneInfo(tz)
    local = [day_from + timedelta(days=k) for k in range(-1, (day_to - day_from).days + 2)]
    midnights = [datetime.combine(d, time(), zone).astimezone(UTC) for d in local]
    if grain == "day":
        bounds = midnights
    else:
        start, end = midnights[1], midnights[-1]
        count = int((end - start) / timedelta(hours=1))
        bounds = [start + timedelta(hours=k) for k in range(-1, count + 1)]
    links: dict[str, str] = {}
    for row in rows:
        if row.get("anonymous_id") and row.get("customer_id"):
            links.setdefault(row["anonymous_id"], row["customer_id"])

    def person(row: Mapping[str, Any]) -> str:
        anonymous = row.get("anonymous_id") or ""
        return row.get("customer_id") or links.get(anonymous) or f"anon:{anonymous}"

    timelines: dict[str, list[Mapping[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: (r["ts"], r["event_id"])):
        timelines.setdefault(person(row), []).append(row)
    sessions: list[tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]] = []
    for events in timelines.values():
        for row in events:
            same = sessions and sessions[-1][0] is events
            if same and row["ts"] - sessions[-1][1][-1]["ts"] <= GAP:
                sessions[-1][1].append(row)
            else:
                sessions.append((events, [row]))
    found: Values = {name: [] for name in METRICS}
    for b in range(len(bounds) - 2):
        s, e, p = bounds[b + 1], bounds[b + 2], bounds[b]
        inside = [r for r in rows if s <= r["ts"] < e]
        named = {n: sum(1 for r in inside if r["name"] == n) for n in
                 ("post_view", "like", "comment", "share", "product_view", "add_to_cart",
                  "checkout", "payment")}  # fmt: skip
        visitors = {person(r) for r in inside}
        before = {person(r) for r in rows if p <= r["ts"] < s}
        dwell = [r["dwell_ms"] / 1000 for r in inside
                 if r["name"] in VIEWS and r.get("dwell_ms") is not None]  # fmt: skip
        started = [events for _, events in sessions if s <= events[0]["ts"] < e]
        counted = [[r for r in events if r["ts"] < e + GAP] for events in started]
        previous = {}
        for who in visitors:
            earlier = [r["ts"] for r in timelines[who] if r["ts"] < s]
            previous[who] = max(earlier) if earlier else None
        ages = [s - t if t is not None else None for t in previous.values()]
        engaged = {person(r) for r in inside if r["name"] in ("like", "comment", "share")}
        values = {
            "visitors": len(visitors), "sessions": len(started),
            "bounce_rate": ratio(sum(1 for events in started if len(events) == 1), len(started)),
            "pages_per_session": ratio(sum(1 for events in counted for r in events
                                           if r["name"] in VIEWS), len(started)),
            "avg_dwell_seconds": statistics.fmean(dwell) if dwell else None,
            "post_views": named["post_view"],
            "interaction_rate": ratio(named["like"] + named["comment"] + named["share"],
                                      named["post_view"]),
            "share_rate": ratio(named["share"], named["post_view"]),
            "engaged_visitor_rate": ratio(len(engaged), len(visitors)),
            "view_to_cart_rate": ratio(named["add_to_cart"], named["product_view"]),
            "cart_to_checkout_rate": ratio(named["checkout"], named["add_to_cart"]),
            "payment_rate": ratio(named["payment"], named["checkout"]),
            "session_conversion_rate": ratio(sum(1 for events in counted if any(
                r["name"] == "payment" for r in events)), len(started)),
            "gmv_fen": sum(amount(r) for r in inside if r["name"] == "payment"),
            "returning_visitor_rate": ratio(sum(1 for a in ages if a is not None
                                                and a <= timedelta(days=30)), len(visitors)),
            "reactivated_visitor_rate": ratio(sum(1 for a in ages if a is not None and timedelta(
                days=30) < a <= timedelta(days=90)), len(visitors)),
            "new_visitor_rate": ratio(sum(1 for a in ages if a is None
                                          or a > timedelta(days=90)), len(visitors)),
            "period_churn_rate": ratio(len(before - visitors), len(before)),
        }  # fmt: skip
        for name, value in values.items():
            found[name].append(None if value is None else float(value))
    return found


def ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def amount(row: Mapping[str, Any]) -> int:
    properties = json.loads(row.get("properties") or "{}")
    value = properties.get("amount_fen")
    return value if isinstance(value, int) else 0


def assert_same(got: Values, expected: Values) -> None:
    assert got.keys() == expected.keys()
    for name in expected:
        pairs = list(zip(got[name], expected[name], strict=True))
        same = [a is b is None or (a is not None and b is not None and math.isclose(a, b))
                for a, b in pairs]  # fmt: skip
        assert all(same), (name, pairs)


@dataclass(frozen=True)
class Scenario:
    grain: Grain
    tz: str
    day_from: date
    days: int

    @property
    def start(self) -> datetime:
        return datetime.combine(self.day_from, time(), ZoneInfo(self.tz)).astimezone(UTC)

    @property
    def day_to(self) -> date:
        return self.day_from + timedelta(days=self.days - 1)

    @property
    def buckets(self) -> int:
        if self.grain == "day":
            return self.days
        after = self.day_from + timedelta(days=self.days)
        last = datetime.combine(after, time(), ZoneInfo(self.tz)).astimezone(UTC)
        return int((last - self.start) / timedelta(hours=1))

    def bucket_start(self, index: int) -> datetime:
        if self.grain == "hour":
            return self.start + timedelta(hours=index)
        local = datetime.combine(self.day_from + timedelta(days=index), time(), ZoneInfo(self.tz))
        return local.astimezone(UTC)


SCENARIOS = [
    Scenario("day", SHANGHAI, DAY, 2),
    Scenario("hour", SHANGHAI, DAY, 1),
    Scenario("day", "Europe/Berlin", date(2026, 10, 24), 3),   # clocks go back on the 25th
    Scenario("hour", "Europe/Berlin", date(2026, 3, 29), 1),   # a day of 23 hours
]  # fmt: skip
NAMES = [*VIEWS, "like", "comment", "share", "add_to_cart", "checkout", "payment", "click"]


PERSONS = ["c0", "c1", "c2", "c3", "a0", "a1", "a2", "a3"]


def random_rows(rng: random.Random, scenario: Scenario, size: int) -> list[dict[str, Any]]:
    """About ``size`` events around the scenario's range (10-minute steps: ties and gaps of
    exactly 30 minutes), pairs of events 30 or 90 days (± 1 s) apart ending at a bucket
    start, older history, anonymous visitors of whom some log in."""
    jitter = [timedelta(0), timedelta(0), timedelta(seconds=-1), timedelta(seconds=1)]
    times: list[tuple[str, datetime]] = []
    while len(times) < size:
        who, pick = rng.choice(PERSONS), rng.random()
        if pick < 0.6:
            minutes = 10 * rng.randint(-12, 6 * 24 * scenario.days + 6)
            times.append((who, scenario.start + timedelta(minutes=minutes) + rng.choice(jitter)))
        elif pick < 0.85:
            edge = scenario.bucket_start(rng.randrange(scenario.buckets))
            back = timedelta(days=rng.choice([30, 90]))
            who = rng.choice([who, f"c{len(times) + 10}"])  # often a person of their own
            times += [(who, edge + rng.choice(jitter)), (who, edge - back + rng.choice(jitter))]
        else:
            back = timedelta(days=rng.randint(1, 95), minutes=10 * rng.randint(0, 143))
            times.append((who, scenario.start - back))
    ids = list(range(len(times)))
    rng.shuffle(ids)
    rows = []
    for (who, ts), number in zip(times, ids, strict=True):
        name = rng.choice(NAMES)
        row: dict[str, Any] = {"event_id": f"e{number:03d}", "name": name, "ts": ts}
        if who.startswith("a"):
            row["anonymous_id"] = who
            if rng.random() < 0.2:
                row["customer_id"] = rng.choice(["c0", "c1", "c9"])
        else:
            row["customer_id"] = who
        if name in VIEWS:
            row["dwell_ms"] = rng.choice([None, rng.randint(0, 60_000)])
        if name == "payment":
            row["properties"] = rng.choice([
                None, '{"order_id": "o1"}', f'{{"amount_fen": {rng.randint(0, 99_999)}}}',
                f'{{"method":"wxpay","amount_fen":{rng.randint(0, 99_999)}}}'])
        rows.append(row)
    return rows


def computed(store: EventStore, scenario: Scenario) -> Values:
    return table(store, scenario.grain, scenario.day_from, scenario.day_to, scenario.tz)


def expected(rows: Sequence[Mapping[str, Any]], scenario: Scenario) -> Values:
    return reference(rows, scenario.grain, scenario.day_from, scenario.day_to, scenario.tz)


@settings(max_examples=20, deadline=None)
@given(rng=st.randoms(use_true_random=False), scenario=st.sampled_from(SCENARIOS),
       size=st.integers(0, 40))  # fmt: skip
def test_compute_matches_brute_force_reference(rng: random.Random, scenario: Scenario,
                                               size: int) -> None:
    rows = random_rows(rng, scenario, size)
    with (
        tempfile.TemporaryDirectory() as folder,
        open_store(f"duckdb://{folder}/e.duckdb") as store,
    ):
        ingest_rows(store, rows)
        got = computed(store, scenario)
    assert_same(got, expected(rows, scenario))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: f"{s.grain}-{s.tz}-{s.day_from}")
def test_a_larger_random_stream_matches_the_reference(store: EventStore,
                                                      scenario: Scenario) -> None:
    rows = random_rows(random.Random(20261120), scenario, 300)
    ingest_rows(store, rows)
    got = computed(store, scenario)
    want = expected(rows, scenario)
    assert sum(v or 0 for v in want["sessions"]) > 10
    assert_same(got, want)


# --- the demo ----------------------------------------------------------------------------------


def test_the_planted_payment_drop_shows_in_the_daily_payment_rate(tmp_path: Path) -> None:
    community = generate(size="small", seed=7)
    with open_store(f"duckdb://{tmp_path}/demo.duckdb") as store:
        for chunk in community.events():
            store.ingest_arrow(chunk)
        zone = ZoneInfo(SHANGHAI)
        first = community.start.astimezone(zone).date()
        last = (community.end - timedelta(microseconds=1)).astimezone(zone).date()
        days = table(store, day_from=first, day_to=last)
    dates = [first + timedelta(days=k) for k in range((last - first).days + 1)]
    rate = dict(zip(dates, days["payment_rate"], strict=True))
    planted = community.planted["payment_drop"]["days"]
    usual = statistics.median(r for d, r in rate.items() if d not in planted and r is not None)
    assert 0.7 < usual < 0.9
    assert max(rate[d] or 0.0 for d in planted) < 0.6 * usual
    assert all(v is not None and v > 0 for v in days["visitors"])
    assert all(v is not None and v > 0 for v in days["gmv_fen"])
    shares = zip(days["returning_visitor_rate"], days["reactivated_visitor_rate"],
                 days["new_visitor_rate"], strict=True)  # fmt: skip
    assert all(math.isclose(sum(v or 0.0 for v in three), 1.0) for three in shares)
