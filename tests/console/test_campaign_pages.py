"""The campaign console over HTTP on real stores: the list with filters and empty states,
a campaign's timeline, results with KPI bars, ESG impact card and conflicts, the create and
edit form with field errors, delete, the calendar's month and week views with the conflicts
panel linking both sides, in both languages, and who may open what."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from console_data import add_user, csrf_in, log_in
from fastapi import FastAPI
from fastapi.testclient import TestClient

from conftest import T0, _wire, bearer, make_key, seed_catalog
from shequ.core.clock import FixedClock
from shequ.core.permissions import PERMISSIONS
from shequ.core.web import Services
from shequ.entrypoints.app import create_app
from shequ.entrypoints.bootstrap import close
from shequ.entrypoints.console.campaign_pages import router

API = "/api/v1/campaigns"
PHASES = [{"kind": "teaser", "starts_on": "2026-11-20", "ends_on": "2026-11-21"},
          {"kind": "seeding", "starts_on": "2026-11-22", "ends_on": "2026-11-23"},
          {"kind": "conversion", "starts_on": "2026-11-24", "ends_on": "2026-11-26"},
          {"kind": "word_of_mouth", "starts_on": "2026-11-27", "ends_on": "2026-11-30"}]
CAMPAIGNS: tuple[dict[str, Any], ...] = (
    {"code": "a", "name": "花知晓品牌日", "tier": "brand_day", "brand": "b1",
     "starts_on": "2026-11-20", "ends_on": "2026-11-30", "phases": PHASES,
     "products": [{"sku": "SKU1", "allocation": 4}, {"sku": "SKU2", "allocation": 3}],
     "channels": [{"channel": "live_room", "starts_at": "2026-11-24T20:00:00+08:00",
                   "ends_at": "2026-11-24T22:00:00+08:00"}],
     "budget_fen": 500_000, "kpi": {"gmv_fen": 100_000, "orders": 4}},
    {"code": "b", "name": "冬季囤货节", "tier": "holiday", "brand": "b1",
     "starts_on": "2026-11-24", "ends_on": "2026-12-02",
     "phases": [{"kind": "conversion", "starts_on": "2026-11-28", "ends_on": "2026-12-02"}],
     "products": [{"sku": "SKU2", "allocation": 3}],
     "channels": [{"channel": "live_room", "starts_at": "2026-11-24T21:00:00+08:00",
                   "ends_at": "2026-11-24T23:00:00+08:00"}],
     "budget_fen": 300_000},
    {"code": "farm", "name": "助农丰收季", "tier": "hot_topic", "kind": "esg",
     "starts_on": "2026-11-20", "ends_on": "2026-11-30",
     "phases": [{"kind": "conversion", "starts_on": "2026-11-20", "ends_on": "2026-11-30"}],
     "products": [{"sku": "SKU3", "impact_unit": "kg", "impact_per_unit": "1.5"}],
     "donation_bp": 500},
)
Headers = dict[str, str]


def app_for(services: Services) -> FastAPI:
    """The app, with the campaign pages mounted if the console does not mount them yet."""
    app = create_app(services=services)
    if not any(getattr(r, "path", "") == "/console/calendar" for r in app.routes):
        app.include_router(router)
    return app


def wire(tmp: Path) -> Services:
    """The test catalog, a brand budget, campaigns a, b (in conflict of every kind) and
    the ESG campaign farm; c1 bought 2 SKU1 and 1 SKU3 at the clock (2026-11-20)."""
    found: Services = _wire(tmp, FixedClock(T0), None)
    headers = bearer(make_key(found, sorted(PERMISSIONS)))
    with TestClient(create_app(services=found)) as client:
        seed_catalog(client, headers)
        assert client.put(f"{API}/budgets", headers=headers, json={
            "brand": "b1", "month": "2026-11", "budget_fen": 700_000}).status_code == 200
        for campaign in CAMPAIGNS:
            made = client.post(API, json=campaign, headers=headers)
            assert made.status_code == 201, made.text
        assert client.post("/api/v1/customers", headers=headers,
                           json={"external_id": "c1"}).status_code == 201
        assert client.post("/api/v1/orders", headers=headers, json={
            "external_id": "o1", "customer_external_id": "c1",
            "lines": [{"sku": "SKU1", "quantity": 2}, {"sku": "SKU3", "quantity": 1}]}
        ).status_code == 201
        assert client.post("/api/v1/orders/o1/transitions", headers=headers,
                           json={"to": "paid"}).status_code == 200
    add_user(found, "admin", "admin")
    add_user(found, "ana", "analyst")
    add_user(found, "partner", "partner", brand_ids=[1])
    return found


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    found = wire(Path(tmp_path_factory.mktemp("campaign-pages")))
    yield found
    close(found)


@pytest.fixture
def own(tmp_path: Path) -> Iterator[Services]:
    found = wire(tmp_path)
    yield found
    close(found)


def client_for(services: Services, username: str) -> Iterator[TestClient]:
    with TestClient(app_for(services)) as c:
        assert log_in(c, username).status_code == 303
        # these tests read the English labels; test_console_i18n covers the catalogs
        assert c.get("/console/lang/en", follow_redirects=False).status_code == 303
        yield c


@pytest.fixture
def admin(shared: Services) -> Iterator[TestClient]:
    yield from client_for(shared, "admin")


def ids(services: Services) -> dict[str, int]:
    headers = bearer(make_key(services, ["campaigns:read"]))
    with TestClient(create_app(services=services)) as c:
        return {x["code"]: x["id"] for x in c.get(API, headers=headers).json()["items"]}


def row_ids(html: str, table_id: str, prefix: str) -> list[str]:
    body = re.search(rf'<table class="[^"]*" id="{table_id}">.*?<tbody>(.*?)</tbody>', html,
                     re.S)
    assert body is not None, f"no table {table_id}"
    return re.findall(rf'<tr id="{prefix}-([^"]+)"', body.group(1))


# --- list and detail -------------------------------------------------------------------


def test_list_with_filters(admin: TestClient, shared: Services) -> None:
    known = ids(shared)
    page = admin.get("/console/campaigns")
    assert page.status_code == 200
    assert sorted(row_ids(page.text, "campaigns-table", "campaign")) == sorted(
        str(i) for i in known.values())
    assert "助农丰收季" in page.text
    assert 'data-status="live"' in page.text
    esg = admin.get("/console/campaigns", params={"kind": "esg"}).text
    assert row_ids(esg, "campaigns-table", "campaign") == [str(known["farm"])]
    none = admin.get("/console/campaigns", params={"status": "ended"}).text
    assert 'id="campaigns-empty"' in none
    assert "campaigns-table" not in none
    text = admin.get("/console/campaigns", params={"q": "囤货"}).text
    assert row_ids(text, "campaigns-table", "campaign") == [str(known["b"])]


def test_campaign_detail(admin: TestClient, shared: Services) -> None:
    known = ids(shared)
    page = admin.get(f"/console/campaigns/{known['a']}")
    assert page.status_code == 200
    html = page.text
    assert html.count('class="timeline-bar phase-') == 4
    assert 'style="left: 0.0%; width: 18.18%"' in html  # teaser: 2 of 11 days
    assert row_ids(html, "phase-results", "phase") == ["teaser", "seeding", "conversion",
                                                       "word_of_mouth"]
    assert re.search(r'id="kpi-gmv_fen">¥198\.00<', html)  # 2 × SKU1 at ¥99
    assert "19.8%" in html  # of the ¥1,000 GMV target
    conflicts = re.search(r'id="campaign-conflict-list">(.*?)</ul>', html, re.S)
    assert conflicts is not None
    kinds = re.findall(r'data-kind="([a-z_]+)"', conflicts.group(1))
    assert sorted(kinds) == ["budget", "channel", "product_overlap", "stock"]
    assert f'href="/console/campaigns/{known["b"]}"' in conflicts.group(1)
    assert 'id="esg-impact"' not in html
    farm = admin.get(f"/console/campaigns/{known['farm']}").text
    assert re.search(r'id="impact-kg">1\.5<', farm)
    assert re.search(r'id="esg-donation">¥149\.95<', farm)  # 5 % of ¥2,999.00
    assert re.search(r'id="esg-beneficiaries">1<', farm)
    assert admin.get("/console/campaigns/999").status_code == 404


# --- the form --------------------------------------------------------------------------


def form_data(**changes: str) -> dict[str, str]:
    data = {"code": "new", "name": "新品首发", "tier": "hot_topic", "kind": "commercial",
            "brand": "b2", "starts_on": "2026-12-05", "ends_on": "2026-12-10",
            "phase_teaser_starts_on": "2026-12-05", "phase_teaser_ends_on": "2026-12-06",
            "phase_conversion_starts_on": "2026-12-07",
            "phase_conversion_ends_on": "2026-12-10",
            "products": "SKU3, 2", "channels": "douyin, 2026-12-07 20:00, 2026-12-07 22:00",
            "budget": "1,200.50", "kpi_gmv": "5000", "kpi_orders": "10"}
    data.update(changes)
    return data


def submit(c: TestClient, path: str, data: dict[str, str]) -> Any:
    token = csrf_in(c.get("/console/campaigns/new").text)
    return c.post(path, data={**data, "csrf_token": token}, follow_redirects=False)


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"phase_conversion_starts_on": "2026-12-06"}, "phase_conversion_starts_on",
     "overlaps the teaser phase"),
    ({"phase_teaser_ends_on": ""}, "phase_teaser_ends_on", "Give both days of the phase"),
    ({"products": "SKU3\nNOPE, 4"}, "products", "Line 2: no product &#39;NOPE&#39;"),
    ({"products": "SKU3, many"}, "products", "Line 1: The allocation must be a whole number."),
    ({"channels": "douyin, 2026-12-07 22:00, 2026-12-07 20:00"}, "channels",
     "Line 1: the slot ends before it starts"),
    ({"channels": "tv, 2026-12-07 20:00, 2026-12-07 22:00"}, "channels", "Line 1: Input"),
    ({"budget": "lots"}, "budget", "Enter an amount in yuan"),
    ({"ends_on": "2026-12-04"}, "ends_on", "the campaign ends before it starts"),
    ({"code": "a"}, "code", "a campaign &#39;a&#39; exists"),
    ({"name": ""}, "name", "String should have at least 1 character"),
    ({"donation": "5"}, "donation", "only ESG campaigns donate"),
])
def test_form_field_errors(shared: Services, changes: dict[str, str], field: str,
                           message: str) -> None:
    for c in client_for(shared, "admin"):
        refused = submit(c, "/console/campaigns/new", form_data(**changes))
        assert refused.status_code == 422
        error = re.search(rf'id="error-{field}">(.*?)</span>', refused.text, re.S)
        assert error is not None, refused.text[:3000]
        assert message in error.group(1)
        assert 'id="form-errors"' in refused.text
        assert 'value="新品首发"' in refused.text or field == "name"  # the input is kept
    assert "new" not in ids(shared)


def test_create_edit_delete(own: Services) -> None:
    for c in client_for(own, "admin"):
        made = submit(c, "/console/campaigns/new", form_data())
        assert made.status_code == 303, made.text[:2000]
        location = made.headers["location"]
        assert location.endswith("?saved=1")
        page = c.get(location).text
        assert "新品首发" in page
        assert 'class="alert alert-success"' in page
        assert "¥1,200.50" in page
        campaign_id = ids(own)["new"]
        edit = c.get(f"/console/campaigns/{campaign_id}/edit").text
        assert 'value="1200.5"' in edit
        assert "SKU3, 2" in edit
        assert "douyin, 2026-12-07 20:00, 2026-12-07 22:00" in edit
        changed = submit(c, f"/console/campaigns/{campaign_id}/edit",
                         form_data(name="新品首发 2", draft="on", products="SKU3, 2\nSKU1"))
        assert changed.status_code == 303
        page = c.get(f"/console/campaigns/{campaign_id}").text
        assert "新品首发 2" in page
        assert 'data-status="draft"' in page
        assert page.count("<code>SKU") == 2
        token = csrf_in(page)
        gone = c.post(f"/console/campaigns/{campaign_id}/delete",
                      data={"csrf_token": token}, follow_redirects=False)
        assert gone.status_code == 303
        assert "new" not in ids(own)


# --- the calendar ----------------------------------------------------------------------


def test_calendar_month_and_week(admin: TestClient, shared: Services) -> None:
    known = ids(shared)
    month = admin.get("/console/calendar", params={"date": "2026-11-05"})
    assert month.status_code == 200
    html = month.text
    assert 'id="calendar-range">2026-11<' in html
    assert 'id="view-month" class="is-current"' in html
    day = re.search(r'<td id="day-2026-11-24"[^>]*>(.*?)</td>', html, re.S)
    assert day is not None
    entries = re.findall(r'class="cal-entry phase-([a-z_]+)[^"]*" href="/console/campaigns/'
                         r'(\d+)"', day.group(1))
    assert entries == [("conversion", str(known["a"])), ("conversion", str(known["farm"])),
                       ("none", str(known["b"]))]
    assert html.count('<td id="day-2026-11-') == 30
    panel = re.search(r'id="conflicts-panel">(.*)</section>', html, re.S)
    assert panel is not None
    assert sorted(re.findall(r'data-kind="([a-z_]+)"', panel.group(1))) == [
        "budget", "channel", "product_overlap", "stock"]
    for side in ("a", "b"):
        assert f'class="chip conflict-link" href="/console/campaigns/{known[side]}"' in html
    week = admin.get("/console/calendar", params={"view": "week", "date": "2026-11-25"}).text
    assert 'id="view-week" class="is-current"' in week
    assert re.findall(r'<td id="day-([0-9-]+)"', week) == [
        f"2026-11-{d}" for d in range(23, 30)]
    assert "cal-week" in week
    empty = admin.get("/console/calendar", params={"date": "2027-03-01"}).text
    assert 'id="calendar-empty"' in empty
    assert 'id="conflicts-empty"' in empty


def test_both_languages(admin: TestClient) -> None:
    for lang, word in (("en", "Campaign calendar"), ("zh_CN", "<html lang=\"zh-CN\"")):
        admin.get(f"/console/lang/{lang}", follow_redirects=False)
        assert word in admin.get("/console/calendar").text


def test_who_may_open_what(shared: Services) -> None:
    known = ids(shared)
    for c in client_for(shared, "ana"):  # analyst: reads, never writes
        assert c.get("/console/campaigns").status_code == 200
        assert c.get("/console/calendar").status_code == 200
        page = c.get(f"/console/campaigns/{known['a']}").text
        assert 'id="campaign-edit"' not in page
        assert c.get("/console/campaigns/new").status_code == 403
        assert c.get(f"/console/campaigns/{known['a']}/edit").status_code == 403
        assert 'id="new-campaign"' not in c.get("/console/campaigns").text
    for c in client_for(shared, "partner"):
        for path in ("/console/campaigns", "/console/calendar",
                     f"/console/campaigns/{known['a']}"):
            assert c.get(path).status_code == 403
    with TestClient(app_for(shared)) as anonymous:
        found = anonymous.get("/console/calendar", follow_redirects=False)
        assert found.status_code in (302, 303, 401)
