"""The points console over HTTP on a real SQLite store, with data made through
``loyalty.service``: the ledger overview (totals, the double-entry badge, months, rewards,
balances, redemptions), a customer's statement (running balance, keyset paging both ways)
with the adjustment form (field errors, refusals, a double submit recorded once), the
rewards page (create, edit, field errors), a redemption with its QR image, the store-code
desk (accepted, then refused as used; forged, malformed, void), and who may open what."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from console_data import add_user, csrf_in, log_in
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from conftest import T0, _wire
from shequ.core.clock import FixedClock
from shequ.core.db import transaction
from shequ.core.web import Services
from shequ.domains.customers import service as customers
from shequ.domains.customers.schemas import CustomerIn
from shequ.domains.loyalty import service
from shequ.domains.loyalty.models import PointsMovement
from shequ.domains.loyalty.schemas import AdjustIn, RedeemIn, RefundIn, RewardIn
from shequ.entrypoints.app import create_app
from shequ.entrypoints.bootstrap import close
from shequ.entrypoints.console import points_pages

SECRET = "change-me"  # the development secret the test wiring runs with
CODE = re.compile(r"SQ1\.[A-Z2-7]{24}\.[A-Z2-7]{24}")


def points_app(services: Services) -> FastAPI:
    """The app with the points pages (mounted here until the console wires them)."""
    app = create_app(services=services)
    if not any(getattr(route, "path", "") == "/console/points" for route in app.routes):
        app.include_router(points_pages.router)
    return app


def build_points(services: Services) -> dict[str, str]:
    """Customers c1-c3, three rewards, points for c1 and c2, an offline redemption (r1),
    a goods redemption (r2) and a refunded offline one (r3). Returns the store codes."""
    found: dict[str, str] = {}
    with transaction(services.sessions) as s:
        for key in ("c1", "c2", "c3"):
            customers.create_customer(s, services.clock, CustomerIn(external_id=key))
        for code, name, kind, cost, stock in (("cafe", "到店咖啡", "offline", 15, 5),
                                              ("mug", "马克杯", "goods", 40, None),
                                              ("spa", "护理体验", "service", 500, 0)):
            service.put_reward(s, services.clock, RewardIn(code=code, name=name, kind=kind,
                                                           cost_points=cost, stock=stock))
        for customer, points, key in (("c1", 200, "g1"), ("c2", 50, "g2")):
            service.adjust(s, services.clock, AdjustIn(customer_external_id=customer,
                                                       points=points, reason="welcome",
                                                       idempotency_key=key))
        for key, reward in (("r1", "cafe"), ("r2", "mug"), ("r3", "cafe")):
            done = service.redeem(s, services.clock, RedeemIn(
                customer_external_id="c1", reward=reward, idempotency_key=key),
                secret_key=SECRET)
            if done.store_code:
                found[key] = done.store_code.code
        service.refund(s, services.clock, RefundIn(redemption_key="r3",
                                                   idempotency_key="back-3"),
                       secret_key=SECRET)
    return found


def wire(tmp: Path) -> Services:
    found: Services = _wire(tmp, FixedClock(T0), None)
    add_user(found, "admin", "admin")
    add_user(found, "ana", "analyst")
    add_user(found, "partner", "partner", brand_ids=[1])
    return found


@pytest.fixture
def wired(tmp_path: Path) -> Iterator[Services]:
    found = wire(tmp_path)
    yield found
    close(found)


@pytest.fixture
def store_codes(wired: Services) -> dict[str, str]:
    return build_points(wired)


def client_for(services: Services, username: str) -> Iterator[TestClient]:
    with TestClient(points_app(services)) as c:
        assert log_in(c, username).status_code == 303
        # English, so the assertions hold whatever the zh_CN catalog says.
        assert c.get("/console/lang/en", follow_redirects=False).status_code == 303
        yield c


@pytest.fixture
def admin(wired: Services) -> Iterator[TestClient]:
    yield from client_for(wired, "admin")


def post(c: TestClient, path: str, data: dict[str, Any], page: str = "/console/points"
         ) -> Any:
    token = csrf_in(c.get(page).text)
    return c.post(path, data={**data, "csrf_token": token}, follow_redirects=False)


def text_of(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</(?:p|td|dd|div|small|span|h2)>', page,
                      re.S)
    assert found is not None, f"no #{element_id}"
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1))).strip()


def table_rows(page: str, table_id: str) -> list[list[str]]:
    body = re.search(rf'<table class="table" id="{table_id}">.*?<tbody>(.*?)</tbody>', page,
                     re.S)
    assert body is not None, f"no table {table_id}"
    return [[" ".join(html.unescape(re.sub(r"<[^>]+>", " ", cell)).split())
             for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body.group(1), re.S)]


def kpi(page: str, name: str) -> str:
    found = re.search(rf'id="kpi-{name}".*?class="kpi-value">([^<]+)<', page, re.S)
    assert found is not None, f"no KPI {name}"
    return found.group(1)


def movements(services: Services) -> int:
    with services.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(PointsMovement)) or 0)


# --- the overview ----------------------------------------------------------------------------


def test_overview_shows_the_ledger(admin: TestClient, store_codes: dict[str, str]) -> None:
    page = admin.get("/console/points")
    assert page.status_code == 200, page.text
    body = page.text
    assert "<h1 class=\"page-title\">Points</h1>" in body
    # 250 issued; r1 15 + r2 40 redeemed (r3 refunded); nothing expired; c1 145 + c2 50.
    assert [kpi(body, k) for k in ("issued", "redeemed", "expired", "outstanding")] == [
        "250", "55", "0", "195"]
    assert '<span class="badge badge-green" id="ledger-badge" data-balanced="true">' in body
    assert text_of(body, "entries-total").startswith("0")
    months = table_rows(body, "months-table")
    assert len(months) == 12
    assert months[0] == ["2026-11", "0", "250", "0", "70", "15", "0", "195", "6"]
    assert all(row[-1] == "0" for row in months[1:])
    rewards = table_rows(body, "rewards-summary")
    assert [row[0].split()[0] for row in rewards] == ["到店咖啡", "马克杯", "护理体验"]
    assert rewards[0][2:] == ["4", "1", "15"]  # stock 5 - r1 (r3 gave its unit back)
    assert "Out of stock" in rewards[2][2]
    assert table_rows(body, "top-balances") == [["c1", "145"], ["c2", "50"]]
    recent = table_rows(body, "redemptions-table")
    assert [(r[1], r[2], r[4], r[5]) for r in recent] == [
        ("c1", "到店咖啡", "Refunded", "Void"), ("c1", "马克杯", "Redeemed", "No store code"),
        ("c1", "到店咖啡", "Redeemed", "Unused")]
    assert 'href="/console/points/redemptions/r1"' in body


def test_overview_when_empty_and_the_lookup(admin: TestClient, wired: Services) -> None:
    body = admin.get("/console/points").text
    assert 'data-balanced="true"' in body
    for empty in ("rewards-empty", "top-empty", "redemptions-empty"):
        assert f'id="{empty}"' in body
    with transaction(wired.sessions) as s:
        customers.create_customer(s, wired.clock, CustomerIn(external_id="c9"))
    found = admin.get("/console/points?customer=c9", follow_redirects=False)
    assert (found.status_code, found.headers["location"]) == (303, "/console/points/customers/c9")
    statement = admin.get("/console/points/customers/c9").text
    assert 'id="entries-empty"' in statement
    assert 'id="lots-empty"' in statement
    missing = admin.get("/console/points?customer=nobody")
    assert missing.status_code == 404
    assert 'id="error-customer"' in missing.text
    assert 'value="nobody"' in missing.text


def test_who_may_open_what(wired: Services, store_codes: dict[str, str]) -> None:
    for c in client_for(wired, "ana"):  # analysts read, never write
        assert c.get("/console/points").status_code == 200
        statement = c.get("/console/points/customers/c1").text
        assert 'id="adjust-form"' not in statement
        assert 'id="reward-form"' not in c.get("/console/points/rewards").text
        assert c.get("/console/points/redemptions/r1").status_code == 200
        assert c.get("/console/points/verify").status_code == 403
        refused = post(c, "/console/points/customers/c1/adjust",
                       {"points": "5", "reason": "x", "idempotency_key": "k1"})
        assert refused.status_code == 403
    for c in client_for(wired, "partner"):  # points span every brand
        assert c.get("/console/points").status_code == 403
        assert c.get("/console/points/customers/c1").status_code == 403
    with TestClient(points_app(wired)) as anonymous:
        login = anonymous.get("/console/points", follow_redirects=False)
        assert (login.status_code, login.headers["location"]) == (
            303, "/console/login?next=/console/points")
    assert movements(wired) == 6


# --- a customer's statement ------------------------------------------------------------------


def test_statement_pages_with_running_balance(admin: TestClient, wired: Services) -> None:
    with transaction(wired.sessions) as s:
        customers.create_customer(s, wired.clock, CustomerIn(external_id="c5"))
        for i in range(1, 46):  # +1 .. +45: balance after the i-th is i(i+1)/2
            service.adjust(s, wired.clock, AdjustIn(customer_external_id="c5", points=i,
                                                    reason=f"step {i}",
                                                    idempotency_key=f"s{i}"))
    first = admin.get("/console/points/customers/c5").text
    assert re.search(r'data-balance="1035"', first)
    rows = table_rows(first, "entries-table")
    assert len(rows) == points_pages.STATEMENT_PAGE
    assert [r[2] for r in rows[:2]] == ["step 45", "step 44"]
    assert [r[3:5] for r in rows[:2]] == [["+45", "1,035"], ["+44", "990"]]
    assert 'id="newer-page"' not in first
    older = re.search(r'href="([^"]+)" id="older-page"', first)
    assert older is not None
    second = admin.get(html.unescape(older.group(1))).text
    assert [r[2] for r in table_rows(second, "entries-table")][::19] == ["step 25", "step 6"]
    third_link = re.search(r'href="([^"]+)" id="older-page"', second)
    assert third_link is not None
    third = admin.get(html.unescape(third_link.group(1))).text
    assert [r[2] for r in table_rows(third, "entries-table")] == [
        f"step {i}" for i in range(5, 0, -1)]
    assert table_rows(third, "entries-table")[-1][3:5] == ["+1", "1"]
    assert 'id="older-page"' not in third
    newer = re.search(r'href="([^"]+)" id="newer-page"', third)
    assert newer is not None
    back = admin.get(html.unescape(newer.group(1))).text
    assert table_rows(back, "entries-table") == table_rows(second, "entries-table")
    # Lots: 45 lots, the soonest to expire first, with their dates.
    lots = table_rows(first, "lots-table")
    assert len(lots) == 45
    assert lots[0][:2] == ["1", "1"]
    assert "2027" in lots[0][2]
    past = admin.get("/console/points/customers/c5?before=1").text
    assert 'id="entries-empty"' in past
    assert "past the last one" in past
    assert admin.get("/console/points/customers/nobody").status_code == 404


def test_adjustment_form(admin: TestClient, wired: Services,
                         store_codes: dict[str, str]) -> None:
    page = admin.get("/console/points/customers/c2").text
    key = re.search(r'name="idempotency_key" id="adjust-key" value="([^"]+)"', page)
    assert key is not None
    assert key.group(1).startswith("console-adjust-")
    again = admin.get("/console/points/customers/c2").text
    assert key.group(1) not in again  # every form gets its own key
    before = movements(wired)

    def send(points: str, reason: str, idem: str = key.group(1)) -> Any:
        return post(admin, "/console/points/customers/c2/adjust",
                    {"points": points, "reason": reason, "idempotency_key": idem},
                    "/console/points/customers/c2")

    bad = send("abc", "")
    assert bad.status_code == 422
    assert 'id="error-points"' in bad.text
    assert 'id="error-reason"' in bad.text
    assert 'id="adjust-points" value="abc"' in bad.text
    assert f'value="{key.group(1)}"' in bad.text  # the same form, the same key
    zero = send("0", "nothing")
    assert zero.status_code == 422
    assert "at least one point" in zero.text
    too_much = send("-51", "too much")
    assert too_much.status_code == 409
    assert 'id="error-points"' in too_much.text
    assert "below zero" in too_much.text
    long = send("5", "x" * 201)
    assert long.status_code == 422
    assert 'id="error-reason"' in long.text
    assert movements(wired) == before

    done = send("-20", "damaged parcel")
    assert (done.status_code, done.headers["location"]) == (
        303, "/console/points/customers/c2?adjusted=-20")
    shown = admin.get(done.headers["location"]).text
    assert 'id="adjusted"' in shown
    assert 'data-balance="30"' in shown
    assert table_rows(shown, "entries-table")[0][1:5] == ["Adjustment", "damaged parcel",
                                                           "−20", "30"]
    twice = send("-20", "damaged parcel")  # a double submit replays
    assert twice.status_code == 303
    assert movements(wired) == before + 1
    other = send("7", "another", idem=key.group(1))  # the key of another adjustment
    assert other.status_code == 409
    assert 'id="adjust-error"' in other.text
    assert "already used" in other.text
    assert f'id="adjust-key" value="{key.group(1)}"' not in other.text  # a fresh key
    forged = send("7", "no key", idem="bad key!")
    assert forged.status_code == 422
    assert 'id="adjust-error"' in forged.text
    assert movements(wired) == before + 1
    credit = send("+12", "goodwill", idem="console-adjust-x1")
    assert credit.headers["location"].endswith("adjusted=12")
    assert 'data-balance="42"' in admin.get("/console/points/customers/c2").text
    missing_csrf = admin.post("/console/points/customers/c2/adjust",
                              data={"points": "1", "reason": "x", "idempotency_key": "k9"},
                              follow_redirects=False)
    assert missing_csrf.status_code == 403
    assert movements(wired) == before + 2


# --- rewards ---------------------------------------------------------------------------------


def test_rewards_page_creates_and_edits(admin: TestClient, wired: Services,
                                        store_codes: dict[str, str]) -> None:
    page = admin.get("/console/points/rewards")
    assert page.status_code == 200
    rows = table_rows(page.text, "rewards-table")
    assert [r[0] for r in rows] == ["到店咖啡 cafe", "马克杯 mug", "护理体验 spa"]
    assert rows[0][1:8] == ["Offline benefit", "15", "4", "30 days", "On offer", "1", "1"]
    form = {"code": "tote", "name": "帆布袋", "kind": "goods", "cost_points": "80",
            "stock": "10", "active": "1", "code_valid_days": "30"}
    bad = post(admin, "/console/points/rewards",
               form | {"code": "bad code", "cost_points": "0", "stock": "-1", "name": ""},
               "/console/points/rewards")
    assert bad.status_code == 422
    for field in ("code", "cost_points", "stock", "name"):
        assert f'id="error-{field}"' in bad.text, field
    assert 'id="error-kind"' not in bad.text
    assert 'value="bad code"' in bad.text
    kind = post(admin, "/console/points/rewards", form | {"kind": "cash"},
                "/console/points/rewards")
    assert kind.status_code == 422
    assert 'id="error-kind"' in kind.text

    made = post(admin, "/console/points/rewards", form, "/console/points/rewards")
    assert (made.status_code, made.headers["location"]) == (
        303, "/console/points/rewards?saved=tote")
    listed = admin.get(made.headers["location"]).text
    assert 'id="reward-saved"' in listed
    assert 'id="reward-tote" data-stock="10"' in listed
    edit = admin.get("/console/points/rewards?edit=tote").text
    assert 'id="reward-code" value="tote" maxlength="64" readonly' in edit
    assert 'id="reward-cost" value="80"' in edit
    changed = post(admin, "/console/points/rewards",
                   {k: v for k, v in form.items() if k != "active"}
                   | {"stock": "", "cost_points": "90", "editing": "1"},
                   "/console/points/rewards")
    assert changed.status_code == 303
    with wired.sessions() as s:
        tote = next(r for r in service.list_rewards(s) if r.code == "tote")
    assert (tote.cost_points, tote.stock, tote.active) == (90, None, False)
    listed = admin.get("/console/points/rewards").text
    assert table_rows(listed, "rewards-table")[-1][3:6] == ["Unlimited", "–", "Withdrawn"]


# --- a redemption and the verification desk --------------------------------------------------


def test_redemption_page_shows_the_code_and_its_state(admin: TestClient, wired: Services,
                                                      store_codes: dict[str, str]) -> None:
    page = admin.get("/console/points/redemptions/r1")
    assert page.status_code == 200
    body = page.text
    assert text_of(body, "store-code") == store_codes["r1"]
    assert 'id="qr-image" src="/api/v1/loyalty/redemptions/r1/qr.svg"' in body
    assert 'href="data:image/png;base64,' in body
    assert 'data-code-state="unused"' in body
    image = admin.get("/api/v1/loyalty/redemptions/r1/qr.svg")
    assert image.status_code == 200
    assert image.headers["content-type"].startswith("image/svg")
    assert admin.get("/console/points/redemptions/r2").text.count('id="no-code"') == 1
    assert 'data-code-state="void"' in admin.get("/console/points/redemptions/r3").text
    assert admin.get("/console/points/redemptions/nope").status_code == 404

    accepted = post(admin, "/console/points/verify",
                    {"code": store_codes["r1"].lower(), "store_id": "store-7"},
                    "/console/points/verify")
    assert accepted.status_code == 200
    assert 'data-verdict="accepted"' in accepted.text
    assert "到店咖啡" in accepted.text
    used = admin.get("/console/points/redemptions/r1").text
    assert 'data-code-state="used"' in used
    assert "store store-7" in text_of(used, "code-used")


def test_verification_refusals(admin: TestClient, wired: Services,
                               store_codes: dict[str, str]) -> None:
    desk = admin.get("/console/points/verify")
    assert desk.status_code == 200
    assert 'id="verify-waiting"' in desk.text
    code = store_codes["r1"]

    def verify(text: str, store: str = "s1") -> Any:
        return post(admin, "/console/points/verify", {"code": text, "store_id": store},
                    "/console/points/verify")

    first = verify(code)
    assert 'data-verdict="accepted"' in first.text
    assert 'id="verify-store" value="s1"' in first.text  # the store is remembered
    assert 'id="verify-code"' in first.text
    assert code not in first.text
    again = verify(code, "s2")
    assert again.status_code == 409
    assert 'data-verdict="code_used"' in again.text
    assert "already used" in again.text
    assert "Do not hand over" in again.text
    assert "store s1" in text_of(again.text, "refused-used")
    prefix, payload, signature = code.split(".")
    forged = verify(f"{prefix}.{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}")
    assert forged.status_code == 422
    assert 'data-verdict="code_forged"' in forged.text
    assert "forged" in forged.text
    assert 'id="refused-facts"' not in forged.text
    assert 'data-verdict="code_malformed"' in verify("not a code").text
    void = verify(store_codes["r3"])
    assert void.status_code == 409
    assert 'data-verdict="code_void"' in void.text
    empty = verify("", "s1")
    assert empty.status_code == 422
    assert 'id="error-store_code"' in empty.text
    bad_store = verify(code, "store 1")
    assert bad_store.status_code == 422
    assert 'id="error-store_id"' in bad_store.text
    assert 'data-verdict' not in bad_store.text
    # Expired: a fresh code, the clock moved past its 30 days.
    with transaction(wired.sessions) as s:
        done = service.redeem(s, wired.clock, RedeemIn(customer_external_id="c1",
                                                       reward="cafe", idempotency_key="r9"),
                              secret_key=SECRET)
    assert done.store_code is not None
    clock = wired.clock
    assert isinstance(clock, FixedClock)
    clock.advance(timedelta(days=31))
    late = verify(done.store_code.code)
    assert late.status_code == 409
    assert 'data-verdict="code_expired"' in late.text

