"""Orders over HTTP: checkout against the catalog's stock, the state machine, partner views."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import bearer, make_key, seed_catalog
from shequ.core import auth
from shequ.core.clock import FixedClock
from shequ.core.db import transaction
from shequ.core.errors import Conflict
from shequ.core.permissions import CLI_PRINCIPAL, ROLE_PERMISSIONS, Role
from shequ.core.web import Services
from shequ.domains.catalog import service as catalog
from shequ.domains.customers import service as customers
from shequ.domains.orders import service
from shequ.domains.orders.schemas import LineIn, OrderIn

Headers = dict[str, str]


@pytest.fixture
def shop(client: TestClient, admin_headers: Headers) -> Headers:
    """Catalog (SKU1 b1 99.00 x10, SKU2 b1 199.00 x5, SKU3 b2 2999.00 x3), customers c1, c2."""
    seed_catalog(client, admin_headers)
    for key in ("c1", "c2"):
        assert client.post("/api/v1/customers", json={"external_id": key},
                           headers=admin_headers).status_code == 201
    return admin_headers


def order(external_id: str = "o1", customer: str = "c1", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"external_id": external_id, "customer_external_id": customer,
                            "lines": [{"sku": "SKU1", "quantity": 2}]}
    body.update(extra)
    return body


def stock(client: TestClient, headers: Headers, sku: str) -> int:
    value: int = client.get(f"/api/v1/products/{sku}", headers=headers).json()["stock"]
    return value


def move(client: TestClient, headers: Headers, external_id: str, to: str) -> Any:
    return client.post(f"/api/v1/orders/{external_id}/transitions", json={"to": to},
                       headers=headers)


def test_checkout_prices_from_catalog(client: TestClient, shop: Headers) -> None:
    body = order(lines=[{"sku": "SKU3", "quantity": 1}, {"sku": "SKU1", "quantity": 2}],
                 discount_fen=900, channel="miniapp", coupon_code="NEW10",
                 shipping_address="上海市浦东新区", payment_account="alipay:1")
    r = client.post("/api/v1/orders", json=body, headers=shop)
    assert r.status_code == 201
    got = r.json()
    assert (got["status"], got["created_at"], got["paid_at"]) == ("created",
                                                                  "2026-11-20T08:00:00Z", None)
    assert (got["total_fen"], got["discount_fen"]) == (2 * 9900 + 299900 - 900, 900)
    assert got["brand_ids"] == [1, 2]
    assert [(ln["sku"], ln["quantity"], ln["unit_price_fen"], ln["amount_fen"])
            for ln in got["lines"]] == [("SKU1", 2, 9900, 19800), ("SKU3", 1, 299900, 299900)]
    assert (stock(client, shop, "SKU1"), stock(client, shop, "SKU3")) == (8, 2)
    assert client.get("/api/v1/orders/o1", headers=shop).json() == got


def test_same_order_twice_takes_stock_once(client: TestClient, shop: Headers) -> None:
    first = client.post("/api/v1/orders", json=order(), headers=shop)
    again = client.post("/api/v1/orders", json=order(), headers=shop)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert stock(client, shop, "SKU1") == 8
    other = client.post("/api/v1/orders", json=order(lines=[{"sku": "SKU1", "quantity": 3}]),
                        headers=shop)
    assert other.status_code == 409
    assert (other.json()["code"], other.json()["attr"]) == ("order_exists", "external_id")
    assert client.get("/api/v1/orders", headers=shop).json()["total"] == 1


def test_insufficient_stock_writes_nothing(client: TestClient, shop: Headers) -> None:
    body = order(lines=[{"sku": "SKU1", "quantity": 1}, {"sku": "SKU2", "quantity": 6}])
    r = client.post("/api/v1/orders", json=body, headers=shop)
    assert r.status_code == 409
    assert (r.json()["code"], r.json()["attr"]) == ("insufficient_stock", "lines.quantity")
    assert client.get("/api/v1/orders/o1", headers=shop).status_code == 404
    assert (stock(client, shop, "SKU1"), stock(client, shop, "SKU2")) == (10, 5)


def test_failed_checkout_leaves_the_callers_transaction_clean(
        client: TestClient, shop: Headers, services: Services) -> None:
    data = OrderIn(external_id="o1", customer_external_id="c1",
                   lines=[LineIn(sku="SKU1", quantity=1), LineIn(sku="SKU2", quantity=6)])
    # The caller catches the error and commits: the half-taken SKU1 must not be committed.
    with transaction(services.sessions) as session, pytest.raises(Conflict):
        service.create_order(session, services.clock, data)
    assert (stock(client, shop, "SKU1"), stock(client, shop, "SKU2")) == (10, 5)
    assert client.get("/api/v1/orders", headers=shop).json()["total"] == 0


def test_checkout_rolls_back_with_the_callers_transaction(
        client: TestClient, shop: Headers, services: Services) -> None:
    data = OrderIn(external_id="o1", customer_external_id="c1",
                   lines=[LineIn(sku="SKU1", quantity=1)])

    def checkout_then_fail() -> None:
        with transaction(services.sessions) as session:
            service.create_order(session, services.clock, data)
            raise RuntimeError("the caller fails after the checkout")

    with pytest.raises(RuntimeError):
        checkout_then_fail()
    assert stock(client, shop, "SKU1") == 10
    assert client.get("/api/v1/orders", headers=shop).json()["total"] == 0


@pytest.mark.parametrize(("body", "status", "code", "attr"), [
    (order(discount_fen=19801), 422, "discount_too_large", "discount_fen"),
    (order(customer="ghost"), 422, "unknown_customer", "customer_external_id"),
    (order(lines=[{"sku": "NOPE", "quantity": 1}]), 422, "unknown_sku", "lines.sku"),
    (order(lines=[{"sku": "SKU1", "quantity": 0}]), 422, "greater_than", "lines.0.quantity"),
    (order(lines=[{"sku": "SKU1", "quantity": 1}, {"sku": "SKU1", "quantity": 1}]), 422,
     "value_error", "lines"),
    (order(lines=[]), 422, "too_short", "lines"),
])
def test_bad_checkout(client: TestClient, shop: Headers, body: dict[str, Any], status: int,
                      code: str, attr: str) -> None:
    r = client.post("/api/v1/orders", json=body, headers=shop)
    assert (r.status_code, r.json()["code"], r.json()["attr"]) == (status, code, attr)
    assert stock(client, shop, "SKU1") == 10
    assert client.get("/api/v1/orders", headers=shop).json()["total"] == 0


def test_discount_equal_to_subtotal_is_free(client: TestClient, shop: Headers) -> None:
    r = client.post("/api/v1/orders", json=order(discount_fen=19800), headers=shop)
    assert (r.status_code, r.json()["total_fen"]) == (201, 0)


def test_happy_path_stamps_each_step(client: TestClient, shop: Headers,
                                     clock: FixedClock) -> None:
    client.post("/api/v1/orders", json=order(), headers=shop)
    for minutes, to in ((5, "paid"), (60, "shipped"), (3000, "completed")):
        clock.advance(timedelta(minutes=minutes))
        r = move(client, shop, "o1", to)
        assert (r.status_code, r.json()["status"]) == (200, to)
    got = client.get("/api/v1/orders/o1", headers=shop).json()
    assert (got["paid_at"], got["shipped_at"], got["completed_at"]) == (
        "2026-11-20T08:05:00Z", "2026-11-20T09:05:00Z", "2026-11-22T11:05:00Z")
    assert (got["cancelled_at"], got["refunded_at"]) == (None, None)
    assert stock(client, shop, "SKU1") == 8


def test_cancel_restores_stock_once(client: TestClient, shop: Headers) -> None:
    client.post("/api/v1/orders", json=order(), headers=shop)
    assert stock(client, shop, "SKU1") == 8
    first = move(client, shop, "o1", "cancelled")
    assert (first.json()["status"], first.json()["cancelled_at"]) == ("cancelled",
                                                                      "2026-11-20T08:00:00Z")
    assert move(client, shop, "o1", "cancelled").json() == first.json()
    assert stock(client, shop, "SKU1") == 10


@pytest.mark.parametrize("path", [["paid"], ["paid", "shipped"],
                                  ["paid", "shipped", "completed"]])
def test_refund_restores_stock_once(client: TestClient, shop: Headers, clock: FixedClock,
                                    path: list[str]) -> None:
    client.post("/api/v1/orders", json=order(), headers=shop)
    for to in path:
        move(client, shop, "o1", to)
    clock.advance(timedelta(days=1))
    r = move(client, shop, "o1", "refunded")
    assert (r.status_code, r.json()["refunded_at"]) == (200, "2026-11-21T08:00:00Z")
    assert move(client, shop, "o1", "refunded").status_code == 200
    assert stock(client, shop, "SKU1") == 10


def test_repeated_transition_keeps_first_stamp(client: TestClient, shop: Headers,
                                               clock: FixedClock) -> None:
    client.post("/api/v1/orders", json=order(), headers=shop)
    first = move(client, shop, "o1", "paid").json()
    clock.advance(timedelta(hours=1))
    again = move(client, shop, "o1", "paid")
    assert again.status_code == 200
    assert again.json()["paid_at"] == first["paid_at"] == "2026-11-20T08:00:00Z"


@pytest.mark.parametrize(("path", "to"), [
    ([], "shipped"), ([], "completed"), ([], "refunded"),
    (["paid"], "cancelled"), (["paid"], "created"), (["paid"], "completed"),
    (["paid", "shipped"], "paid"), (["paid", "shipped"], "cancelled"),
    (["paid", "shipped", "completed"], "cancelled"),
    (["paid", "shipped", "completed"], "shipped"),
    (["cancelled"], "paid"), (["cancelled"], "refunded"),
    (["paid", "refunded"], "paid"), (["paid", "refunded"], "cancelled"),
])
def test_illegal_transitions(client: TestClient, shop: Headers, path: list[str],
                             to: str) -> None:
    client.post("/api/v1/orders", json=order(), headers=shop)
    for step in path:
        assert move(client, shop, "o1", step).status_code == 200
    before = stock(client, shop, "SKU1")
    current = path[-1] if path else "created"
    r = move(client, shop, "o1", to)
    assert r.status_code == 409
    assert r.json() == {"type": "client_error", "code": "illegal_transition",
                        "detail": f"cannot go from {current} to {to}", "attr": "status"}
    assert client.get("/api/v1/orders/o1", headers=shop).json()["status"] == current
    assert stock(client, shop, "SKU1") == before


def test_unknown_status_and_order(client: TestClient, shop: Headers) -> None:
    client.post("/api/v1/orders", json=order(), headers=shop)
    bad = move(client, shop, "o1", "lost")
    assert (bad.status_code, bad.json()["attr"]) == (422, "to")
    missing = move(client, shop, "nope", "paid")
    assert (missing.status_code, missing.json()["code"]) == (404, "order_not_found")


def test_list_filters_and_pages(client: TestClient, shop: Headers, clock: FixedClock) -> None:
    for n, customer in enumerate(("c1", "c2", "c1")):
        clock.advance(timedelta(minutes=1))
        client.post("/api/v1/orders", json=order(f"o{n}", customer,
                                                 lines=[{"sku": "SKU1", "quantity": 1}]),
                    headers=shop)
    move(client, shop, "o0", "paid")
    page = client.get("/api/v1/orders?limit=2", headers=shop).json()
    assert (page["total"], [o["external_id"] for o in page["items"]]) == (3, ["o2", "o1"])
    rest = client.get("/api/v1/orders?limit=2&offset=2", headers=shop).json()
    assert [o["external_id"] for o in rest["items"]] == ["o0"]
    mine = client.get("/api/v1/orders?customer=c1", headers=shop).json()
    assert [o["external_id"] for o in mine["items"]] == ["o2", "o0"]
    paid = client.get("/api/v1/orders?status=paid", headers=shop).json()
    assert [o["external_id"] for o in paid["items"]] == ["o0"]
    assert client.get("/api/v1/orders?customer=ghost", headers=shop).json()["total"] == 0


def test_partner_sees_only_its_brands(client: TestClient, shop: Headers,
                                      services: Services) -> None:
    both = order("mixed", lines=[{"sku": "SKU1", "quantity": 1}, {"sku": "SKU3", "quantity": 1}],
                 shipping_address="北京市", payment_account="wx:9")
    client.post("/api/v1/orders", json=both, headers=shop)
    client.post("/api/v1/orders", json=order("b2only", lines=[{"sku": "SKU3", "quantity": 1}]),
                headers=shop)
    client.post("/api/v1/orders", json=order("b1only"), headers=shop)
    partner = bearer(make_key(services, ["orders:read"], brand_ids=[1]))
    listed = client.get("/api/v1/orders", headers=partner).json()
    assert sorted(o["external_id"] for o in listed["items"]) == ["b1only", "mixed"]
    assert listed["total"] == 2
    mixed = client.get("/api/v1/orders/mixed", headers=partner).json()
    assert [ln["sku"] for ln in mixed["lines"]] == ["SKU1"]
    assert mixed["brand_ids"] == [1]
    hidden = ("total_fen", "discount_fen", "shipping_address", "payment_account")
    assert [mixed[k] for k in hidden] == [None, None, None, None]
    other = client.get("/api/v1/orders/b2only", headers=partner)
    assert (other.status_code, other.json()["code"]) == (404, "order_not_found")
    assert client.post("/api/v1/orders", json=order("p1"), headers=partner).status_code == 403
    assert move(client, partner, "mixed", "paid").status_code == 403


def test_operator_cannot_create_api_keys(client: TestClient, services: Services) -> None:
    operator = bearer(make_key(services, sorted(ROLE_PERMISSIONS[Role.OPERATOR])))
    assert client.get("/api/v1/orders", headers=operator).status_code == 200
    r = client.post("/api/v1/api-keys", json={"name": "x", "scopes": ["orders:read"]},
                    headers=operator)
    assert r.status_code == 403
    assert r.json()["detail"] == "this needs the users:admin permission"
    with transaction(services.sessions) as session:
        user = auth.create_user(session, services.clock, username="ops", password="s3cret-pw!",
                                role="operator")
    assert not auth.user_principal(user).can("users:admin")


def test_figures(client: TestClient, shop: Headers, clock: FixedClock,
                 services: Services) -> None:
    client.post("/api/v1/orders", json=order("a", lines=[{"sku": "SKU1", "quantity": 1},
                                                         {"sku": "SKU3", "quantity": 1}],
                                             discount_fen=100), headers=shop)
    client.post("/api/v1/orders", json=order("b", "c2"), headers=shop)
    client.post("/api/v1/orders", json=order("c", "c2"), headers=shop)
    move(client, shop, "a", "paid")
    move(client, shop, "b", "paid")
    move(client, shop, "b", "refunded")
    day = datetime(2026, 11, 20, tzinfo=UTC)
    with transaction(services.sessions) as session:
        assert service.gmv_and_orders(session, day, day + timedelta(days=1)) == (309700, 1)
        assert service.gmv_and_orders(session, day, day + timedelta(days=1),
                                      brand_ids=[1]) == (9900, 1)
        assert service.gmv_and_orders(session, day + timedelta(days=1),
                                      day + timedelta(days=2)) == (0, 0)
        assert service.active_customers(session, day, day + timedelta(days=1)) == 2
        assert catalog.get_product(session, CLI_PRINCIPAL, "SKU1").stock == 7


def demo_rows(count: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                   list[dict[str, Any]], list[dict[str, Any]]]:
    """Customers, devices, orders and lines shaped like the demo generator's."""
    at = datetime(2025, 11, 11, tzinfo=UTC)
    people = [{"external_id": f"u{i}", "nickname": f"用户{i}", "gender": "fm"[i % 2],
               "city": "上海", "birth_year": 1990, "registered_at": at,
               "acquisition_channel": "douyin"} for i in range(max(count // 4, 1))]
    devices = [{"external_id": f"d{i}", "customer_external_id": p["external_id"],
                "kind": "ios", "first_seen_at": at} for i, p in enumerate(people)]
    orders, lines = [], []
    for i in range(count):
        paid = at + timedelta(minutes=i % 600)
        orders.append({"external_id": f"x{i}", "customer_external_id": f"u{i % len(people)}",
                       "status": "paid", "channel": "app", "created_at": paid,
                       "paid_at": paid, "shipped_at": None, "completed_at": None,
                       "cancelled_at": None, "refunded_at": None, "total_fen": 19800 + 29990,
                       "discount_fen": 0, "coupon_code": None, "device_external_id": None,
                       "shipping_address": "上海市", "payment_account": None})
        lines.append({"order_external_id": f"x{i}", "sku": "P1", "quantity": 2,
                      "unit_price_fen": 9900})
        lines.append({"order_external_id": f"x{i}", "sku": "P2", "quantity": 1,
                      "unit_price_fen": 29990})
    return people, devices, orders, lines


def bulk(services: Services, count: int) -> None:
    people, devices, orders, lines = demo_rows(count)
    with transaction(services.sessions) as session:
        catalog.bulk_load(session, [{"external_id": "b1", "name": "花知晓"}], [], [
            {"sku": "P1", "name": "面霜", "brand_external_id": "b1", "price_fen": 9900,
             "stock": 100},
            {"sku": "P2", "name": "精华", "brand_external_id": "b1", "price_fen": 29990,
             "stock": 100}])
        customers.bulk_load(session, people, devices)
        service.bulk_load_orders(session, orders, lines)


def test_bulk_load_orders(services: Services) -> None:
    bulk(services, 8)
    day = datetime(2025, 11, 11, tzinfo=UTC)
    with transaction(services.sessions) as session:
        assert service.gmv_and_orders(session, day, day + timedelta(days=1)) == (8 * 49790, 8)
        got = service.get_order(session, CLI_PRINCIPAL, "x3")
        assert (got.customer_external_id, [ln.sku for ln in got.lines]) == ("u1", ["P1", "P2"])
        assert catalog.get_product(session, CLI_PRINCIPAL, "P1").stock == 100
        assert service.active_customers(session, day, day + timedelta(days=1)) == 2


@pytest.mark.slow
def test_bulk_load_sixty_thousand_orders_quickly(services: Services) -> None:
    started = time.perf_counter()
    bulk(services, 60_000)
    elapsed = time.perf_counter() - started
    day = datetime(2025, 11, 11, tzinfo=UTC)
    with transaction(services.sessions) as session:
        assert service.gmv_and_orders(session, day, day + timedelta(days=1)) == (
            60_000 * 49790, 60_000)
    assert elapsed < 30, f"60,000 orders took {elapsed:.1f} s"
