"""``POST /api/v1/events`` over HTTP: idempotent retries, partial acceptance, limits."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import bearer, make_key
from shequ.core.web import Services
from shequ.domains.events import service as events


def _event(i: int, **extra: Any) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "name": "page_view",
            "timestamp": "2026-11-20T08:00:00+08:00", "anonymous_id": f"anon-{i}",
            "session_id": f"s-{i}", "page": "/home", **extra}


@pytest.fixture
def writer(services: Services) -> dict[str, str]:
    return bearer(make_key(services, ["events:write"]))


def test_retried_batch_is_all_duplicates(client: TestClient, services: Services,
                                         writer: dict[str, str]) -> None:
    batch = [_event(i) for i in range(1000)]
    first = client.post("/api/v1/events", json=batch, headers=writer)
    again = client.post("/api/v1/events", json=batch, headers=writer)
    assert first.json() == {"accepted": 1000, "duplicates": 0, "rejected": []}
    assert again.json() == {"accepted": 0, "duplicates": 1000, "rejected": []}
    assert events.event_count(services) == 1000


def test_bad_events_named_good_ones_kept(client: TestClient, services: Services,
                                         writer: dict[str, str]) -> None:
    batch = [_event(i) for i in range(1000)]
    for i in range(0, 1000, 100):
        batch[i]["timestamp"] = "not-a-time"
    body = client.post("/api/v1/events", json=batch, headers=writer).json()
    assert body["accepted"] == 990
    assert [r["index"] for r in body["rejected"]] == list(range(0, 1000, 100))
    assert {r["field"] for r in body["rejected"]} == {"timestamp"}
    assert events.event_count(services) == 990


def test_naive_timestamp_and_unknown_field_rejected(client: TestClient,
                                                    writer: dict[str, str]) -> None:
    batch = [_event(0, timestamp="2026-11-20T08:00:00"), _event(1, colour="red"),
             _event(2, x=1.5), {"event_id": "e3", "name": "page_view",
                                "timestamp": "2026-11-20T08:00:00Z"}]
    body = client.post("/api/v1/events", json=batch, headers=writer).json()
    assert body["accepted"] == 0
    fields = [(r["index"], r["field"]) for r in body["rejected"]]
    assert fields == [(0, "timestamp"), (1, "colour"), (2, "x"), (3, "customer_id")]


def test_gzip_body(client: TestClient, services: Services, writer: dict[str, str]) -> None:
    raw = gzip.compress(json.dumps([_event(i) for i in range(50)]).encode())
    r = client.post("/api/v1/events", content=raw,
                    headers={**writer, "Content-Encoding": "gzip",
                             "Content-Type": "application/json"})
    assert r.status_code == 200
    assert r.json()["accepted"] == 50


def test_broken_gzip_is_a_clear_error(client: TestClient, writer: dict[str, str]) -> None:
    r = client.post("/api/v1/events", content=b"not gzip at all",
                    headers={**writer, "Content-Encoding": "gzip"})
    assert r.status_code == 422
    assert r.json()["code"] == "bad_gzip"


def test_batch_over_5000_refused_whole(client: TestClient, services: Services,
                                       writer: dict[str, str]) -> None:
    r = client.post("/api/v1/events", json=[_event(i) for i in range(5001)], headers=writer)
    assert r.status_code == 413
    assert r.json()["code"] == "batch_too_large"
    assert events.event_count(services) == 0


def test_body_not_an_array(client: TestClient, writer: dict[str, str]) -> None:
    r = client.post("/api/v1/events", content=b'{"hello": 1}', headers=writer)
    assert r.status_code == 422
    assert r.json()["code"] == "malformed_batch"


def test_needs_events_write_scope(client: TestClient, services: Services) -> None:
    reader = bearer(make_key(services, ["catalog:read"]))
    r = client.post("/api/v1/events", json=[_event(0)], headers=reader)
    assert r.status_code == 403
    assert client.post("/api/v1/events", json=[_event(0)]).status_code == 401


def test_login_event_links_anonymous_visitor(client: TestClient, services: Services,
                                             writer: dict[str, str]) -> None:
    batch = [_event(0, name="login", customer_id="c42", anonymous_id="anon-0")]
    assert client.post("/api/v1/events", json=batch, headers=writer).json()["accepted"] == 1
    store = events.event_store(services)
    links = store.to_arrow(store.table("identity_links")).to_pylist()
    assert [(row["anonymous_id"], row["customer_id"]) for row in links] == [("anon-0", "c42")]


def test_oversized_body_refused_before_parsing(client: TestClient,
                                               writer: dict[str, str]) -> None:
    r = client.post("/api/v1/events", content=b"[" + b" " * (17 * 1024 * 1024) + b"]",
                    headers={**writer, "Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["code"] == "body_too_large"


def test_identify_api_links_visitor_for_analytics(client: TestClient, services: Services,
                                                  admin_headers: dict[str, str]) -> None:
    created = client.post("/api/v1/customers", json={"external_id": "c7", "nickname": "小七"},
                          headers=admin_headers)
    assert created.status_code == 201
    r = client.post("/api/v1/customers/c7/identify", json={"anonymous_id": "anon-7"},
                    headers=admin_headers)
    assert r.status_code == 200
    store = events.event_store(services)
    links = store.to_arrow(store.table("identity_links")).to_pylist()
    assert [(row["anonymous_id"], row["customer_id"]) for row in links] == [("anon-7", "c7")]
    taken = client.post("/api/v1/customers/c7/identify", json={"anonymous_id": "anon-7"},
                        headers=admin_headers)
    assert taken.status_code == 200  # idempotent on both sides
    assert store.to_arrow(store.table("identity_links")).num_rows == 1


def _journey(person: str, names: list[str], start_minute: int = 0) -> list[dict[str, Any]]:
    return [{"event_id": f"{person}-{i}", "name": name, "customer_id": person,
             "timestamp": f"2026-11-20T10:{start_minute + i:02d}:00+08:00", "channel": "app"}
            for i, name in enumerate(names)]


def test_funnel_over_http(client: TestClient, services: Services, writer: dict[str, str],
                          admin_headers: dict[str, str]) -> None:
    batch = (_journey("c1", ["product_view", "add_to_cart", "checkout", "payment"])
             + _journey("c2", ["product_view", "add_to_cart", "checkout"])
             + _journey("c3", ["product_view"]))
    assert client.post("/api/v1/events", json=batch, headers=writer).json()["accepted"] == 8
    query = {"steps": ["product_view", "add_to_cart", "checkout", "payment"],
             "date_from": "2026-11-20", "date_to": "2026-11-20", "window": 3600}
    r = client.post("/api/v1/analytics/funnels", json=query, headers=admin_headers)
    assert r.status_code == 200, r.text
    counts = [step["count"] for step in r.json()["steps"]]
    assert counts == [3, 2, 2, 1]


def test_funnel_refuses_bad_queries_and_partners(client: TestClient, services: Services,
                                                 admin_headers: dict[str, str]) -> None:
    one_step = {"steps": ["payment"], "date_from": "2026-11-20", "date_to": "2026-11-20"}
    r = client.post("/api/v1/analytics/funnels", json=one_step, headers=admin_headers)
    assert (r.status_code, r.json()["code"]) == (422, "funnel_needs_two_steps")
    partner = bearer(make_key(services, ["analytics:read"], brand_ids=[1]))
    query = {**one_step, "steps": ["checkout", "payment"]}
    r = client.post("/api/v1/analytics/funnels", json=query, headers=partner)
    assert (r.status_code, r.json()["code"]) == (403, "platform_wide_analytics")


def _clicks_and_views() -> list[dict[str, Any]]:
    batch = _journey("c1", ["page_view", "product_view", "add_to_cart", "payment"])
    batch += _journey("c2", ["page_view", "product_view"], start_minute=10)
    for index, event in enumerate(batch):
        event["page"] = ["/home", "/product/SK1", "/product/SK1", "/pay"][index % 4] \
            if event["customer_id"] == "c1" else ["/home", "/product/SK2"][index % 2]
    batch += [{"event_id": f"k{i}", "name": "click", "customer_id": "c2", "page": "/home",
               "x": 0.1 * i, "y": 0.5, "timestamp": f"2026-11-20T10:11:0{i}+08:00",
               "properties": {"element": "banner"}} for i in range(3)]
    return batch


DAY = {"date_from": "2026-11-20", "date_to": "2026-11-20"}


@pytest.mark.parametrize(("route", "query", "check"), [
    ("sessions", DAY, lambda r: (r["sessions"], len(r["items"])) == (2, 2)),
    ("trends", {**DAY, "event": "product_view", "interval": "day"},
     lambda r: r["series"][0]["total"] == 2),
    ("paths", {**DAY, "page_grouping": "template"},
     lambda r: r["paths"][0]["pages"][:2] == ["/home", "/product/*"]),
    ("retention", {**DAY, "period": "day", "periods": 1},
     lambda r: r["cohorts"][0]["size"] == 2),
    ("dwell", {**DAY, "by": "content_type"},
     lambda r: {g["group"] for g in r["groups"]} == {"page", "product"}),
    ("heatmaps", {**DAY, "page": "/home", "bins": 10},
     lambda r: (r["clicks"], r["elements"][0]["element"]) == (3, "banner")),
])  # fmt: skip
def test_every_runner_over_http(client: TestClient, writer: dict[str, str],
                                admin_headers: dict[str, str], services: Services,
                                route: str, query: dict[str, Any],
                                check: Any) -> None:
    accepted = client.post("/api/v1/events", json=_clicks_and_views(), headers=writer)
    assert accepted.json()["accepted"] == 9
    r = client.post(f"/api/v1/analytics/{route}", json=query, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert check(r.json()), r.json()
    partner = bearer(make_key(services, ["analytics:read"], brand_ids=[1]))
    refused = client.post(f"/api/v1/analytics/{route}", json=query, headers=partner)
    assert (refused.status_code, refused.json()["code"]) == (403, "platform_wide_analytics")


def test_runner_rules_answer_422_with_their_code(client: TestClient,
                                                 admin_headers: dict[str, str]) -> None:
    r = client.post("/api/v1/analytics/heatmaps", json={**DAY, "page": "/home", "bins": 2},
                    headers=admin_headers)
    assert (r.status_code, r.json()["code"], r.json()["attr"]) == (
        422, "heatmap_bins_out_of_range", "bins")
    r = client.post("/api/v1/analytics/paths", json={**DAY, "depth": 1}, headers=admin_headers)
    assert (r.status_code, r.json()["code"]) == (422, "path_depth_out_of_range")


def test_stored_metrics_over_http(client: TestClient, writer: dict[str, str],
                                  admin_headers: dict[str, str], services: Services) -> None:
    client.post("/api/v1/events", json=_clicks_and_views(), headers=writer)
    assert events.refresh_metrics(services, date(2026, 11, 20), date(2026, 11, 20)) > 0
    # The clock stands at 16:00 in Shanghai: the day is not over, its hours up to 15:00 are.
    r = client.get("/api/v1/analytics/metrics", params={
        "date_from": "2026-11-20", "date_to": "2026-11-20", "grain": "hour",
        "metric": ["visitors", "payment_rate"]}, headers=admin_headers)
    assert r.status_code == 200, r.text
    at_ten = {(p["metric"], p["value"]) for p in r.json()
              if p["bucket_start"].startswith("2026-11-20T02:00")}
    assert at_ten == {("visitors", 2.0), ("payment_rate", None)}
    assert len(r.json()) == 2 * 16
    unknown = client.get("/api/v1/analytics/metrics", params={
        "date_from": "2026-11-20", "date_to": "2026-11-20", "metric": "nope"},
        headers=admin_headers)
    assert (unknown.status_code, unknown.json()["code"]) == (422, "unknown_metric")
