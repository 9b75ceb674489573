"""Referrals (SPEC M3.2): links and clicks, the attribution window's edge, commission on
two levels and never a third, settlement after the return window, clawback before and
after settlement, idempotent order hooks, the tree, statements and the API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from conftest import T0
from shequ.core.clock import FixedClock
from shequ.core.db import transaction
from shequ.core.errors import Conflict, NotFound, ValidationFailed
from shequ.core.permissions import CLI_PRINCIPAL
from shequ.core.web import Services
from shequ.domains.campaigns import referrals
from shequ.domains.campaigns.referral_models import ReferralCommission, ReferralEntry
from shequ.domains.campaigns.referral_schemas import ClickIn, PromoterIn, RuleIn
from shequ.domains.catalog import service as catalog
from shequ.domains.catalog.schemas import BrandIn, ProductIn
from shequ.domains.customers import service as customers
from shequ.domains.customers.schemas import CustomerIn
from shequ.domains.orders import service as orders
from shequ.domains.orders.schemas import LineIn, OrderIn, OrderOut
from shequ.domains.orders.service import OrderTransition

PRICE = 10_000  # ¥100: level 1 earns 1,000 fen at 10 %, level 2 300 fen at 3 %


def shop(wired: Services, *people: str) -> None:
    """One product with plenty of stock and the named customers."""
    with transaction(wired.sessions) as session:
        catalog.create_brand(session, BrandIn(external_id="b1", name="花知晓"))
        catalog.create_product(session, wired.clock, CLI_PRINCIPAL, ProductIn(
            sku="SKU1", name="面霜", brand_external_id="b1", price_fen=PRICE, stock=10_000))
        for key in people:
            customers.create_customer(session, wired.clock, CustomerIn(external_id=key))


def add_people(wired: Services, *people: str) -> None:
    with transaction(wired.sessions) as session:
        for key in people:
            customers.create_customer(session, wired.clock, CustomerIn(external_id=key))


def buy(wired: Services, number: str, customer: str, *, to: str = "paid",
        device: str | None = None, address: str | None = None,
        payment: str | None = None) -> OrderOut:
    """Check out one unit and move the order along to ``to``."""
    with transaction(wired.sessions) as session:
        orders.create_order(session, wired.clock, OrderIn(
            external_id=number, customer_external_id=customer,
            lines=[LineIn(sku="SKU1", quantity=1)], device_external_id=device,
            shipping_address=address, payment_account=payment))
        path = {"created": [], "paid": ["paid"], "shipped": ["paid", "shipped"],
                "completed": ["paid", "shipped", "completed"]}[to]
        moved = orders.get_order(session, CLI_PRINCIPAL, number)
        for status in path:
            moved = orders.transition_order(session, wired.clock, CLI_PRINCIPAL, number,
                                            status)  # type: ignore[arg-type]
        return moved


def move(wired: Services, number: str, to: str) -> None:
    with transaction(wired.sessions) as session:
        orders.transition_order(session, wired.clock, CLI_PRINCIPAL, number,
                                to)  # type: ignore[arg-type]


def promote(wired: Services, customer: str, code: str) -> None:
    with transaction(wired.sessions) as session:
        referrals.make_promoter(session, wired.clock, PromoterIn(customer=customer, code=code))


def arrive(wired: Services, code: str, customer: str) -> None:
    with transaction(wired.sessions) as session:
        referrals.click(session, wired.clock, ClickIn(code=code, customer=customer))


def earned(wired: Services, number: str) -> list[tuple[str, int, int, str]]:
    """``(promoter, level, amount, state)`` of an order's commission."""
    with transaction(wired.sessions) as session:
        return [(c.promoter, c.level, c.amount_fen, c.state)
                for c in referrals.commissions_of_order(session, number)]


def advance(wired: Services, delta: timedelta) -> None:
    assert isinstance(wired.clock, FixedClock)
    wired.clock.advance(delta)


def chain(wired: Services) -> None:
    """p3 brought p2, p2 brought p1, p1 brought the buyer: three promoters deep."""
    shop(wired, "p1", "p2", "p3", "buyer")
    for customer, code in (("p3", "CODEP3"), ("p2", "CODEP2"), ("p1", "CODEP1")):
        promote(wired, customer, code)
    arrive(wired, "CODEP3", "p2")
    arrive(wired, "CODEP2", "p1")
    arrive(wired, "CODEP1", "buyer")


def test_two_levels_and_never_a_third(services: Services) -> None:
    chain(services)
    buy(services, "o1", "buyer")
    assert earned(services, "o1") == [("p1", 1, 1000, "pending"), ("p2", 2, 300, "pending")]
    with transaction(services.sessions) as session:
        # p3 is p2's referrer: three levels up from the buyer, it earns nothing.
        assert referrals.statement(session, "p3").commissions == []
        assert session.scalar(select(func.max(ReferralCommission.level))) == 2
        assert referrals.link(session, "p1").referrer == "p2"
        assert referrals.link(session, "p2").referrer == "p3"


def test_no_commission_without_a_link_or_on_recruitment(services: Services) -> None:
    chain(services)
    add_people(services, "walkin")
    buy(services, "o1", "walkin")  # arrived by no link
    assert earned(services, "o1") == []
    # Making someone a promoter, binding them or their clicks pays nothing by itself.
    with transaction(services.sessions) as session:
        assert session.scalar(select(func.count()).select_from(ReferralCommission)) == 0


def test_attribution_window_edge(services: Services) -> None:
    shop(services, "p1", "a", "b")
    promote(services, "p1", "CODEP1")
    arrive(services, "CODEP1", "a")
    arrive(services, "CODEP1", "b")
    advance(services, timedelta(days=7) - timedelta(seconds=1))
    buy(services, "inside", "a")        # the last second of the 7 days
    advance(services, timedelta(seconds=1))
    buy(services, "edge", "b")          # exactly 7 days: the window is half-open
    assert earned(services, "inside") == [("p1", 1, 1000, "pending")]
    assert earned(services, "edge") == []
    # A new click opens a new window (the latest arrival wins).
    arrive(services, "CODEP1", "b")
    buy(services, "again", "b")
    assert earned(services, "again") == [("p1", 1, 1000, "pending")]


def test_latest_click_wins_level_one_binding_keeps_the_tree(services: Services) -> None:
    shop(services, "p1", "p2", "c")
    promote(services, "p1", "CODEP1")
    promote(services, "p2", "CODEP2")
    arrive(services, "CODEP1", "c")
    advance(services, timedelta(hours=1))
    arrive(services, "CODEP2", "c")
    buy(services, "o1", "c")
    assert earned(services, "o1") == [("p2", 1, 1000, "pending")]
    with transaction(services.sessions) as session:
        assert [n.customer for n in referrals.tree(session, "p1").nodes] == ["c"]
        assert referrals.tree(session, "p2").nodes == []


def test_settlement_after_the_return_window(services: Services) -> None:
    chain(services)
    buy(services, "o1", "buyer", to="completed")
    advance(services, timedelta(days=7) - timedelta(seconds=1))
    assert referrals.settle_commissions(services)["settled"] == 0
    advance(services, timedelta(seconds=1))
    report = referrals.settle_commissions(services)
    assert (report["settled"], report["settled_fen"]) == (2, 1300)
    assert earned(services, "o1") == [("p1", 1, 1000, "settled"), ("p2", 2, 300, "settled")]
    assert referrals.settle_commissions(services)["settled"] == 0  # nothing twice
    with transaction(services.sessions) as session:
        shown = referrals.statement(session, "p1")
        assert (shown.balance_fen, shown.pending_fen, shown.settled_fen) == (1000, 0, 1000)
        assert [(e.kind, e.amount_fen, e.balance_after) for e in shown.entries] == [
            ("settle", 1000, 1000)]


def test_uncompleted_orders_stay_pending(services: Services) -> None:
    chain(services)
    buy(services, "o1", "buyer", to="shipped")
    advance(services, timedelta(days=60))
    assert referrals.settle_commissions(services)["settled"] == 0
    assert [s for *_, s in earned(services, "o1")] == ["pending", "pending"]


def test_clawback_before_settlement(services: Services) -> None:
    chain(services)
    buy(services, "o1", "buyer", to="completed")
    move(services, "o1", "refunded")
    assert [s for *_, s in earned(services, "o1")] == ["clawed_back", "clawed_back"]
    advance(services, timedelta(days=30))
    assert referrals.settle_commissions(services)["settled"] == 0
    with transaction(services.sessions) as session:
        shown = referrals.statement(session, "p1")
        assert (shown.balance_fen, shown.pending_fen, shown.clawed_back_fen) == (0, 0, 1000)
        assert shown.entries == []  # nothing was paid, so nothing to take back


def test_clawback_after_settlement_is_a_negative_entry(services: Services) -> None:
    chain(services)
    buy(services, "o1", "buyer", to="completed")
    buy(services, "o2", "buyer", to="completed")
    advance(services, timedelta(days=8))
    assert referrals.settle_commissions(services)["settled"] == 4
    move(services, "o1", "refunded")
    with transaction(services.sessions) as session:
        shown = referrals.statement(session, "p1")
        assert shown.balance_fen == 1000
        assert next((e.kind, e.amount_fen, e.order_external_id) for e in shown.entries) == (
            "clawback", -1000, "o1")
        assert shown.settled_fen == 1000
        assert shown.clawed_back_fen == 1000
        assert referrals.statement(session, "p2").balance_fen == 300
        total = session.scalar(select(func.sum(ReferralEntry.amount_fen)))
        assert total == 1000 + 300


def test_hooks_are_idempotent(services: Services) -> None:
    chain(services)
    paid = buy(services, "o1", "buyer", to="completed")
    advance(services, timedelta(days=8))
    referrals.settle_commissions(services)
    with transaction(services.sessions) as session:
        buyer = customers.customer_ids_by_key(session, ["buyer"])["buyer"]
    for to in ("paid", "completed", "refunded", "refunded", "paid"):
        moved = OrderTransition(order_id=paid.id, external_id="o1", customer_id=buyer,
                                from_status="paid", to_status=to, at=services.clock.now(),
                                total_fen=PRICE)
        for _ in range(2):
            with transaction(services.sessions) as session:
                referrals._on_order(session, services.clock, moved)
    with transaction(services.sessions) as session:
        assert session.scalar(select(func.count()).select_from(ReferralCommission)) == 2
        kinds = sorted(session.scalars(select(ReferralEntry.kind)))
        assert kinds == ["clawback", "clawback", "settle", "settle"]
        assert referrals.statement(session, "p1").balance_fen == 0


def test_no_one_earns_on_their_own_order(services: Services) -> None:
    shop(services, "p1", "p2")
    promote(services, "p1", "CODEP1")
    promote(services, "p2", "CODEP2")
    arrive(services, "CODEP1", "p2")   # p2 bound to p1
    arrive(services, "CODEP2", "p1")   # p1 bound to p2: a loop of two
    buy(services, "o1", "p1")          # p1 came by p2's link: p2 level 1, p1 not level 2
    assert earned(services, "o1") == [("p2", 1, 1000, "pending")]
    with pytest.raises(ValidationFailed) as raised:
        arrive(services, "CODEP1", "p1")
    assert raised.value.code == "self_referral"


def test_rules_apply_from_now_on(services: Services) -> None:
    chain(services)
    buy(services, "o1", "buyer")
    with transaction(services.sessions) as session:
        assert referrals.current_rule(session).created_by == "default"
        referrals.put_rule(session, services.clock, RuleIn(level1_bp=500, level2_bp=0,
                                                           attribution_days=3, return_days=1))
        with pytest.raises(ValidationFailed) as raised:
            referrals.put_rule(session, services.clock, RuleIn(level1_bp=100, level2_bp=200))
        assert raised.value.attr == "level2_bp"
    buy(services, "o2", "buyer")
    assert earned(services, "o1") == [("p1", 1, 1000, "pending"), ("p2", 2, 300, "pending")]
    assert earned(services, "o2") == [("p1", 1, 500, "pending")]


def test_promoters_links_and_errors(services: Services) -> None:
    shop(services, "p1", "p2", "c")
    with transaction(services.sessions) as session:
        made = referrals.make_promoter(session, services.clock, PromoterIn(customer="p1"))
        assert made.created
        assert len(made.code) == 8
        assert made.path == f"/r/{made.code}"
        again = referrals.make_promoter(session, services.clock, PromoterIn(customer="p1"))
        assert (again.code, again.created) == (made.code, False)
        with pytest.raises(Conflict) as taken:
            referrals.make_promoter(session, services.clock,
                                    PromoterIn(customer="p2", code=made.code))
        assert taken.value.code == "code_taken"
        with pytest.raises(NotFound):
            referrals.click(session, services.clock, ClickIn(code="NOPE1234", customer="c"))
        with pytest.raises(NotFound) as absent:
            referrals.link(session, "c")
        assert absent.value.code == "promoter_not_found"


def test_tree_two_levels_with_orders_and_commission(services: Services) -> None:
    chain(services)
    add_people(services, "other")
    arrive(services, "CODEP2", "other")  # bound to p2 directly
    buy(services, "o1", "buyer", to="completed")
    buy(services, "o2", "other")
    with transaction(services.sessions) as session:
        shown = referrals.tree(session, "p2")
        assert (shown.level1, shown.level2, shown.referrer) == (2, 1, "p3")
        by = {n.customer: n for n in shown.nodes}
        assert by["p1"].is_promoter
        assert [c.customer for c in by["p1"].children] == ["buyer"]
        child = by["p1"].children[0]
        assert child.level == 2
        assert child.commission_pending_fen == 300
        assert [(o.order_external_id, o.commission_fen) for o in child.orders] == [("o1", 300)]
        assert by["other"].commission_pending_fen == 1000
        assert by["other"].children == []
        assert shown.commission_pending_fen == 1300
        listed = {p.customer: p for p in referrals.list_promoters(session)}
        assert (listed["p2"].bound, listed["p2"].pending_fen, listed["p2"].referrer) == (
            2, 1300, "p3")


def test_api(client: TestClient, services: Services, admin_headers: dict[str, Any]) -> None:
    shop(services, "p1", "c")
    made = client.post("/api/v1/referrals/promoters", json={"customer": "p1", "code": "CODEP1"},
                       headers=admin_headers)
    assert made.status_code == 201, made.text
    assert made.json()["path"] == "/r/CODEP1"
    assert client.post("/api/v1/referrals/promoters", json={"customer": "p1"},
                       headers=admin_headers).status_code == 200
    assert client.get("/api/v1/referrals/promoters/p1/link",
                      headers=admin_headers).json()["code"] == "CODEP1"
    clicked = client.post("/api/v1/referrals/clicks", json={"code": "CODEP1", "customer": "c"},
                          headers=admin_headers)
    assert clicked.status_code == 201
    assert clicked.json()["bound_to"] == "p1"
    assert clicked.json()["expires_at"] == (T0 + timedelta(days=7)).isoformat().replace(
        "+00:00", "Z")
    rule = client.put("/api/v1/referrals/rules", json={"level1_bp": 800, "level2_bp": 200},
                      headers=admin_headers)
    assert rule.status_code == 200
    assert rule.json()["level1_bp"] == 800
    bad = client.put("/api/v1/referrals/rules", json={"level1_bp": 100, "level2_bp": 200},
                     headers=admin_headers)
    assert bad.status_code == 422
    assert bad.json()["attr"] == "level2_bp"
    buy(services, "o1", "c", to="completed")
    advance(services, timedelta(days=8))
    settled = client.post("/api/v1/referrals/settle", headers=admin_headers)
    assert settled.json()["settled_fen"] == 800
    statement = client.get("/api/v1/referrals/promoters/p1/statement", headers=admin_headers)
    assert statement.json()["balance_fen"] == 800
    shown = client.get("/api/v1/referrals/promoters/p1/tree", headers=admin_headers).json()
    assert [n["customer"] for n in shown["nodes"]] == ["c"]
    assert client.get("/api/v1/referrals/promoters", headers=admin_headers).json()[0][
        "customer"] == "p1"
    assert client.get("/api/v1/referrals/promoters/c/tree",
                      headers=admin_headers).status_code == 404
    assert client.get("/api/v1/referrals/promoters/p1/tree").status_code == 401
