"""Coupons under real concurrent transactions on PostgreSQL: one coupon raced onto many
orders, a budget raced by many coupons, the same checkout posted at once, issuance
batches racing for the last coupons, cancels racing new checkouts."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from conftest import T0
from shequ.core.db import transaction
from shequ.core.errors import ShequError
from shequ.core.permissions import CLI_PRINCIPAL
from shequ.core.web import Services
from shequ.domains.campaigns import coupons
from shequ.domains.campaigns.coupon_models import CouponRedemption
from shequ.domains.campaigns.coupon_schemas import CheckoutIn, CheckoutOut, TemplateIn
from shequ.domains.catalog import service as catalog
from shequ.domains.catalog.schemas import BrandIn, ProductIn
from shequ.domains.customers import service as customers
from shequ.domains.customers.schemas import CustomerIn
from shequ.domains.orders import service as orders
from shequ.domains.orders.schemas import LineIn

pytestmark = pytest.mark.postgres
THREADS = 32


def seed(wired: Services, customer_count: int, **template: Any) -> list[str]:
    keys = [f"c{n:02d}" for n in range(customer_count)]
    values: dict[str, Any] = {"code": "T", "name": "立减券", "kind": "fixed",
                              "amount_off_fen": 1_000, "starts_at": T0 - timedelta(days=1),
                              "ends_at": T0 + timedelta(days=7), "total_quantity": 1_000,
                              "budget_fen": 1_000_000}
    values.update(template)
    with transaction(wired.sessions, actor="test") as session:
        catalog.create_brand(session, BrandIn(external_id="b1", name="花知晓"))
        catalog.create_product(session, wired.clock, CLI_PRINCIPAL, ProductIn(
            sku="CREAM", name="面霜", brand_external_id="b1", price_fen=9_900, stock=10_000))
        for key in keys:
            customers.create_customer(session, wired.clock, CustomerIn(external_id=key))
        coupons.create_template(session, wired.clock, TemplateIn.model_validate(values))
    return keys


def race(wired: Services, count: int, work: Callable[[Session, int], object]) -> list[str]:
    """``work(session, n)`` in ``count`` threads at once, each in its own transaction:
    "ok" or the error code."""
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


def checkout(wired: Services, session: Session, code: str, customer: str, order: str
             ) -> CheckoutOut:
    return coupons.checkout(session, wired.clock, CheckoutIn(
        coupon_code=code, customer_external_id=customer, order_external_id=order,
        lines=[LineIn(sku="CREAM", quantity=1)]))


def state(wired: Services) -> tuple[int, int, int, dict[str, int]]:
    """(redemptions, granted fen, cream stock, invariant violations)."""
    with transaction(wired.sessions) as session:
        return (session.scalar(select(func.count()).select_from(CouponRedemption)) or 0,
                coupons.get_template(session, "T").granted_fen,
                catalog.get_product(session, CLI_PRINCIPAL, "CREAM").stock,
                coupons.invariant_violations(session))


def clean(found: dict[str, int]) -> bool:
    return all(v == 0 for v in found.values())


def test_one_coupon_raced_onto_32_orders(pg_services: Services) -> None:
    seed(pg_services, 1)
    with transaction(pg_services.sessions) as session:
        code = coupons.issue(session, pg_services.clock, "T", "b", ["c00"]).codes["c00"]
    outcomes = race(pg_services, THREADS,
                    lambda s, n: checkout(pg_services, s, code, "c00", f"o{n}"))
    assert Counter(outcomes) == {"ok": 1, "coupon_used": THREADS - 1}
    redeemed, granted, stock, found = state(pg_services)
    assert (redeemed, granted, stock) == (1, 1_000, 9_999)  # losers took no stock
    assert clean(found), found
    with transaction(pg_services.sessions) as session:
        assert orders.list_orders(session, CLI_PRINCIPAL).total == 1


def test_budget_for_five_raced_by_32_coupons(pg_services: Services) -> None:
    keys = seed(pg_services, THREADS, amount_off_fen=1_500, budget_fen=5 * 1_500 + 1_499)
    with transaction(pg_services.sessions) as session:
        codes = coupons.issue(session, pg_services.clock, "T", "b", keys).codes
    outcomes = race(pg_services, THREADS,
                    lambda s, n: checkout(pg_services, s, codes[keys[n]], keys[n], f"o{n}"))
    assert Counter(outcomes) == {"ok": 5, "budget_exhausted": THREADS - 5}
    redeemed, granted, stock, found = state(pg_services)
    assert (redeemed, granted, stock) == (5, 7_500, 10_000 - 5)
    assert granted <= 5 * 1_500 + 1_499
    assert clean(found), found


def test_the_same_checkout_posted_32_times(pg_services: Services) -> None:
    seed(pg_services, 1)
    with transaction(pg_services.sessions) as session:
        code = coupons.issue(session, pg_services.clock, "T", "b", ["c00"]).codes["c00"]
    replayed: list[bool] = []

    def post(session: Session, _n: int) -> None:
        replayed.append(checkout(pg_services, session, code, "c00", "same").replayed)

    assert race(pg_services, THREADS, post) == ["ok"] * THREADS
    assert Counter(replayed) == {False: 1, True: THREADS - 1}
    redeemed, granted, stock, found = state(pg_services)
    assert (redeemed, granted, stock) == (1, 1_000, 9_999)
    assert clean(found), found


def test_batches_race_for_the_last_coupons(pg_services: Services) -> None:
    keys = seed(pg_services, THREADS, total_quantity=10, per_customer_limit=1)

    def give(session: Session, n: int) -> None:
        coupons.issue(session, pg_services.clock, "T", f"batch-{n}", [keys[n], keys[0]])

    assert race(pg_services, THREADS, give) == ["ok"] * THREADS
    with transaction(pg_services.sessions) as session:
        assert coupons.get_template(session, "T").issued_count == 10
        found = coupons.invariant_violations(session)
    assert clean(found), found


def test_cancels_race_new_checkouts(pg_services: Services) -> None:
    keys = seed(pg_services, THREADS, amount_off_fen=1_000, budget_fen=8_000)
    with transaction(pg_services.sessions) as session:
        codes = coupons.issue(session, pg_services.clock, "T", "b", keys).codes
    for n in range(8):  # the budget is fully granted to the first eight
        with transaction(pg_services.sessions) as session:
            checkout(pg_services, session, codes[keys[n]], keys[n], f"first{n}")

    def act(session: Session, n: int) -> None:
        if n < 8:
            orders.transition_order(session, pg_services.clock, CLI_PRINCIPAL, f"first{n}",
                                    "cancelled")
        else:
            checkout(pg_services, session, codes[keys[n]], keys[n], f"late{n}")

    outcomes = race(pg_services, THREADS, act)
    assert outcomes[:8] == ["ok"] * 8
    late_ok = outcomes[8:].count("ok")
    assert set(outcomes[8:]) <= {"ok", "budget_exhausted"}
    assert late_ok <= 8
    _redeemed, granted, stock, found = state(pg_services)
    assert granted == late_ok * 1_000 <= 8_000
    assert stock == 10_000 - late_ok
    assert clean(found), found
