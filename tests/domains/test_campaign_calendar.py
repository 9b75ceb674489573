"""The shared calendar: month and week views, and each kind of conflict detected and
explained with its numbers and both sides, returned as warnings by create and update;
adjacent ranges (a phase ending the day before another starts, a slot ending when another
begins) never conflict; ended campaigns drop out."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from test_campaigns import body

from conftest import seed_catalog
from shequ.core.clock import FixedClock

API = "/api/v1/campaigns"
Headers = dict[str, str]


@pytest.fixture
def api(client: TestClient, admin_headers: Headers) -> tuple[TestClient, Headers]:
    seed_catalog(client, admin_headers)
    return client, admin_headers


def later(code: str, first: str, last: str, **changes: Any) -> dict[str, Any]:
    """A one-phase campaign (conversion) over ``first`` .. ``last``."""
    given: dict[str, Any] = {
        "channels": [], "phases": [{"kind": "conversion", "starts_on": first, "ends_on": last}],
        **changes}
    return body(code, starts_on=first, ends_on=last, **given)


def slot(start: str, end: str, channel: str = "live_room") -> dict[str, str]:
    return {"channel": channel, "starts_at": start, "ends_at": end}


def create(client: TestClient, headers: Headers, data: dict[str, Any]) -> dict[str, Any]:
    made = client.post(API, json=data, headers=headers)
    assert made.status_code == 201, made.text
    found: dict[str, Any] = made.json()
    return found


def kinds(conflicts: list[dict[str, Any]]) -> list[str]:
    return sorted(c["kind"] for c in conflicts)


def test_each_kind_of_conflict_is_found_and_explained(api: tuple[TestClient, Headers],
                                                     clock: FixedClock) -> None:
    client, headers = api
    assert client.put(f"{API}/budgets", headers=headers, json={
        "brand": "b1", "month": "2026-11", "budget_fen": 700_000}).status_code == 200
    # A (11-21 .. 11-30): SKU1 4 of 10, SKU2 3 of 5, live room 11-24 20:00-22:00, ¥5,000.
    a = create(client, headers, body("a", products=[{"sku": "SKU1", "allocation": 4},
                                                    {"sku": "SKU2", "allocation": 3}]))
    assert a["warnings"] == []
    # B (11-24 .. 12-02, conversion from 11-28, overlapping A's word of mouth): 3 more
    # SKU2, the live room 21:00-23:00 on 11-24, ¥3,000.
    b = create(client, headers, later(
        "b", "2026-11-24", "2026-12-02", budget_fen=300_000,
        phases=[{"kind": "conversion", "starts_on": "2026-11-28", "ends_on": "2026-12-02"}],
        products=[{"sku": "SKU2", "allocation": 3}],
        channels=[slot("2026-11-24T21:00:00+08:00", "2026-11-24T23:00:00+08:00")]))
    warned = {w["kind"]: w for w in b["warnings"]}
    assert sorted(warned) == ["budget", "channel", "product_overlap", "stock"]
    assert warned["product_overlap"]["message"] == (
        "1 product (SKU2) in both «活动a» and «活动b», whose phases overlap: 活动a's "
        "word_of_mouth 2026-11-27–2026-11-30 and 活动b's conversion 2026-11-28–2026-12-02.")
    assert warned["stock"]["message"] == (
        "SKU2: 6 units allocated on 2026-11-28 («活动a» 3, «活动b» 3) but only 5 in stock, "
        "1 short.")
    assert warned["budget"]["message"] == (
        "花知晓 (b1) plans ¥8,000.00 of campaigns starting in 2026-11 («活动a» ¥5,000.00, "
        "«活动b» ¥3,000.00), ¥1,000.00 over its monthly budget of ¥7,000.00.")
    assert warned["channel"]["message"] == (
        "live_room is booked twice: «活动a» 2026-11-24 20:00–22:00 and «活动b» 2026-11-24 "
        "21:00–23:00 overlap by 60 minutes (Asia/Shanghai time).")
    for warning in warned.values():
        assert [c["id"] for c in warning["campaigns"]] == [a["id"], b["id"]]
        assert warning["campaigns"][1]["url"] == f"/console/campaigns/{b['id']}"
        assert warning["campaigns"][1]["api_url"] == f"{API}/{b['id']}"
    assert warned["stock"]["subject"] == "SKU2"
    assert warned["budget"]["subject"] == "b1 2026-11"
    # The same conflicts from the other side, and for everyone.
    assert kinds(client.get(f"{API}/{a['id']}", headers=headers).json()["warnings"]) == []
    assert kinds(client.get(f"{API}/conflicts", headers=headers).json()) == [
        "budget", "channel", "product_overlap", "stock"]
    budgets = client.get(f"{API}/budgets", headers=headers).json()
    assert budgets == [{"brand": "b1", "month": "2026-11", "budget_fen": 700_000,
                        "brand_name": "花知晓", "planned_fen": 800_000}]

    # Replacing B without products or slots leaves only the budget.
    calm = later("b", "2026-11-24", "2026-12-02", budget_fen=300_000, products=[])
    replaced = client.put(f"{API}/{b['id']}", json=calm, headers=headers)
    assert kinds(replaced.json()["warnings"]) == ["budget"]
    assert kinds(client.get(f"{API}/conflicts", headers=headers).json()) == ["budget"]

    # Once both have ended nothing is reported, the spent budget included.
    clock.advance(timedelta(days=13))  # 2026-12-03 16:00 Shanghai
    assert client.get(f"{API}/conflicts", headers=headers).json() == []


def test_adjacent_ranges_do_not_conflict(api: tuple[TestClient, Headers]) -> None:
    client, headers = api
    create(client, headers, later("b", "2026-11-24", "2026-12-02",
                                  products=[{"sku": "SKU2", "allocation": 5}]))
    # Starts the day after B ends, takes all of SKU2's stock again, and books the live
    # room twice back to back.
    c = create(client, headers, later(
        "c", "2026-12-03", "2026-12-05", products=[{"sku": "SKU2", "allocation": 5}],
        channels=[slot("2026-12-03T10:00:00+08:00", "2026-12-03T12:00:00+08:00"),
                  slot("2026-12-03T12:00:00+08:00", "2026-12-03T14:00:00+08:00")]))
    assert c["warnings"] == []
    assert client.get(f"{API}/conflicts", headers=headers).json() == []
    # One minute more is a clash, within one campaign too (one side to link).
    clash = later("c", "2026-12-03", "2026-12-05", channels=[
        slot("2026-12-03T10:00:00+08:00", "2026-12-03T12:01:00+08:00"),
        slot("2026-12-03T12:00:00+08:00", "2026-12-03T14:00:00+08:00")])
    warnings = client.put(f"{API}/{c['id']}", json=clash, headers=headers).json()["warnings"]
    assert kinds(warnings) == ["channel"]
    assert "overlap by 1 minutes" in warnings[0]["message"]
    assert [s["id"] for s in warnings[0]["campaigns"]] == [c["id"]]


def test_stock_counts_only_campaigns_in_a_phase_together(
        api: tuple[TestClient, Headers]) -> None:
    client, headers = api
    # SKU3 has 3 in stock. X holds 2 (11-21..11-25), Y 2 (11-26..11-30), Z 1 over both:
    # at most 3 at a time, never more.
    for code, first, last, units in (("x", "2026-11-21", "2026-11-25", 2),
                                     ("y", "2026-11-26", "2026-11-30", 2),
                                     ("z", "2026-11-21", "2026-11-30", 1)):
        create(client, headers, later(code, first, last,
                                      products=[{"sku": "SKU3", "allocation": units}]))
    assert kinds(client.get(f"{API}/conflicts", headers=headers).json()) == [
        "product_overlap", "product_overlap"]  # x-z and y-z share SKU3, x-y do not
    w = create(client, headers, later("w", "2026-11-25", "2026-11-26",
                                      products=[{"sku": "SKU3", "allocation": 1}]))
    stock = [c for c in w["warnings"] if c["kind"] == "stock"]
    assert [s["message"] for s in stock] == [
        "SKU3: 4 units allocated on 2026-11-25 («活动x» 2, «活动z» 1, «活动w» 1) but only 3 "
        "in stock, 1 short.",
        "SKU3: 4 units allocated on 2026-11-26 («活动z» 1, «活动w» 1, «活动y» 2) but only 3 "
        "in stock, 1 short."]  # campaigns by first day


def test_month_and_week_views(api: tuple[TestClient, Headers]) -> None:
    client, headers = api
    a = create(client, headers, body("a", products=[{"sku": "SKU1", "allocation": 4}]))
    b = create(client, headers, later(
        "b", "2026-11-24", "2026-12-02", products=[{"sku": "SKU1", "allocation": 1}],
        phases=[{"kind": "conversion", "starts_on": "2026-11-28", "ends_on": "2026-12-02"}]))
    month = client.get(f"{API}/calendar", params={"view": "month", "date": "2026-11-01"},
                       headers=headers).json()
    assert (month["starts_on"], month["ends_on"]) == ("2026-11-01", "2026-11-30")
    assert (month["previous"], month["next"]) == ("2026-10-01", "2026-12-01")
    days = {d["day"]: d["entries"] for d in month["days"]}
    assert len(days) == 30
    assert days["2026-11-20"] == []
    assert [(e["code"], e["phase"]) for e in days["2026-11-21"]] == [("a", "teaser")]
    assert [(e["code"], e["phase"]) for e in days["2026-11-25"]] == [("a", "conversion"),
                                                                     ("b", None)]
    assert [(e["code"], e["phase"]) for e in days["2026-11-28"]] == [
        ("a", "word_of_mouth"), ("b", "conversion")]
    assert days["2026-11-21"][0]["url"] == f"/console/campaigns/{a['id']}"
    assert kinds(month["conflicts"]) == ["product_overlap"]
    week = client.get(f"{API}/calendar", params={"view": "week", "date": "2026-11-25"},
                      headers=headers).json()
    assert (week["starts_on"], week["ends_on"]) == ("2026-11-23", "2026-11-29")
    assert (week["previous"], week["next"]) == ("2026-11-16", "2026-11-30")
    assert len(week["days"]) == 7
    december = client.get(f"{API}/calendar", params={"date": "2026-12-15"},
                          headers=headers).json()
    assert all(d["entries"] == [] for d in december["days"][2:])
    assert [e["campaign_id"] for e in december["days"][0]["entries"]] == [b["id"]]
    assert client.get(f"{API}/calendar", params={"view": "year"},
                      headers=headers).status_code == 422
