"""The small demo loads into the real stores and its planted phenomena survive the trip."""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient

from shequ.analytics.funnels import FunnelQuery, FunnelResult, FunnelRunner, diagnose
from shequ.core.web import Services
from shequ.demo.loader import load_demo
from shequ.domains.events import service as events

END = date(2026, 11, 20)


@pytest.fixture
def summary(services: Services) -> dict[str, object]:
    return load_demo(services, size="small", seed=7, end=END)


def test_counts_reach_the_stores(summary: dict[str, object], client: TestClient,
                                 services: Services, admin_headers: dict[str, str]) -> None:
    counts = summary["counts"]
    assert isinstance(counts, dict)
    assert client.get("/api/v1/products", headers=admin_headers).json()["total"] == 60
    assert counts["customers"] == 500
    assert 0 < counts["customers_signed_up"] < 100  # friends who signed up by referral
    assert client.get("/api/v1/customers", headers=admin_headers).json()["total"] == (
        500 + counts["customers_signed_up"])
    assert counts["events"] == events.event_count(services) == 20_000
    orders = client.get("/api/v1/orders?limit=1", headers=admin_headers).json()["total"]
    assert counts["commerce_orders"] > 0  # group members, coupon checkouts, referrals
    assert orders == counts["orders"] + counts["commerce_orders"]


def test_payment_drop_visible_in_events(summary: dict[str, object], services: Services) -> None:
    store = events.event_store(services)
    table = store.table("events")
    steps = table.filter(table.name.isin(["checkout", "payment"]))
    rows = store.to_arrow(steps.select("name", "ts")).to_pylist()
    per_day: dict[date, Counter[str]] = {}
    for row in rows:
        local = row["ts"].astimezone(services.settings.zone).date()
        per_day.setdefault(local, Counter())[row["name"]] += 1
    planted = summary["planted"]
    assert isinstance(planted, dict)
    drop_days = set(planted["payment_drop"]["days"])
    ratio = {d: c["payment"] / c["checkout"] for d, c in per_day.items() if c["checkout"] >= 5}
    usual = statistics.median(r for d, r in ratio.items() if d not in drop_days)
    on_drop = [ratio[d] for d in drop_days if d in ratio]
    assert on_drop
    assert max(on_drop) < 0.6 * usual


def test_rollup_covers_the_window(summary: dict[str, object], services: Services) -> None:
    store = events.event_store(services)
    daily = store.to_arrow(store.table("events_daily")).to_pylist()
    assert sum(row["events"] for row in daily) == 20_000


def test_loading_twice_is_refused_and_leaves_one_copy(services: Services,
                                                      client: TestClient,
                                                      admin_headers: dict[str, str]) -> None:
    first = load_demo(services, size="small", seed=7, end=END)
    assert first["counts"]["customers"] == 500  # type: ignore[index]
    with pytest.raises(Exception, match=r"(?i)unique|already|integrity"):
        load_demo(services, size="small", seed=7, end=END)
    assert client.get("/api/v1/customers", headers=admin_headers).json()["total"] == (
        500 + first["counts"]["customers_signed_up"])  # type: ignore[index]
    assert events.event_count(services) == 20_000


def test_funnel_diagnosis_names_the_planted_payment_drop(summary: dict[str, object],
                                                        services: Services) -> None:
    planted = summary["planted"]
    assert isinstance(planted, dict)
    first, last = planted["payment_drop"]["days"]
    steps = ["product_view", "add_to_cart", "checkout", "payment"]
    store = events.event_store(services)

    def funnel(day_from: date, day_to: date) -> FunnelResult:
        query = FunnelQuery(steps=steps, date_from=day_from, date_to=day_to,
                            window=timedelta(hours=2))
        return FunnelRunner(query).run(store)

    dropped = funnel(first, last)
    baseline = funnel(first - timedelta(days=14), first - timedelta(days=1))
    found = diagnose(dropped, baseline)
    assert found.name == "payment"
    assert found.deviation > 0.2


def test_dimensions_let_the_funnel_break_down_by_device_kind(summary: dict[str, object],
                                                             services: Services) -> None:
    store = events.event_store(services)
    devices = store.to_arrow(store.table("dim_devices")).to_pylist()
    assert {row["kind"] for row in devices} == {"ios", "android", "pc"}
    assert len(store.to_arrow(store.table("dim_products"))) == 60
    last = date.fromisoformat(summary["window"][1])  # type: ignore[index]
    result = FunnelRunner(FunnelQuery(steps=["product_view", "add_to_cart"], breakdown="device",
                                      date_from=last - timedelta(days=29),
                                      date_to=last)).run(store)  # fmt: skip
    kinds = {series.breakdown_value for series in result.breakdown}
    assert {"ios", "android", "pc"} <= kinds
    assert sum(s.steps[1].count for s in result.breakdown) == result.steps[1].count
