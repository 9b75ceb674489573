"""Campaigns: validation with named fields, create/replace/delete over the API, results per
campaign and per phase against hand-computed figures on a tiny shop (orders, refunds, posts
and reviews created through the API), ESG impact, and who may read or write."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from conftest import bearer, make_key, seed_catalog
from shequ.core.clock import FixedClock
from shequ.core.db import transaction
from shequ.core.errors import Conflict, PermissionDenied
from shequ.core.permissions import CLI_PRINCIPAL, PERMISSIONS, Principal
from shequ.core.web import Services
from shequ.domains.campaigns import campaign_service as service
from shequ.domains.campaigns.campaign_models import Campaign, CampaignBudget, CampaignPhase
from shequ.domains.campaigns.campaign_schemas import BudgetIn, CampaignIn
from shequ.entrypoints.app import create_app

SHANGHAI = ZoneInfo("Asia/Shanghai")
API = "/api/v1/campaigns"
Headers = dict[str, str]


def body(code: str = "d11", **changes: Any) -> dict[str, Any]:
    """A valid campaign over 2026-11-21 .. 11-30 with all four phases."""
    found: dict[str, Any] = {
        "code": code, "name": f"活动{code}", "tier": "holiday", "brand": "b1",
        "starts_on": "2026-11-21", "ends_on": "2026-11-30",
        "phases": [{"kind": "teaser", "starts_on": "2026-11-21", "ends_on": "2026-11-21"},
                   {"kind": "seeding", "starts_on": "2026-11-22", "ends_on": "2026-11-23"},
                   {"kind": "conversion", "starts_on": "2026-11-24", "ends_on": "2026-11-26"},
                   {"kind": "word_of_mouth", "starts_on": "2026-11-27",
                    "ends_on": "2026-11-30"}],
        "products": [{"sku": "SKU1", "allocation": 4}, {"sku": "SKU2"}],
        "channels": [{"channel": "live_room", "starts_at": "2026-11-24T20:00:00+08:00",
                      "ends_at": "2026-11-24T22:00:00+08:00"}],
        "budget_fen": 500_000,
        "kpi": {"gmv_fen": 100_000, "orders": 8, "new_customers": 4, "ugc_posts": 3},
    }
    found.update(changes)
    return found


@pytest.fixture
def api(client: TestClient, admin_headers: Headers) -> tuple[TestClient, Headers]:
    seed_catalog(client, admin_headers)
    return client, admin_headers


# --- validation -------------------------------------------------------------------------


def _phases(*spans: tuple[str, str, str]) -> list[dict[str, str]]:
    return [{"kind": k, "starts_on": s, "ends_on": e} for k, s, e in spans]


@pytest.mark.parametrize(("changes", "code", "attr"), [
    ({"ends_on": "2026-11-20"}, "days_out_of_order", "ends_on"),
    ({"brand": "nope"}, "unknown_brand", "brand"),
    ({"tier": "festival"}, "literal_error", "tier"),
    ({"phases": _phases(("teaser", "2026-11-19", "2026-11-21"))}, "phase_outside",
     "phases.teaser.starts_on"),
    ({"phases": _phases(("conversion", "2026-11-25", "2026-12-01"))}, "phase_outside",
     "phases.conversion.ends_on"),
    ({"phases": _phases(("teaser", "2026-11-21", "2026-11-23"),
                        ("seeding", "2026-11-23", "2026-11-24"))}, "phase_overlap",
     "phases.seeding.starts_on"),
    ({"phases": _phases(("teaser", "2026-11-25", "2026-11-26"),
                        ("seeding", "2026-11-21", "2026-11-22"))}, "phase_order",
     "phases.seeding.starts_on"),
    ({"phases": _phases(("teaser", "2026-11-21", "2026-11-21"),
                        ("teaser", "2026-11-22", "2026-11-22"))}, "duplicate_phase",
     "phases.teaser.kind"),
    ({"phases": _phases(("seeding", "2026-11-23", "2026-11-22"))}, "days_out_of_order",
     "phases.seeding.ends_on"),
    ({"products": [{"sku": "SKU1"}, {"sku": "NOPE"}]}, "unknown_sku", "products.1.sku"),
    ({"products": [{"sku": "SKU1"}, {"sku": "SKU1"}]}, "duplicate_sku", "products.1.sku"),
    ({"products": [{"sku": "SKU1", "allocation": -1}]}, "greater_than_equal",
     "products.0.allocation"),
    ({"products": [{"sku": "SKU1", "impact_unit": "kg", "impact_per_unit": "0.5"}]},
     "impact_not_esg", "products.0.impact_unit"),
    ({"kind": "esg", "products": [{"sku": "SKU1", "impact_unit": "kg"}]},
     "impact_incomplete", "products.0.impact_unit"),
    ({"channels": [{"channel": "live_room", "starts_at": "2026-11-24T22:00:00+08:00",
                    "ends_at": "2026-11-24T20:00:00+08:00"}]}, "empty_slot",
     "channels.0.ends_at"),
    ({"channels": [{"channel": "live_room", "starts_at": "2026-11-30T23:00:00+08:00",
                    "ends_at": "2026-12-01T01:00:00+08:00"}]}, "slot_outside",
     "channels.0.starts_at"),
    ({"channels": [{"channel": "tv", "starts_at": "2026-11-24T20:00:00+08:00",
                    "ends_at": "2026-11-24T22:00:00+08:00"}]}, "literal_error",
     "channels.0.channel"),
    ({"budget_fen": -1}, "greater_than_equal", "budget_fen"),
    ({"donation_bp": 500}, "donation_not_esg", "donation_bp"),
])
def test_bad_campaigns_are_refused_naming_the_field(api: tuple[TestClient, Headers],
                                                    changes: dict[str, Any], code: str,
                                                    attr: str) -> None:
    client, headers = api
    refused = client.post(API, json=body(**changes), headers=headers)
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == code
    assert refused.json()["attr"] == attr
    assert client.get(API, headers=headers).json()["total"] == 0  # nothing half-written


def test_create_read_replace_delete(api: tuple[TestClient, Headers], clock: FixedClock) -> None:
    client, headers = api
    made = client.post(API, json=body(), headers=headers)
    assert made.status_code == 201, made.text
    campaign = made.json()
    assert campaign["status"] == "scheduled"  # the clock stands on 2026-11-20
    assert campaign["brand_name"] == "花知晓"
    assert [p["kind"] for p in campaign["phases"]] == ["teaser", "seeding", "conversion",
                                                       "word_of_mouth"]
    assert campaign["products"][0] == {
        "sku": "SKU1", "name": "商品SKU1", "brand_external_id": "b1", "stock": 10,
        "allocation": 4, "impact_unit": None, "impact_per_unit": None}
    assert campaign["warnings"] == []
    assert client.post(API, json=body(), headers=headers).json()["code"] == "campaign_exists"

    changed = body(name="双十一", draft=True, products=[{"sku": "SKU3", "allocation": 1}],
                   channels=[])
    put = client.put(f"{API}/{campaign['id']}", json=changed, headers=headers)
    assert put.status_code == 200, put.text
    assert put.json()["status"] == "draft"
    assert [p["sku"] for p in put.json()["products"]] == ["SKU3"]
    assert put.json()["channels"] == []
    assert client.get(f"{API}/{campaign['id']}", headers=headers).json()["name"] == "双十一"

    clock.advance(timedelta(days=2))  # 2026-11-22: live (a draft's days have come)
    assert client.get(f"{API}/{campaign['id']}", headers=headers).json()["status"] == "draft"
    client.put(f"{API}/{campaign['id']}", json=body(), headers=headers)
    assert client.get(f"{API}/{campaign['id']}", headers=headers).json()["status"] == "live"
    assert client.get(API, params={"status": "live"}, headers=headers).json()["total"] == 1
    assert client.get(API, params={"status": "ended"}, headers=headers).json()["total"] == 0
    clock.advance(timedelta(days=9))  # 2026-12-01 16:00 local
    assert client.get(f"{API}/{campaign['id']}", headers=headers).json()["status"] == "ended"

    assert client.delete(f"{API}/{campaign['id']}", headers=headers).status_code == 204
    assert client.get(f"{API}/{campaign['id']}", headers=headers).status_code == 404


def test_list_filters(api: tuple[TestClient, Headers]) -> None:
    client, headers = api
    client.post(API, json=body("a", tier="brand_day"), headers=headers)
    client.post(API, json=body("b", brand=None, kind="esg", donation_bp=300), headers=headers)
    listed = client.get(API, params={"tier": "brand_day"}, headers=headers).json()
    assert [c["code"] for c in listed["items"]] == ["a"]
    assert [c["code"] for c in client.get(API, params={"kind": "esg"},
                                          headers=headers).json()["items"]] == ["b"]
    assert client.get(API, params={"brand": "b1"}, headers=headers).json()["total"] == 1
    assert client.get(API, params={"q": "活动b"}, headers=headers).json()["total"] == 1


# --- permissions -------------------------------------------------------------------------


def test_read_only_and_partner_keys(api: tuple[TestClient, Headers],
                                    services: Services) -> None:
    client, headers = api
    made = client.post(API, json=body(), headers=headers).json()
    reader = bearer(make_key(services, ["campaigns:read"]))
    assert client.get(f"{API}/{made['id']}", headers=reader).status_code == 200
    assert client.get(f"{API}/calendar", headers=reader).status_code == 200
    assert client.get(f"{API}/{made['id']}/results", headers=reader).status_code == 200
    for method, path in (("post", API), ("put", f"{API}/{made['id']}"),
                         ("delete", f"{API}/{made['id']}"), ("put", f"{API}/budgets")):
        denied = client.request(method, path, json=body(), headers=reader)
        assert denied.status_code == 403, (method, path)
        assert denied.json()["code"] == "permission_denied"
    partner = bearer(make_key(services, ["catalog:read", "orders:read"], brand_ids=[1]))
    for path in (API, f"{API}/{made['id']}", f"{API}/calendar", f"{API}/conflicts"):
        assert client.get(path, headers=partner).status_code == 403
    # A partner key can never hold the campaign scopes...
    with transaction(services.sessions) as s:
        from shequ.core import auth
        with pytest.raises(Exception, match="campaigns:read"):
            auth.create_api_key(s, services.clock, name="p", scopes=["campaigns:read"],
                                brand_ids=[1])
    # ...and the service refuses a brand-limited caller even if one did.
    limited = Principal(kind="apikey", id=9, name="p", permissions=PERMISSIONS,
                        brand_ids=frozenset({1}))
    with services.sessions() as s, pytest.raises(PermissionDenied):
        service.get_campaign(s, services.clock, limited, made["id"], zone=SHANGHAI)


# --- results -----------------------------------------------------------------------------


def move_to(clock: FixedClock, day: date, hour: int) -> None:
    """Advance the clock to ``hour``:00 Shanghai time on ``day``."""
    target = datetime(day.year, day.month, day.day, hour, tzinfo=SHANGHAI).astimezone(UTC)
    assert target >= clock.now()
    clock.advance(target - clock.now())


def order(client: TestClient, headers: Headers, number: str, customer: str,
          lines: list[tuple[str, int]], status: str = "paid") -> None:
    made = client.post("/api/v1/orders", headers=headers, json={
        "external_id": number, "customer_external_id": customer,
        "lines": [{"sku": sku, "quantity": q} for sku, q in lines]})
    assert made.status_code == 201, made.text
    path = ["paid", "refunded"] if status == "refunded" else [] if status == "created" \
        else ["paid"]
    for step in path:
        moved = client.post(f"/api/v1/orders/{number}/transitions", headers=headers,
                            json={"to": step})
        assert moved.status_code == 200, moved.text


def post(client: TestClient, headers: Headers, key: str, sku: str) -> None:
    made = client.post("/api/v1/posts", headers=headers, json={
        "external_id": key, "author_customer_external_id": "c_old", "title": "好物分享",
        "body": "这款面霜很滋润，冬天用刚好。", "sku": sku})
    assert made.status_code == 201, made.text
    assert made.json()["status"] == "published"


def build_shop(client: TestClient, headers: Headers, clock: FixedClock) -> None:
    """The tiny shop of the results tests (campaign days 2026-11-21 .. 11-30, local):

    * 11-20 16:00 c_old's first order, SKU1 (before the campaign);
    * teaser 11-21: c_old buys 2 SKU1 + 1 SKU3; c_new1's first order, 1 SKU2; two posts
      about SKU1, one about SKU3;
    * seeding 11-22: c_new2's first order holds only SKU3, then 1 SKU1;
    * conversion 11-24: c_new3's first order, 3 SKU1; c_new1 pays 1 SKU2 then it is
      refunded; c_old orders 1 SKU1 and never pays; a review of SKU2.
    """
    for key in ("c_old", "c_new1", "c_new2", "c_new3"):
        assert client.post("/api/v1/customers", headers=headers,
                           json={"external_id": key}).status_code == 201
    order(client, headers, "o0", "c_old", [("SKU1", 1)])
    move_to(clock, date(2026, 11, 21), 12)
    order(client, headers, "o1", "c_old", [("SKU1", 2), ("SKU3", 1)])
    post(client, headers, "p1", "SKU1")
    post(client, headers, "p2", "SKU1")
    post(client, headers, "p3", "SKU3")
    move_to(clock, date(2026, 11, 21), 13)
    order(client, headers, "o2", "c_new1", [("SKU2", 1)])
    move_to(clock, date(2026, 11, 22), 10)
    order(client, headers, "o3", "c_new2", [("SKU3", 1)])
    move_to(clock, date(2026, 11, 22), 11)
    order(client, headers, "o4", "c_new2", [("SKU1", 1)])
    move_to(clock, date(2026, 11, 24), 9)
    order(client, headers, "o5", "c_new3", [("SKU1", 3)])
    order(client, headers, "o6", "c_new1", [("SKU2", 1)], status="refunded")
    order(client, headers, "o7", "c_old", [("SKU1", 1)], status="created")
    review = client.post("/api/v1/reviews", headers=headers, json={
        "external_id": "r1", "customer_external_id": "c_new1", "sku": "SKU2", "rating": 5,
        "text": "包装很好，物流也快。"})
    assert review.status_code == 201, review.text
    assert review.json()["status"] == "published"
    move_to(clock, date(2026, 11, 28), 12)


def test_results_per_campaign_and_phase(api: tuple[TestClient, Headers],
                                        clock: FixedClock) -> None:
    client, headers = api
    made = client.post(API, json=body(), headers=headers).json()  # SKU1, SKU2
    build_shop(client, headers, clock)
    found = client.get(f"{API}/{made['id']}/results", headers=headers)
    assert found.status_code == 200, found.text
    results = found.json()
    # o1's SKU1 19,800 + o2 19,900 + o4 9,900 + o5 29,700; o6 refunded, o7 unpaid.
    assert results["figures"] == {"gmv_fen": 79_300, "orders": 4, "units": 7,
                                  "new_customers": 2, "ugc_posts": 2, "ugc_reviews": 1,
                                  "ugc": 3}
    assert {k["name"]: (k["target"], k["actual"], k["pct"]) for k in results["kpis"]} == {
        "gmv_fen": (100_000, 79_300, 79.3), "orders": (8, 4, 50.0),
        "new_customers": (4, 2, 50.0), "ugc_posts": (3, 3, 100.0)}
    phases = {p["kind"]: p["figures"] for p in results["phases"]}
    assert phases["teaser"] == {"gmv_fen": 39_700, "orders": 2, "units": 3,
                                "new_customers": 1, "ugc_posts": 2, "ugc_reviews": 0, "ugc": 2}
    assert phases["seeding"] == {"gmv_fen": 9_900, "orders": 1, "units": 1,
                                 "new_customers": 0, "ugc_posts": 0, "ugc_reviews": 0, "ugc": 0}
    assert phases["conversion"] == {"gmv_fen": 29_700, "orders": 1, "units": 3,
                                    "new_customers": 1, "ugc_posts": 0, "ugc_reviews": 1,
                                    "ugc": 1}
    assert phases["word_of_mouth"]["orders"] == 0
    teaser_kpis = {k["name"]: k["pct"] for k in results["phases"][0]["kpis"]}
    assert teaser_kpis == {"gmv_fen": 39.7, "orders": 25.0, "new_customers": 25.0,
                           "ugc_posts": 66.7}
    assert results["esg"] is None


def test_esg_impact(api: tuple[TestClient, Headers], clock: FixedClock) -> None:
    client, headers = api
    esg = body("farm", kind="esg", brand=None, donation_bp=500,
               products=[{"sku": "SKU1", "impact_unit": "kg", "impact_per_unit": "0.5"},
                         {"sku": "SKU3", "impact_unit": "kg", "impact_per_unit": "1.5"}])
    made = client.post(API, json=esg, headers=headers)
    assert made.status_code == 201, made.text
    build_shop(client, headers, clock)
    results = client.get(f"{API}/{made.json()['id']}/results", headers=headers).json()
    # SKU1: 19,800 + 9,900 + 29,700; SKU3: o1 and o3 at 299,900.
    assert results["figures"]["gmv_fen"] == 659_200
    assert results["figures"]["orders"] == 4
    assert results["figures"]["new_customers"] == 2  # c_new2 (o3 holds SKU3) and c_new3
    assert results["esg"] == {"impact": [{"unit": "kg", "amount": "6.000"}],
                              "beneficiaries": 2, "donation_bp": 500, "donation_fen": 32_960}


def test_results_of_a_campaign_without_products(api: tuple[TestClient, Headers]) -> None:
    client, headers = api
    made = client.post(API, json=body(products=[]), headers=headers).json()
    results = client.get(f"{API}/{made['id']}/results", headers=headers).json()
    assert results["figures"]["gmv_fen"] == 0
    assert [k["pct"] for k in results["kpis"]] == [0.0, 0.0, 0.0, 0.0]


def test_service_is_usable_without_http(services: Services) -> None:
    with TestClient(create_app(services=services)) as client:
        headers = bearer(make_key(services, sorted(PERMISSIONS)))
        seed_catalog(client, headers)
        assert client.post(API, json=body(), headers=headers).status_code == 201
    with services.sessions() as s:
        page = service.list_campaigns(s, services.clock, CLI_PRINCIPAL, zone=SHANGHAI)
        assert page.total == 1
        assert page.items[0].code == "d11"


# --- PostgreSQL: the same campaign or budget filed in parallel ---------------------------


def test_parallel_creates_and_budgets_on_postgres(pg_services: Services) -> None:
    """Eight threads file the same campaign code: one campaign, seven ``campaign_exists``;
    eight threads set one brand's month budget: one row, the last value written."""
    wired = pg_services
    with TestClient(create_app(services=wired)) as client:
        seed_catalog(client, bearer(make_key(wired, sorted(PERMISSIONS))))
    start = threading.Barrier(8)

    def create(_: int) -> str:
        start.wait()
        try:
            with transaction(wired.sessions) as s:
                service.create_campaign(s, wired.clock, CLI_PRINCIPAL,
                                        CampaignIn.model_validate(body()), zone=SHANGHAI)
        except Conflict as exc:
            return exc.code
        return "created"

    def budget(n: int) -> int:
        start.wait()
        with transaction(wired.sessions) as s:
            return service.put_budget(s, wired.clock, CLI_PRINCIPAL, BudgetIn(
                brand="b1", month="2026-11", budget_fen=1000 + n)).budget_fen

    with ThreadPoolExecutor(8) as pool:
        outcomes = sorted(pool.map(create, range(8)))
    assert outcomes == ["campaign_exists"] * 7 + ["created"]
    with ThreadPoolExecutor(8) as pool:
        written = list(pool.map(budget, range(8)))
    assert sorted(written) == [1000 + n for n in range(8)]
    with wired.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Campaign)) == 1
        assert s.scalar(select(func.count()).select_from(CampaignPhase)) == 4
        rows = s.scalars(select(CampaignBudget)).all()
        assert len(rows) == 1
        assert rows[0].budget_fen in written
        # The stored campaign reads back whole on PostgreSQL (dates, Numeric, slots).
        found = service.list_campaigns(s, wired.clock, CLI_PRINCIPAL, zone=SHANGHAI)
        assert found.items[0].channels[0].starts_at == datetime(2026, 11, 24, 12, tzinfo=UTC)
