"""The group-buying console over HTTP on real stores: the offers list with figures, an
offer's page (tiers, groups with states and countdowns, figure cards, pause/resume), the
create-offer form with its field errors, the expiry button, and who may open what."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from console_data import add_user, csrf_in, log_in
from fastapi import FastAPI
from fastapi.testclient import TestClient

from conftest import T0, _wire
from shequ.core.clock import FixedClock
from shequ.core.db import transaction
from shequ.core.permissions import CLI_PRINCIPAL
from shequ.core.web import Services
from shequ.domains.campaigns import groups
from shequ.domains.campaigns.group_schemas import JoinIn, OfferIn, OpenIn
from shequ.domains.catalog import service as catalog
from shequ.domains.catalog.schemas import BrandIn, ProductIn
from shequ.domains.customers import service as customers
from shequ.domains.customers.schemas import CustomerIn
from shequ.entrypoints.app import create_app
from shequ.entrypoints.bootstrap import close
from shequ.entrypoints.console.group_pages import parse_tiers
from shequ.entrypoints.console.group_pages import router as group_router

PAGE = "/console/group-buying"


def app_for(services: Services) -> FastAPI:
    """The app, with the group-buying pages added if the console does not mount them yet."""
    app = create_app(services=services)
    if not any(getattr(r, "path", None) == PAGE for r in app.routes):
        app.include_router(group_router)
    return app


def build_shop(services: Services, *, with_offer: bool = True) -> None:
    """Product TEA (¥100, 200 units), customers c0…c11, users; an offer ``tea`` with a
    succeeded group (c0–c2, at the deadline), a refunded one (c3 alone) and an open one
    (c4, c5)."""
    with transaction(services.sessions, actor="test") as s:
        catalog.create_brand(s, BrandIn(external_id="b1", name="茶园"))
        catalog.create_product(s, services.clock, CLI_PRINCIPAL, ProductIn(
            sku="TEA", name="明前龙井", brand_external_id="b1", price_fen=10_000, stock=200))
        for n in range(12):
            customers.create_customer(s, services.clock, CustomerIn(external_id=f"c{n}"))
    add_user(services, "admin", "admin")
    add_user(services, "ana", "analyst")
    add_user(services, "partner", "partner", brand_ids=[1])
    if not with_offer:
        return
    clock = services.clock
    assert isinstance(clock, FixedClock)
    with transaction(services.sessions) as s:
        groups.create_offer(s, clock, OfferIn.model_validate({
            "code": "tea", "title": "龙井三人团", "sku": "TEA", "hours": 2,
            "tiers": [{"size": 3, "percent_off": 15}, {"size": 4, "percent_off": 20}],
            "starts_at": clock.now() - timedelta(hours=3),
            "ends_at": clock.now() + timedelta(days=5), "stock": 50}))
    clock.advance(timedelta(hours=-3))
    try:
        with transaction(services.sessions) as s:
            first = groups.open_group(s, clock, OpenIn(offer="tea", customer_external_id="c0",
                                                       idempotency_key="o0")).group.id
            for n in (1, 2):
                groups.join_group(s, clock, JoinIn(group_id=first, customer_external_id=f"c{n}",
                                                   idempotency_key=f"j{n}"))
            groups.open_group(s, clock, OpenIn(offer="tea", customer_external_id="c3",
                                               idempotency_key="o3"))
    finally:
        clock.advance(timedelta(hours=3))
    groups.expire_groups(services)
    with transaction(services.sessions) as s:
        third = groups.open_group(s, clock, OpenIn(offer="tea", customer_external_id="c4",
                                                   idempotency_key="o4")).group.id
        groups.join_group(s, clock, JoinIn(group_id=third, customer_external_id="c5",
                                           idempotency_key="j5"))


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    found = _wire(Path(tmp_path_factory.mktemp("group-pages")), FixedClock(T0), None)
    build_shop(found)
    yield found
    close(found)


@pytest.fixture
def own(tmp_path: Path) -> Iterator[Services]:
    found = _wire(tmp_path, FixedClock(T0), None)
    build_shop(found)
    yield found
    close(found)


def client_for(services: Services, username: str) -> Iterator[TestClient]:
    with TestClient(app_for(services)) as c:
        assert log_in(c, username).status_code == 303
        # these tests read the English labels; test_console_i18n covers the catalogs
        assert c.get("/console/lang/en", follow_redirects=False).status_code == 303
        yield c


@pytest.fixture
def admin(shop: Services) -> Iterator[TestClient]:
    yield from client_for(shop, "admin")


def test_parse_tiers() -> None:
    assert parse_tiers("2:10, 3:15，5：25%") == [
        {"size": 2, "percent_off": 10}, {"size": 3, "percent_off": 15},
        {"size": 5, "percent_off": 25}]
    assert parse_tiers("2-10") is None
    assert parse_tiers("  ") is None


def test_offers_list_shows_figures(admin: TestClient) -> None:
    page = admin.get(PAGE)
    assert page.status_code == 200
    html = page.text
    row = re.search(r'<tr id="offer-tea".*?</tr>', html, re.S)
    assert row is not None
    cells = re.findall(r'<td class="num">(.*?)</td>', row.group(0), re.S)
    # stock left / stock, groups, success rate, members, new customers, GMV
    assert cells[0].strip() == "45 / 50"  # 3 ordered, 2 held by the open group
    assert cells[1:5] == ["3", "50.0%", "6", "6"]
    assert 'data-status="running"' in row.group(0)
    assert 'id="new-offer"' in html
    assert 'id="run-expiry"' in html


def test_offer_page_shows_groups_and_countdowns(admin: TestClient) -> None:
    html = admin.get(f"{PAGE}/tea").text
    assert re.search(r'id="fig-opened">3<', html)
    assert re.search(r'id="fig-success">50.0%<', html)
    assert re.search(r'id="fig-members">6<', html)
    states = re.findall(r'<tr id="group-\d+" data-state="(\w+)"', html)
    assert sorted(states) == ["open", "refunded", "succeeded"]
    countdown = re.search(r'data-seconds-left="(\d+)">(\d+):(\d\d):(\d\d)<', html)
    assert countdown is not None
    assert countdown.group(1) == str(2 * 3600)
    assert countdown.group(2, 3, 4) == ("2", "00", "00")
    assert "15% off at 3 people" in html
    assert html.count('<tr><td class="num">') >= 2  # the tiers table
    only_open = admin.get(f"{PAGE}/tea?state=open").text
    assert re.findall(r'data-state="(\w+)"', only_open.split('id="groups-table"')[1]) \
        == ["open"]
    assert 'id="groups-empty"' in admin.get(f"{PAGE}/tea?state=expired").text
    assert admin.get(f"{PAGE}/nope").status_code == 404


def test_create_form_with_field_errors(own: Services) -> None:
    for c in client_for(own, "admin"):
        form = c.get(f"{PAGE}/new")
        assert form.status_code == 200
        assert 'value="2:10, 3:15, 5:25"' in form.text
        token = csrf_in(form.text)
        good = {"csrf_token": token, "code": "tea2", "title": "第二团", "sku": "TEA",
                "tiers": "2:10, 3:15", "hours": "12", "starts_at": "2026-11-20T16:00",
                "ends_at": "2026-11-27T16:00", "stock": "20", "per_customer_limit": "2"}
        bad = c.post(f"{PAGE}/new", data={**good, "tiers": "3:10, 2:20", "hours": "0"})
        assert bad.status_code == 422
        assert 'id="error-tiers"' in bad.text
        assert 'id="error-hours"' in bad.text
        assert 'value="第二团"' in bad.text  # the form keeps what was typed
        short = c.post(f"{PAGE}/new", data={**good, "stock": "1000"})
        assert short.status_code == 422
        assert 'id="error-stock"' in short.text
        assert "does not have that many units" in short.text
        unreadable = c.post(f"{PAGE}/new", data={**good, "tiers": "lots",
                                                  "ends_at": "soon"})
        assert 'id="error-tiers"' in unreadable.text
        assert 'id="error-ends_at"' in unreadable.text
        done = c.post(f"{PAGE}/new", data=good, follow_redirects=False)
        assert done.status_code == 303
        assert done.headers["location"] == f"{PAGE}/tea2"
        shown = c.get(f"{PAGE}/tea2").text
        assert "第二团" in shown
        assert 'id="groups-empty"' in shown
        again = c.post(f"{PAGE}/new", data={**good, "stock": "21"})
        assert 'id="error-code"' in again.text
        with transaction(own.sessions) as s:
            made = groups.get_offer(s, own.clock, "tea2")
        # 16:00 in Shanghai is 08:00 UTC
        assert made.starts_at == T0
        assert (made.stock, made.max_size, made.hours) == (20, 3, 12)


def test_pause_resume_and_expiry(own: Services) -> None:
    for c in client_for(own, "admin"):
        token = csrf_in(c.get(f"{PAGE}/tea").text)
        paused = c.post(f"{PAGE}/tea/pause", data={"csrf_token": token})
        assert 'data-status="paused"' in paused.text
        assert 'id="resume-offer"' in paused.text
        resumed = c.post(f"{PAGE}/tea/resume", data={"csrf_token": token})
        assert 'data-status="running"' in resumed.text
        assert isinstance(own.clock, FixedClock)
        own.clock.advance(timedelta(hours=3))  # the open group (2 of 3) is due
        ran = c.post(f"{PAGE}/expiry", data={"csrf_token": token})
        assert ran.status_code == 200
        assert 'id="expiry-report"' in ran.text
        assert "0 groups succeeded, 1 expired, 1 refunded" in ran.text


def test_who_may_open_what(shop: Services) -> None:
    for c in client_for(shop, "ana"):
        page = c.get(PAGE)
        assert page.status_code == 200
        assert 'id="new-offer"' not in page.text
        assert 'id="pause-offer"' not in c.get(f"{PAGE}/tea").text
        assert c.get(f"{PAGE}/new").status_code == 403
    for c in client_for(shop, "partner"):
        assert c.get(PAGE).status_code == 403
    with TestClient(app_for(shop)) as anonymous:
        assert anonymous.get(PAGE, follow_redirects=False).status_code in {303, 401}


def test_empty_state(tmp_path: Path) -> None:
    found = _wire(tmp_path, FixedClock(T0), None)
    try:
        build_shop(found, with_offer=False)
        for c in client_for(found, "admin"):
            assert 'id="offers-empty"' in c.get(PAGE).text
    finally:
        close(found)
