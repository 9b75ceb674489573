"""Real concurrent transactions on PostgreSQL: stock never oversold, checkout and
transitions exactly-once, merges race-free."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select

from shequ.core.db import transaction
from shequ.core.errors import ShequError
from shequ.core.permissions import CLI_PRINCIPAL
from shequ.core.web import Services
from shequ.domains.catalog import service as catalog
from shequ.domains.catalog.schemas import BrandIn, ProductIn
from shequ.domains.customers import service as customers
from shequ.domains.customers.schemas import CustomerIn
from shequ.domains.orders import service as orders
from shequ.domains.orders.models import Order
from shequ.domains.orders.schemas import LineIn, OrderIn

pytestmark = pytest.mark.postgres


def seed(wired: Services, stock: int) -> None:
    with transaction(wired.sessions, actor="test") as session:
        catalog.create_brand(session, BrandIn(external_id="b1", name="花知晓"))
        catalog.create_product(session, wired.clock, CLI_PRINCIPAL, ProductIn(
            sku="LAST", name="限量口红", brand_external_id="b1", price_fen=12900, stock=stock))
        customers.create_customer(session, wired.clock, CustomerIn(external_id="c1"))


def race(wired: Services, count: int, work: Callable[[Any, int], object]) -> list[str]:
    """Run ``work(session, n)`` in ``count`` threads at once, each in its own transaction;
    answer each outcome: "ok" or the error code."""
    start = threading.Barrier(count)

    def one(n: int) -> str:
        start.wait()
        try:
            with transaction(wired.sessions, actor=f"test:{n}") as session:
                work(session, n)
        except ShequError as exc:
            return exc.code
        return "ok"

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def stock_of(wired: Services) -> int:
    with transaction(wired.sessions) as session:
        return catalog.get_product(session, CLI_PRINCIPAL, "LAST").stock


def order_count(wired: Services) -> int:
    with transaction(wired.sessions) as session:
        return session.scalar(select(func.count()).select_from(Order)) or 0


def checkout(wired: Services, external_id: str, quantity: int = 1) -> Callable[[Any], object]:
    data = OrderIn(external_id=external_id, customer_external_id="c1",
                   lines=[LineIn(sku="LAST", quantity=quantity)])
    return lambda session: orders.create_order(session, wired.clock, data)


def test_twenty_buyers_for_the_last_five_units(pg_services: Services) -> None:
    seed(pg_services, stock=5)
    outcomes = race(pg_services, 20,
                    lambda session, n: checkout(pg_services, f"o{n}")(session))
    assert Counter(outcomes) == {"ok": 5, "insufficient_stock": 15}
    assert stock_of(pg_services) == 0
    assert order_count(pg_services) == 5


def test_same_order_posted_ten_times_at_once(pg_services: Services) -> None:
    seed(pg_services, stock=5)
    created: list[bool] = []

    def post(session: Any, _n: int) -> None:
        data = OrderIn(external_id="dup", customer_external_id="c1",
                       lines=[LineIn(sku="LAST", quantity=2)])
        created.append(orders.create_order(session, pg_services.clock, data)[1])

    assert race(pg_services, 10, post) == ["ok"] * 10
    assert Counter(created) == {True: 1, False: 9}
    assert order_count(pg_services) == 1
    assert stock_of(pg_services) == 3


def test_same_order_for_the_very_last_units(pg_services: Services) -> None:
    # The twin that loses finds no stock left; it must still answer with the winner's order.
    seed(pg_services, stock=2)
    outcomes = race(pg_services, 10, lambda session, n: checkout(pg_services, "dup", 2)(session))
    assert outcomes == ["ok"] * 10
    assert (order_count(pg_services), stock_of(pg_services)) == (1, 0)


def test_ten_cancels_at_once_restock_once(pg_services: Services) -> None:
    seed(pg_services, stock=5)
    with transaction(pg_services.sessions) as session:
        checkout(pg_services, "o1", 3)(session)
    assert stock_of(pg_services) == 2

    def cancel(session: Any, _n: int) -> None:
        orders.transition_order(session, pg_services.clock, CLI_PRINCIPAL, "o1", "cancelled")

    assert race(pg_services, 10, cancel) == ["ok"] * 10
    assert stock_of(pg_services) == 5


def test_pay_and_cancel_race_one_wins(pg_services: Services) -> None:
    seed(pg_services, stock=5)
    with transaction(pg_services.sessions) as session:
        checkout(pg_services, "o1", 3)(session)

    def pay_or_cancel(session: Any, n: int) -> None:
        to = "paid" if n % 2 else "cancelled"
        orders.transition_order(session, pg_services.clock, CLI_PRINCIPAL, "o1", to)  # type: ignore[arg-type]

    outcomes = Counter(race(pg_services, 10, pay_or_cancel))
    with transaction(pg_services.sessions) as session:
        final = orders.get_order(session, CLI_PRINCIPAL, "o1").status
    assert outcomes == {"ok": 5, "illegal_transition": 5}
    assert stock_of(pg_services) == (5 if final == "cancelled" else 2)


def test_ten_logins_merge_one_visitor(pg_services: Services) -> None:
    seed(pg_services, stock=1)

    def identify(session: Any, _n: int) -> None:
        customers.identify(session, pg_services.clock, "c1", "anon-1")

    assert race(pg_services, 10, identify) == ["ok"] * 10
    with transaction(pg_services.sessions) as session:
        assert [i.value for i in customers.get_customer(session, "c1").identities] == ["anon-1"]


def test_bulk_load_and_figures_on_postgres(pg_services: Services) -> None:
    seed(pg_services, stock=5)
    at = pg_services.clock.now()
    people = [{"external_id": f"u{i}", "registered_at": at} for i in range(3)]
    rows = [{"external_id": f"x{i}", "customer_external_id": f"u{i % 3}", "status": "paid",
             "created_at": at, "paid_at": at, "total_fen": 25800, "discount_fen": 0}
            for i in range(7)]
    lines = [{"order_external_id": f"x{i}", "sku": "LAST", "quantity": 2,
              "unit_price_fen": 12900} for i in range(7)]
    with transaction(pg_services.sessions, actor="test") as session:
        customers.bulk_load(session, people, [])
        orders.bulk_load_orders(session, rows, lines)
    with transaction(pg_services.sessions) as session:
        since, until = at, at.replace(hour=23)
        assert orders.gmv_and_orders(session, since, until) == (7 * 25800, 7)
        assert orders.gmv_and_orders(session, since, until, brand_ids=[1]) == (7 * 25800, 7)
        assert orders.active_customers(session, since, until) == 3
        assert orders.get_order(session, CLI_PRINCIPAL, "x4").customer_external_id == "u1"
    assert stock_of(pg_services) == 5


def test_order_import_on_postgres(pg_services: Services) -> None:
    seed(pg_services, stock=5)
    data = ("order_external_id,customer_external_id,status,created_at,paid_at,sku,quantity,"
            "unit_price\n"
            "h1,c1,paid,2025-03-01T10:00:00+08:00,2025-03-01T10:05:00+08:00,LAST,2,129.00\n")
    reports = []
    for _ in range(2):
        with transaction(pg_services.sessions, actor="test") as session:
            reports.append(orders.import_orders(session, "h.csv", data.encode()))
    assert [(r.inserted, r.updated, r.unchanged) for r in reports] == [(1, 0, 0), (0, 0, 1)]
    with transaction(pg_services.sessions) as session:
        assert orders.get_order(session, CLI_PRINCIPAL, "h1").total_fen == 25800
    assert stock_of(pg_services) == 5
