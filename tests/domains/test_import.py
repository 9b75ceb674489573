"""Bulk imports of customers, devices and historical orders: all-or-nothing by default,
every bad row named, re-import changes nothing, also over HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import seed_catalog
from shequ.core.db import transaction
from shequ.core.importing import ImportReport
from shequ.core.permissions import CLI_PRINCIPAL
from shequ.core.web import Services
from shequ.domains.customers import service as customers
from shequ.domains.orders import service as orders

Headers = dict[str, str]
CUSTOMER_HEADER = ("external_id,nickname,gender,city,birth_year,phone,registered_at,"
                   "acquisition_channel")
GOOD_CUSTOMERS = [
    "c1,小红,女,上海,1995,13800138000,2025-01-02T10:00:00+08:00,douyin",
    "c5,老王,男,成都,1980,,2025-01-06T10:00:00+08:00,offline",
]
BAD_CUSTOMERS = [
    "c2,小明,x,北京,1990,,2025-01-03T10:00:00+08:00,wechat",
    "c3,阿强,m,广州,1890,,2025-01-04T10:00:00+08:00,wechat",
    "c4,阿珍,f,深圳,1992,12345,2025-01-05T10:00:00+08:00,xhs",
]
ORDER_HEADER = ("order_external_id,customer_external_id,status,created_at,paid_at,shipped_at,"
                "completed_at,sku,quantity,unit_price,discount_fen")
H1 = "h1,c1,completed,2025-03-01T10:00:00+08:00,2025-03-01T10:05:00+08:00," \
     "2025-03-02T09:00:00+08:00,2025-03-05T12:00:00+08:00"
GOOD_ORDERS = [
    f"{H1},SKU1,2,99.00,500",
    f"{H1},SKU3,1,2899,500",
    "h2,c5,paid,2025-03-03T10:00:00Z,2025-03-03T10:01:00Z,,,SKU2,1,199.5,",
]


def csv(header: str, rows: list[str]) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def run(services: Services, importer: Any, name: str, data: bytes,
        skip_invalid: bool = False) -> dict[str, Any]:
    with transaction(services.sessions, actor="cli") as session:
        report: ImportReport = importer(session, name, data, skip_invalid=skip_invalid)
        return report.as_dict()


def rejected(report: dict[str, Any]) -> list[tuple[int, str, str]]:
    return [(e["line"], e["field"], e["reason"]) for e in report["rejected"]]


def customer_keys(services: Services) -> list[str]:
    with transaction(services.sessions) as session:
        return sorted(c.external_id for c in customers.list_customers(session).items)


THREE_BAD = [
    (3, "gender", "Input should be 'f' or 'm'"),
    (4, "birth_year", "Input should be greater than or equal to 1900"),
    (5, "phone", "Value error, not a mainland China mobile number (11 digits, 1[3-9]…)"),
]


def test_three_bad_rows_reject_the_whole_file(services: Services) -> None:
    data = csv(CUSTOMER_HEADER, [GOOD_CUSTOMERS[0], *BAD_CUSTOMERS, GOOD_CUSTOMERS[1]])
    report = run(services, customers.import_customers, "crm.csv", data)
    assert rejected(report) == THREE_BAD
    assert (report["rows"], report["inserted"], report["committed"]) == (5, 0, False)
    assert customer_keys(services) == []


def test_skip_invalid_keeps_the_good_rows(services: Services) -> None:
    data = csv(CUSTOMER_HEADER, [GOOD_CUSTOMERS[0], *BAD_CUSTOMERS, GOOD_CUSTOMERS[1]])
    report = run(services, customers.import_customers, "crm.csv", data, skip_invalid=True)
    assert rejected(report) == THREE_BAD
    assert (report["inserted"], report["rejected_count"], report["committed"]) == (2, 3, True)
    assert customer_keys(services) == ["c1", "c5"]
    with transaction(services.sessions) as session:
        got = customers.get_customer(session, "c1")
    assert (got.gender, got.phone, got.city, got.birth_year) == ("f", "13800138000", "上海", 1995)


def test_reimport_changes_nothing(services: Services) -> None:
    data = csv(CUSTOMER_HEADER, GOOD_CUSTOMERS)
    first = run(services, customers.import_customers, "crm.csv", data)
    second = run(services, customers.import_customers, "crm.csv", data)
    assert (first["inserted"], first["updated"], first["unchanged"]) == (2, 0, 0)
    assert (second["inserted"], second["updated"], second["unchanged"]) == (0, 0, 2)
    moved = csv(CUSTOMER_HEADER, [GOOD_CUSTOMERS[0].replace("上海", "苏州"), GOOD_CUSTOMERS[1]])
    third = run(services, customers.import_customers, "crm.csv", moved)
    assert (third["inserted"], third["updated"], third["unchanged"]) == (0, 1, 1)


def test_devices_jsonl(services: Services) -> None:
    run(services, customers.import_customers, "crm.csv", csv(CUSTOMER_HEADER, GOOD_CUSTOMERS))
    rows = [{"external_id": "fp-1", "customer_external_id": "c1", "kind": "ios",
             "first_seen_at": "2025-01-02T10:00:00+08:00"},
            {"external_id": "fp-2", "kind": "pc", "first_seen_at": "2025-01-02T11:00:00Z"}]
    report = run(services, customers.import_devices, "devices.jsonl", jsonl(rows))
    assert (report["inserted"], report["committed"]) == (2, True)
    bad = jsonl([{"external_id": "fp-3", "customer_external_id": "ghost", "kind": "ios",
                  "first_seen_at": "2025-01-02T10:00:00Z"},
                 {"external_id": "fp-4", "kind": "tv", "first_seen_at": "2025-01-02T10:00:00Z"},
                 {"external_id": "fp-5", "kind": "ios"}]) + b"{not json\n"
    report = run(services, customers.import_devices, "devices.jsonl", bad)
    assert rejected(report) == [
        (1, "customer_external_id", "unknown customer 'ghost'"),
        (2, "kind", "Input should be 'ios', 'android', 'pc' or 'other'"),
        (3, "first_seen_at", "Field required"),
        (4, "row", "not valid JSON: Expecting property name enclosed in double quotes"),
    ]
    assert report["committed"] is False
    again = run(services, customers.import_devices, "devices.jsonl", jsonl(rows))
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 2)
    with transaction(services.sessions) as session:
        assert [d.external_id for d in customers.get_customer(session, "c1").devices] == ["fp-1"]


@pytest.fixture
def shop(client: TestClient, admin_headers: Headers, services: Services) -> Headers:
    """The seed catalog plus customers c1 and c5."""
    seed_catalog(client, admin_headers)
    run(services, customers.import_customers, "crm.csv", csv(CUSTOMER_HEADER, GOOD_CUSTOMERS))
    return admin_headers


def stocks(client: TestClient, headers: Headers) -> list[int]:
    return [client.get(f"/api/v1/products/{sku}", headers=headers).json()["stock"]
            for sku in ("SKU1", "SKU2", "SKU3")]


def test_historical_orders(client: TestClient, shop: Headers, services: Services) -> None:
    report = run(services, orders.import_orders, "shop.csv", csv(ORDER_HEADER, GOOD_ORDERS))
    assert (report["rows"], report["inserted"], report["committed"]) == (3, 2, True)
    h1 = client.get("/api/v1/orders/h1", headers=shop).json()
    assert (h1["status"], h1["total_fen"], h1["discount_fen"]) == ("completed",
                                                                   2 * 9900 + 289900 - 500, 500)
    assert (h1["paid_at"], h1["completed_at"]) == ("2025-03-01T02:05:00Z", "2025-03-05T04:00:00Z")
    assert [(ln["sku"], ln["quantity"], ln["unit_price_fen"]) for ln in h1["lines"]] == [
        ("SKU1", 2, 9900), ("SKU3", 1, 289900)]
    h2 = client.get("/api/v1/orders/h2", headers=shop).json()
    assert (h2["status"], h2["total_fen"], h2["customer_external_id"]) == ("paid", 19950, "c5")
    assert stocks(client, shop) == [10, 5, 3]  # history does not take stock


def test_historical_reimport_changes_nothing(client: TestClient, shop: Headers,
                                             services: Services) -> None:
    data = csv(ORDER_HEADER, GOOD_ORDERS)
    run(services, orders.import_orders, "shop.csv", data)
    again = run(services, orders.import_orders, "shop.csv", data)
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 2)
    more = csv(ORDER_HEADER, [GOOD_ORDERS[0].replace("SKU1,2,", "SKU1,3,"), *GOOD_ORDERS[1:]])
    changed = run(services, orders.import_orders, "shop.csv", more)
    assert (changed["inserted"], changed["updated"], changed["unchanged"]) == (0, 1, 1)
    h1 = client.get("/api/v1/orders/h1", headers=shop).json()
    assert (h1["total_fen"], [ln["quantity"] for ln in h1["lines"]]) == (
        3 * 9900 + 289900 - 500, [3, 1])


BAD_ORDERS = [
    "h3,c1,completed,2025-03-01T10:00:00Z,2025-03-01T11:00:00Z,2025-03-01T10:30:00Z,"
    "2025-03-04T10:00:00Z,SKU1,1,99,",
    "h4,ghost,created,2025-03-01T10:00:00Z,,,,SKU1,1,99,",
    "h1,c1,completed,2025-03-01T10:00:00+08:00,2025-03-01T10:05:00+08:00,"
    "2025-03-02T09:00:00+08:00,2025-03-05T12:00:00+08:00,NOPE,1,99,500",
]


def test_bad_order_rows_are_named(client: TestClient, shop: Headers,
                                  services: Services) -> None:
    data = csv(ORDER_HEADER, [*GOOD_ORDERS, *BAD_ORDERS])
    report = run(services, orders.import_orders, "shop.csv", data)
    assert rejected(report) == [(5, "shipped_at", "shipped_at is before paid_at"),
                                (6, "customer_external_id", "unknown customer 'ghost'"),
                                (7, "sku", "unknown SKU 'NOPE'")]
    assert report["committed"] is False
    assert client.get("/api/v1/orders", headers=shop).json()["total"] == 0
    skipped = run(services, orders.import_orders, "shop.csv", data, skip_invalid=True)
    # h1 lost a line, so its other lines are skipped too: an order never lands half.
    assert rejected(skipped)[:2] == [
        (2, "order_external_id", "skipped: another line of order 'h1' was rejected"),
        (3, "order_external_id", "skipped: another line of order 'h1' was rejected")]
    assert (skipped["inserted"], skipped["rejected_count"]) == (1, 5)
    listed = client.get("/api/v1/orders", headers=shop).json()["items"]
    assert [o["external_id"] for o in listed] == ["h2"]


@pytest.mark.parametrize(("row", "error"), [
    ({"status": "paid", "paid_at": "2025-03-01T11:00:00Z", "shipped_at": "2025-03-02T11:00:00Z"},
     ("shipped_at", "a paid order has no shipped_at")),
    ({"status": "completed", "paid_at": "2025-03-01T11:00:00Z",
      "shipped_at": "2025-03-02T11:00:00Z"},
     ("completed_at", "a completed order needs completed_at")),
    ({"status": "cancelled", "paid_at": "2025-03-01T11:00:00Z",
      "cancelled_at": "2025-03-02T11:00:00Z"}, ("paid_at", "a cancelled order has no paid_at")),
    ({"status": "cancelled", "cancelled_at": "2025-02-28T11:00:00Z"},
     ("cancelled_at", "cancelled_at is before created_at")),
    ({"status": "refunded", "paid_at": "2025-03-02T11:00:00Z",
      "refunded_at": "2025-03-01T12:00:00Z"}, ("refunded_at", "refunded_at is before paid_at")),
    ({"status": "refunded", "paid_at": "2025-03-01T11:00:00Z", "completed_at":
      "2025-03-03T11:00:00Z", "refunded_at": "2025-03-04T12:00:00Z"},
     ("shipped_at", "a completed order needs shipped_at")),
    ({"status": "paid", "paid_at": "2025-03-01 11:00:00"},
     ("paid_at", "Input should have timezone info")),
    ({"status": "created", "unit_price": "9.999"},
     ("unit_price", "Value error, more than two decimals: '9.999'")),
    ({"status": "created", "unit_price": None}, ("unit_price_fen",
                                                 "give unit_price_fen (fen) or unit_price (yuan)")),
    ({"status": "created", "discount_fen": 10000},
     ("discount_fen", "order 'x1': discount exceeds the subtotal 9900")),
])
def test_order_timeline_and_amounts(shop: Headers, services: Services, row: dict[str, Any],
                                    error: tuple[str, str]) -> None:
    base = {"order_external_id": "x1", "customer_external_id": "c1",
            "created_at": "2025-03-01T10:00:00Z", "sku": "SKU1", "quantity": 1,
            "unit_price": "99"}
    report = run(services, orders.import_orders, "shop.jsonl", jsonl([{**base, **row}]))
    assert rejected(report) == [(1, *error)]


def test_lines_of_one_order_must_agree(shop: Headers, services: Services) -> None:
    second = GOOD_ORDERS[1].replace("c1", "c5", 1)
    report = run(services, orders.import_orders, "shop.csv",
                 csv(ORDER_HEADER, [GOOD_ORDERS[0], second]))
    assert rejected(report) == [
        (3, "customer_external_id", "differs from line 2 of the same order")]
    cheaper = run(services, orders.import_orders, "shop.csv",
                  csv(ORDER_HEADER, [GOOD_ORDERS[0], GOOD_ORDERS[1].removesuffix("500") + "400"]))
    assert rejected(cheaper) == [(3, "discount_fen", "differs from line 2 of the same order")]
    twice = run(services, orders.import_orders, "shop.csv",
                csv(ORDER_HEADER, [GOOD_ORDERS[0], GOOD_ORDERS[0]]))
    assert rejected(twice) == [(3, "sku", "SKU 'SKU1' is already on line 2 of this order")]


def test_imported_order_can_move_on(client: TestClient, shop: Headers,
                                    services: Services) -> None:
    run(services, orders.import_orders, "shop.csv", csv(ORDER_HEADER, GOOD_ORDERS))
    r = client.post("/api/v1/orders/h2/transitions", json={"to": "shipped"}, headers=shop)
    assert (r.status_code, r.json()["shipped_at"]) == (200, "2026-11-20T08:00:00Z")
    with transaction(services.sessions) as session:
        assert orders.get_order(session, CLI_PRINCIPAL, "h2").status == "shipped"


def test_import_over_http(client: TestClient, shop: Headers) -> None:
    data = csv(CUSTOMER_HEADER, [*BAD_CUSTOMERS, "c9,新人,f,杭州,2000,,2025-02-01T00:00:00Z,xhs"])
    whole = client.post("/api/v1/import/customers", files={"file": ("crm.csv", data)},
                        headers=shop)
    assert whole.status_code == 200
    assert (whole.json()["committed"], whole.json()["rejected_count"]) == (False, 3)
    assert [e["line"] for e in whole.json()["rejected"]] == [2, 3, 4]
    partial = client.post("/api/v1/import/customers", files={"file": ("crm.csv", data)},
                          data={"skip_invalid": "true"}, headers=shop)
    assert (partial.json()["committed"], partial.json()["inserted"]) == (True, 1)
    assert client.get("/api/v1/customers/c9", headers=shop).status_code == 200
    history = client.post("/api/v1/import/orders",
                          files={"file": ("shop.csv", csv(ORDER_HEADER, GOOD_ORDERS))},
                          headers=shop)
    assert (history.json()["inserted"], history.json()["committed"]) == (2, True)
    again = client.post("/api/v1/import/orders",
                        files={"file": ("shop.csv", csv(ORDER_HEADER, GOOD_ORDERS))},
                        headers=shop).json()
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 2)
    kinds = client.post("/api/v1/import/nope", files={"file": ("x.csv", b"a\n")}, headers=shop)
    assert kinds.json()["code"] == "unknown_kind"
