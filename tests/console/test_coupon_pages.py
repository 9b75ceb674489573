"""The coupon console over HTTP on real stores: the templates list with figures and its
empty state, the create form (errors under each faulty field, nothing saved; a good form
saves and opens the template), a template's page with terms, figures, batches and
redemptions, issuance from pasted ids and from a saved segment, and who may do what."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pyarrow as pa
import pytest
from console_data import add_user, csrf_in, log_in
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from conftest import T0
from shequ.analytics.events import EVENT_SCHEMA
from shequ.core.db import transaction
from shequ.core.permissions import CLI_PRINCIPAL
from shequ.core.web import Services
from shequ.domains.campaigns import coupons
from shequ.domains.campaigns.coupon_models import CouponTemplate
from shequ.domains.campaigns.coupon_schemas import CheckoutIn, TemplateIn
from shequ.domains.catalog import service as catalog
from shequ.domains.catalog.schemas import BrandIn, ProductIn
from shequ.domains.customers import service as customers
from shequ.domains.customers.schemas import CustomerIn
from shequ.domains.events.service import event_store
from shequ.domains.orders.schemas import LineIn
from shequ.domains.segments import service as segments
from shequ.domains.segments.schemas import SegmentIn
from shequ.entrypoints.app import create_app
from shequ.entrypoints.console.coupon_pages import router

CUSTOMERS = ("c1", "c2", "c3")


def app_with_pages(services: Services) -> FastAPI:
    """The real app, with the coupon pages mounted when the console does not yet."""
    app = create_app(services=services)
    if not any(getattr(r, "path", "") == "/console/coupons" for r in app.routes):
        app.include_router(router)
    return app


def seed_shop(services: Services) -> None:
    with transaction(services.sessions) as session:
        catalog.create_brand(session, BrandIn(external_id="b1", name="花知晓"))
        catalog.create_product(session, services.clock, CLI_PRINCIPAL, ProductIn(
            sku="CREAM", name="面霜", brand_external_id="b1", price_fen=9_900, stock=100))
        for key in CUSTOMERS:
            customers.create_customer(session, services.clock, CustomerIn(external_id=key))


def seed_coupon(services: Services) -> None:
    """Template NEW20 issued to c1 and c2, used by c1 on order A1."""
    with transaction(services.sessions) as session:
        coupons.create_template(session, services.clock, TemplateIn(
            code="NEW20", name="新人立减20", kind="fixed", amount_off_fen=2_000,
            starts_at=T0 - timedelta(days=1), ends_at=T0 + timedelta(days=10),
            total_quantity=50, budget_fen=100_000))
        codes = coupons.issue(session, services.clock, "NEW20", "welcome", ["c1", "c2"]).codes
        coupons.checkout(session, services.clock, CheckoutIn(
            coupon_code=codes["c1"], customer_external_id="c1", order_external_id="A1",
            lines=[LineIn(sku="CREAM", quantity=1)]))


@pytest.fixture
def admin(services: Services) -> Iterator[TestClient]:
    seed_shop(services)
    add_user(services, "admin", "admin")
    with TestClient(app_with_pages(services)) as client:
        assert log_in(client, "admin").status_code == 303
        # these tests read the English labels; test_console_i18n covers the catalogs
        assert client.get("/console/lang/en", follow_redirects=False).status_code == 303
        yield client


def test_empty_list_and_the_create_form(admin: TestClient, services: Services) -> None:
    page = admin.get("/console/coupons")
    assert page.status_code == 200
    assert 'id="templates-empty"' in page.text
    assert 'id="new-template"' in page.text
    form = admin.get("/console/coupons/new")
    assert form.status_code == 200
    assert 'id="template-form"' in form.text
    assert 'value="2026-11-20"' in form.text  # today in Shanghai, the window's first day
    bad = admin.post("/console/coupons", data={
        "csrf_token": csrf_in(form.text), "code": "BAD CODE", "name": "坏券", "kind": "fixed",
        "amount_off": "abc", "starts_on": "2026-11-20", "ends_on": "2026-11-30",
        "scope": "all", "per_customer_limit": "1", "total_quantity": "10", "budget": "100"})
    assert bad.status_code == 422
    assert 'id="error-amount_off"' in bad.text
    assert 'value="坏券"' in bad.text
    worse = admin.post("/console/coupons", data={
        "csrf_token": csrf_in(form.text), "code": "MJ", "name": "满减", "kind": "threshold",
        "amount_off": "50", "min_subtotal": "30", "starts_on": "2026-11-20",
        "ends_on": "2026-11-10", "scope": "skus", "skus": "GHOST", "per_customer_limit": "1",
        "total_quantity": "10", "budget": "20"})
    assert worse.status_code == 422
    for field in ("min_subtotal", "ends_on", "skus", "budget"):
        assert f'id="error-{field}"' in worse.text, field
    assert 'aria-invalid="true"' in worse.text
    with transaction(services.sessions) as session:
        assert session.scalar(select(func.count()).select_from(CouponTemplate)) == 0
    good = admin.post("/console/coupons", follow_redirects=False, data={
        "csrf_token": csrf_in(form.text), "code": "MJ", "name": "满300减40",
        "kind": "threshold", "amount_off": "40", "min_subtotal": "300",
        "starts_on": "2026-11-20", "ends_on": "2026-11-30", "scope": "brand",
        "brand_external_id": "b1", "per_customer_limit": "2", "total_quantity": "100",
        "budget": "4000"})
    assert good.status_code == 303
    assert good.headers["location"] == "/console/coupons/MJ?created=1"
    with transaction(services.sessions) as session:
        made = coupons.get_template(session, "MJ")
    assert (made.amount_off_fen, made.min_subtotal_fen, made.budget_fen) == (4_000, 30_000,
                                                                           400_000)
    # the days are Shanghai days: 2026-11-20 00:00 +08:00 to the end of 2026-11-30
    assert made.starts_at == T0 - timedelta(hours=16)
    assert made.ends_at - made.starts_at == timedelta(days=11)
    shown = admin.get("/console/coupons/MJ?created=1")
    assert 'id="template-created"' in shown.text
    assert 'id="batches-empty"' in shown.text
    assert 'id="redemptions-empty"' in shown.text


def test_list_and_template_page_show_the_figures(admin: TestClient, services: Services) -> None:
    seed_coupon(services)
    page = admin.get("/console/coupons")
    row = re.search(r'<tr id="template-NEW20">(.*?)</tr>', page.text, re.S)
    assert row is not None
    cells = re.findall(r'<td class="num">([^<]*)</td>', row.group(1))
    assert cells == ["2", "1", "50.0%", "¥0.00", "1"]  # issued, redeemed, rate, GMV, new
    assert "¥20.00 / ¥1,000.00" in row.group(1)
    with transaction(services.sessions) as session:
        coupons.create_template(session, services.clock, TemplateIn(
            code="PCT", name="85折", kind="percent", percent_off=15, max_off_fen=5_000,
            min_subtotal_fen=10_000, starts_at=T0, ends_at=T0 + timedelta(days=3),
            total_quantity=5, budget_fen=50_000))
    listed = admin.get("/console/coupons").text
    pct = re.search(r'<tr id="template-PCT">(.*?)</tr>', listed, re.S)
    assert pct is not None
    assert re.search(r"15% off\s*· at most ¥50.00\s*· from ¥100.00", pct.group(1))
    assert listed.index('id="template-PCT"') < listed.index('id="template-NEW20"')  # newest
    detail = admin.get("/console/coupons/NEW20")
    assert detail.status_code == 200
    assert re.search(r'id="fig-issued".*?kpi-value">2<', detail.text, re.S)
    assert 'data-order="A1" data-state="active"' in detail.text
    assert 'data-batch="welcome"' in detail.text
    assert admin.get("/console/coupons/NOPE").status_code == 404


def test_issue_from_pasted_ids_and_a_segment(admin: TestClient, services: Services) -> None:
    seed_coupon(services)
    store = event_store(services)
    store.ingest_arrow(pa.Table.from_pylist(
        [{f.name: {"event_id": "e3", "name": "payment", "ts": T0 - timedelta(days=1),
                   "customer_id": "c3"}.get(f.name) for f in EVENT_SCHEMA}],
        schema=EVENT_SCHEMA))
    segment = segments.create_segment(services, CLI_PRINCIPAL, SegmentIn(
        name="Paid lately", key="paid-lately", rule={"event": "payment", "within_days": 30}))
    page = admin.get("/console/coupons/NEW20")
    token = csrf_in(page.text)
    assert f'<option value="{segment.id}"' in page.text
    pasted = admin.post("/console/coupons/NEW20/issue", follow_redirects=False, data={
        "csrf_token": token, "source": "list", "batch_key": "vip",
        "customer_ids": "c1, c2\nc3 ghost"})
    assert pasted.status_code == 303
    shown = admin.get(pasted.headers["location"])
    result = re.search(r'id="issue-result">(.*?)</div>\s*</div>', shown.text, re.S)
    assert result is not None
    assert "1 coupons issued" in result.group(1)
    # c1 and c2 hold the one coupon each may have; ghost is nobody
    assert re.findall(r'data-reason="(\w+)">[^<]*: (\d+)', result.group(1)) == [
        ("unknown_customer", "1"), ("limit_reached", "2")]
    again = admin.post("/console/coupons/NEW20/issue", follow_redirects=True, data={
        "csrf_token": token, "source": "list", "batch_key": "vip", "customer_ids": "c3"})
    assert 'data-reason="already_issued"' in again.text
    by_segment = admin.post("/console/coupons/NEW20/issue", follow_redirects=True, data={
        "csrf_token": token, "source": "segment", "segment_id": str(segment.id),
        "batch_key": "seg"})
    assert by_segment.status_code == 200
    assert 'data-batch="seg"' in by_segment.text
    assert 'data-reason="limit_reached"' in by_segment.text  # c3, the member, has one
    missing = admin.post("/console/coupons/NEW20/issue", data={
        "csrf_token": token, "source": "segment", "segment_id": "", "batch_key": "x"})
    assert missing.status_code == 422
    assert 'id="error-segment_id"' in missing.text
    empty = admin.post("/console/coupons/NEW20/issue", data={
        "csrf_token": token, "source": "list", "customer_ids": " ", "batch_key": "y"})
    assert empty.status_code == 422
    assert 'id="error-customer_external_ids"' in empty.text
    with transaction(services.sessions) as session:
        assert coupons.get_template(session, "NEW20").issued_count == 2 + 1


def test_readers_see_but_do_not_write(services: Services) -> None:
    seed_shop(services)
    seed_coupon(services)
    add_user(services, "ana", "analyst")
    with TestClient(app_with_pages(services)) as client:
        assert log_in(client, "ana").status_code == 303
        page = client.get("/console/coupons")
        assert page.status_code == 200
        assert 'id="new-template"' not in page.text
        detail = client.get("/console/coupons/NEW20")
        assert detail.status_code == 200
        assert 'id="issue-form"' not in detail.text
        assert client.get("/console/coupons/new").status_code == 403
        refused = client.post("/console/coupons/NEW20/issue", data={
            "csrf_token": csrf_in(page.text), "source": "list", "customer_ids": "c3",
            "batch_key": "x"})
        assert refused.status_code == 403
    with TestClient(app_with_pages(services)) as anonymous:
        gone = anonymous.get("/console/coupons", follow_redirects=False)
        assert gone.status_code in (302, 303, 307)
