"""The customer-intelligence pages over HTTP on the small demo: the figures shown are the
services' own, forms explain their errors, partners are refused, empty stores say what to
run."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
from console_data import add_user, csrf_in, log_in, nav_links
from fastapi.testclient import TestClient

from conftest import T0, _wire
from shequ.core.clock import FixedClock
from shequ.core.permissions import CLI_PRINCIPAL
from shequ.core.web import Services
from shequ.demo.loader import load_demo
from shequ.domains.customers import service as customers
from shequ.domains.insight import service as insight
from shequ.domains.lifecycle import service as lifecycle
from shequ.domains.membership import service as membership
from shequ.domains.orders import service as orders
from shequ.domains.segments import service as segments
from shequ.domains.segments.schemas import SegmentIn
from shequ.entrypoints.app import create_app
from shequ.entrypoints.bootstrap import close

END = date(2026, 11, 20)
PAGES = ("/console/customers", "/console/value-matrix", "/console/segments",
         "/console/lifecycle", "/console/membership")
PAID_RULE = {"event": "payment", "within_days": 30}


@dataclass(frozen=True)
class Demo:
    services: Services
    segment_id: int


def prepare_insight(wired: Services) -> int:
    """Save one segment of our own over the demo (which has run the whole insight chain:
    stages, tiers, profiles, tags, preset segments); returns its id."""
    saved = segments.create_segment(wired, CLI_PRINCIPAL, SegmentIn(name="paid-30",
                                                                    rule=PAID_RULE))
    return saved.id


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    wired = _wire(Path(tmp_path_factory.mktemp("customer-demo")), FixedClock(T0), None)
    load_demo(wired, size="small", seed=7, end=END)
    segment_id = prepare_insight(wired)
    add_user(wired, "admin", "admin")
    add_user(wired, "ana", "analyst")
    add_user(wired, "partner", "partner", brand_ids=[1])
    yield Demo(wired, segment_id)
    close(wired)


def _client(demo: Demo, username: str) -> Iterator[TestClient]:
    with TestClient(create_app(services=demo.services)) as c:
        assert log_in(c, username).status_code == 303
        yield c


@pytest.fixture(scope="module")
def admin(demo: Demo) -> Iterator[TestClient]:
    yield from _client(demo, "admin")


@pytest.fixture(scope="module")
def analyst(demo: Demo) -> Iterator[TestClient]:
    yield from _client(demo, "ana")


def cells(html: str, table_id: str) -> list[list[str]]:
    """The body cells of table ``table_id`` (tags stripped)."""
    body = re.search(rf'<table class="[^"]*" id="{table_id}">.*?<tbody>(.*?)</tbody>', html,
                     re.S)
    assert body is not None, f"no table {table_id}"
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body.group(1), re.S)
    return [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>",
                                                                   r, re.S)] for r in rows]


def chart_option(html: str, chart_id: str) -> dict:
    found = re.search(rf'<script type="application/json" id="{chart_id}-data">(.*?)</script>',
                      html, re.S)
    assert found is not None, f"no chart {chart_id}"
    option: dict = json.loads(found.group(1))
    return option


def number(text: str) -> int:
    return int(text.replace(",", ""))


def test_admin_sees_every_customer_page_in_the_sidebar_and_each_opens(admin: TestClient
                                                                      ) -> None:
    links = nav_links(admin.get("/console/").text)
    for path in PAGES:
        assert path in links
        assert admin.get(path).status_code == 200, path


def test_partner_gets_no_link_and_403_on_every_customer_page(demo: Demo) -> None:
    for c in _client(demo, "partner"):
        links = nav_links(c.get("/console/").text)
        assert not set(PAGES) & set(links)
        for path in (*PAGES, "/console/customers/c000001", f"/console/segments/{demo.segment_id}"):
            answer = c.get(path)
            assert answer.status_code == 403, path
            assert "<html" in answer.text


def test_customer_list_pages_filters_and_links_to_the_360_view(demo: Demo,
                                                               admin: TestClient) -> None:
    with demo.services.sessions() as session:
        every = customers.list_customers(session, limit=100)
        city = every.items[0].city
        assert city is not None
        in_city = customers.list_customers(session, city=city, limit=100)
        buyer = next(c for c in every.items
                     if insight.get_profile(session, CLI_PRINCIPAL, c.external_id))
        profile = insight.get_profile(session, CLI_PRINCIPAL, buyer.external_id)
    page = admin.get("/console/customers")
    assert f"{every.total:,}" in page.text
    rows = cells(page.text, "customers-table")
    assert [r[0] for r in rows] == [c.external_id for c in every.items[:50]]
    assert f'href="/console/customers/{every.items[0].external_id}"' in page.text
    second = cells(admin.get("/console/customers?page=2").text, "customers-table")
    assert [r[0] for r in second] == [c.external_id for c in every.items[50:100]]
    filtered = cells(admin.get(f"/console/customers?city={city}").text, "customers-table")
    assert {r[2] for r in filtered} == {city}
    assert len(filtered) == min(in_city.total, 50)
    found = cells(admin.get(f"/console/customers?q={buyer.external_id}").text,
                  "customers-table")
    assert len(found) == 1
    assert profile is not None
    assert found[0][5] == {"t1": "核心高价值", "t2": "高价值", "t3": "潜力", "t4": "普通",
                           "t5": "低价值"}[profile.value_tier]
    assert found[0][6] == profile.rfm_group_name
    missing = admin.get("/console/customers?q=nobody-here")
    assert "nobody-here" in missing.text
    assert 'id="customers-empty"' in missing.text


def test_customer_360_shows_value_tags_orders_and_the_growth_trajectory(
        demo: Demo, admin: TestClient) -> None:
    with demo.services.sessions() as session:
        every = customers.list_customers(session, limit=200).items
        buyer = next(c.external_id for c in every
                     if (p := insight.get_profile(session, CLI_PRINCIPAL, c.external_id))
                     and p.orders >= 2)
        profile = insight.get_profile(session, CLI_PRINCIPAL, buyer)
        tags = insight.customer_tags(session, CLI_PRINCIPAL, buyer)
    assert profile is not None
    page = admin.get(f"/console/customers/{buyer}")
    assert page.status_code == 200
    assert buyer in page.text
    assert f"{profile.p_alive * 100:.1f}%" in page.text
    option = chart_option(page.text, "trajectory-chart")
    kinds = [row[1] for row in cells(page.text, "trajectory-table")]
    assert "首单" in kinds
    assert "复购" in kinds
    points = option["series"][1]["data"]
    assert len(points) == len(kinds)
    assert [p["value"][0] for p in points] == sorted(p["value"][0] for p in points)
    orders_shown = cells(page.text, "orders-table")
    assert 2 <= len(orders_shown) <= 20
    assert all(row[4].startswith("¥") for row in orders_shown)
    for tag in tags[:3]:
        assert f"{tag.label} · {tag.score:.2f}" in page.text
    assert admin.get("/console/customers/nobody-here").status_code == 404


def test_customer_360_of_someone_who_never_bought_says_so(demo: Demo,
                                                         admin: TestClient) -> None:
    with demo.services.sessions() as session:
        every = customers.list_customers(session, limit=100).items
        # no profile and no order at all (the demo's commerce step may have sold to
        # customers the profiles, computed before it, saw as browsers)
        browser = next(c.external_id for c in every
                       if insight.get_profile(session, CLI_PRINCIPAL, c.external_id) is None
                       and orders.list_orders(session, CLI_PRINCIPAL, customer=c.external_id,
                                              limit=1).total == 0)
    page = admin.get(f"/console/customers/{browser}")
    assert page.status_code == 200
    assert "该客户还没有下过单。" in page.text
    assert "尚未购买" in page.text


def test_value_matrix_shows_the_service_figures_and_exports_them(demo: Demo,
                                                                 admin: TestClient) -> None:
    with demo.services.sessions() as session:
        matrix = insight.value_matrix(session, CLI_PRINCIPAL)
    page = admin.get("/console/value-matrix")
    tiers = cells(page.text, "tiers-table")
    assert [number(r[1]) for r in tiers] == [t.customers for t in matrix.tiers]
    assert sum(number(r[1]) for r in tiers) == matrix.buyers > 0
    assert [r[6] for r in tiers] == [f"{t.spend_multiple:.2f}×" if t.spend_multiple is not None
                                     else "–" for t in matrix.tiers]
    groups = cells(page.text, "groups-table")
    assert len(groups) == 8
    assert [number(r[1]) for r in groups] == [g.customers for g in matrix.rfm_groups]
    option = chart_option(page.text, "tier-chart")
    assert option["series"][1]["data"] == [None if t.gmv_share is None
                                           else round(t.gmv_share * 100, 1) for t in matrix.tiers]
    assert "BG/NBD" in [r[0] for r in cells(page.text, "models-table")]
    exported = admin.get("/console/value-matrix?format=csv&table=rfm_groups")
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text.lstrip("\ufeff"))))
    assert rows[0][:2] == ["RFM 分组", "客户数"]
    assert [r[1] for r in rows[1:]] == [str(g.customers) for g in matrix.rfm_groups]


def test_segments_list_detail_members_export_and_refresh(demo: Demo, admin: TestClient
                                                         ) -> None:
    preview = segments.preview(demo.services, CLI_PRINCIPAL, PAID_RULE)
    listed = admin.get("/console/segments")
    row = next(r for r in cells(listed.text, "segments-table") if r[0].startswith("paid-30"))
    assert row[0].startswith("paid-30")
    assert number(row[2]) == preview.size > 0
    detail = admin.get(f"/console/segments/{demo.segment_id}")
    assert preview.summary in detail.text
    first = re.findall(r'class="chip" href="/console/customers/([^"]+)"', detail.text)
    assert first[:len(preview.sample)] == preview.sample
    assert len(first) == min(50, preview.size)
    assert admin.get("/console/segments/999999").status_code == 404
    exported = admin.get(f"/console/segments/{demo.segment_id}/export")
    assert exported.status_code == 200
    assert len(exported.text.lstrip("\ufeff").strip().splitlines()) == preview.size + 1
    refused = admin.post(f"/console/segments/{demo.segment_id}/refresh",
                         follow_redirects=False)
    assert refused.status_code == 403  # no CSRF token
    done = admin.post(f"/console/segments/{demo.segment_id}/refresh",
                      data={"csrf_token": csrf_in(detail.text)}, follow_redirects=False)
    assert done.status_code == 303
    shown = admin.get(done.headers["location"])
    assert 'class="alert alert-success"' in shown.text
    assert chart_option(shown.text, "size-chart")["series"][0]["data"][-1] == preview.size


def test_segment_form_names_the_wrong_part_and_saves_a_good_rule(demo: Demo,
                                                                 admin: TestClient) -> None:
    form = admin.get("/console/segments?preset=cart_abandoners")
    assert "加购未付" in form.text
    assert "add_to_cart" in form.text
    token = csrf_in(form.text)
    bad_json = admin.post("/console/segments", data={
        "csrf_token": token, "name": "broken", "rule": '{"event": '})
    assert bad_json.status_code == 422
    assert "<code>rule</code>" in bad_json.text
    assert "line 1" in bad_json.text
    bad_rule = admin.post("/console/segments", data={
        "csrf_token": token, "name": "broken", "rule": json.dumps(
            {"all": [PAID_RULE, {"event": "payment", "within_days": -3}]})})
    assert bad_rule.status_code == 422
    error = re.search(r'id="segment-error"><span><code>([^<]+)</code>', bad_rule.text)
    assert error is not None
    assert error.group(1).startswith("rule.all[1]")
    assert "within_days" in bad_rule.text
    assert 'value="broken"' in bad_rule.text
    saved = admin.post("/console/segments", data={
        "csrf_token": token, "name": "cart-7", "rule": json.dumps(
            {"event": "add_to_cart", "within_days": 7})}, follow_redirects=False)
    assert saved.status_code == 303
    page = admin.get(saved.headers["location"])
    assert "cart-7" in page.text
    size = segments.preview(demo.services, CLI_PRINCIPAL,
                            {"event": "add_to_cart", "within_days": 7}).size
    assert re.search(rf'id="segment-size">{size:,}<', page.text)


def test_lifecycle_page_shows_counts_transitions_and_ltv(demo: Demo, admin: TestClient
                                                         ) -> None:
    day = lifecycle.data_window(demo.services)[1]
    with demo.services.sessions() as session:
        snapshot = lifecycle.snapshot(session, day)
        moved = lifecycle.transitions(session, day - timedelta(days=30), day)
    page = admin.get("/console/lifecycle")
    assert page.status_code == 200
    for stage, count in snapshot.counts.items():
        shown = re.search(rf'id="stage-{stage}">.*?kpi-value">([^<]+)<', page.text, re.S)
        assert shown is not None
        assert number(shown.group(1)) == count
    table = cells(page.text, "transitions-table")
    assert [[number(v) for v in row[1:]] for row in table[:len(moved.stages)]] == moved.matrix
    assert len(cells(page.text, "ltv-table")) == 6
    assert "series" in chart_option(page.text, "stage-series")
    assert admin.get("/console/lifecycle?day=2026-13-01").status_code == 422
    exported = admin.get("/console/lifecycle?format=csv&table=transitions")
    assert exported.text.lstrip("\ufeff").splitlines()[0].startswith("从 \\ 到")


def test_strategy_edit_saves_and_refuses_a_bad_action(demo: Demo, admin: TestClient,
                                                     analyst: TestClient) -> None:
    page = admin.get("/console/lifecycle")
    token = csrf_in(page.text)
    saved = admin.post("/console/lifecycle/strategies/dormant", data={
        "csrf_token": token, "action": "email", "channel": "email",
        "message": "回来看看新品"}, follow_redirects=False)
    assert saved.status_code == 303
    row = next(r for r in cells(admin.get("/console/lifecycle").text, "strategies-table")
               if r[0] == "沉睡")
    assert row[2:5] == ["邮件", "email", "回来看看新品"]
    bad = admin.post("/console/lifecycle/strategies/dormant", data={
        "csrf_token": token, "action": "carrier_pigeon"})
    assert bad.status_code == 422
    assert 'class="alert alert-error"' in bad.text
    read_only = analyst.get("/console/lifecycle")
    assert "strategy-form-dormant" not in read_only.text
    assert analyst.post("/console/lifecycle/strategies/dormant", data={
        "csrf_token": csrf_in(read_only.text), "action": "sms"}).status_code == 403


def test_membership_page_shows_rules_and_tier_figures(demo: Demo, admin: TestClient) -> None:
    with demo.services.sessions() as session:
        rules = membership.list_rules(session)
        found = membership.figures(session, END, zone=demo.services.settings.zone)
    page = admin.get("/console/membership")
    shown_rules = cells(page.text, "rules-table")
    assert [r[0] for r in shown_rules] == [rule.name for rule in rules]
    assert shown_rules[0][2] == f"¥{rules[0].threshold / 100:,.2f}"
    figures = cells(page.text, "member-tiers-table")
    assert [number(r[1]) for r in figures] == [row.customers for row in found.items]
    assert figures[0][0] == "非会员"


def test_empty_stores_explain_what_to_run(services: Services) -> None:
    add_user(services, "admin", "admin")
    with TestClient(create_app(services=services)) as c:
        assert log_in(c, "admin").status_code == 303
        assert "shequ insight refresh" in c.get("/console/value-matrix").text
        assert "shequ lifecycle refresh" in c.get("/console/lifecycle").text
        membership_page = c.get("/console/membership").text
        assert "shequ membership rules --install" in membership_page
        assert "shequ membership evaluate" in membership_page
        assert 'id="segments-empty"' in c.get("/console/segments").text
        assert "shequ demo" in c.get("/console/customers").text
