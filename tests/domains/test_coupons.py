"""Coupons: the three kinds' maths (threshold edge, percent cap), scope, template rules
with field errors, issuance limits and idempotency (list and segment), the budget cap,
exactly-once checkout with replay, cancel returns / refund keeps, figures, the API."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from conftest import T0, bearer, make_key
from shequ.analytics.events import EVENT_SCHEMA
from shequ.core.clock import FixedClock
from shequ.core.db import transaction
from shequ.core.errors import Conflict, NotFound, ShequError, ValidationFailed
from shequ.core.permissions import CLI_PRINCIPAL
from shequ.core.web import Services
from shequ.domains.campaigns import coupons
from shequ.domains.campaigns.coupon_models import Coupon, CouponRedemption, CouponTemplate
from shequ.domains.campaigns.coupon_schemas import (
    CheckoutIn,
    CheckoutOut,
    IssueIn,
    QuoteIn,
    TemplateIn,
)
from shequ.domains.catalog import service as catalog
from shequ.domains.catalog.schemas import BrandIn, ProductIn
from shequ.domains.customers import service as customers
from shequ.domains.customers.schemas import CustomerIn
from shequ.domains.events.service import event_store
from shequ.domains.orders import service as orders
from shequ.domains.orders.schemas import LineIn, OrderIn
from shequ.domains.segments import service as segments
from shequ.domains.segments.schemas import SegmentIn

# SKU -> (brand, price in fen)
PRODUCTS = {"CREAM": ("b1", 9_900), "SERUM": ("b1", 29_900), "PHONE": ("b2", 199_900),
            "PEN": ("b2", 500)}


def seed(wired: Services, *customer_keys: str, stock: int = 1_000) -> None:
    with transaction(wired.sessions) as session:
        for brand in ("b1", "b2"):
            catalog.create_brand(session, BrandIn(external_id=brand, name=f"品牌{brand}"))
        for sku, (brand, price) in PRODUCTS.items():
            catalog.create_product(session, wired.clock, CLI_PRINCIPAL, ProductIn(
                sku=sku, name=f"商品{sku}", brand_external_id=brand, price_fen=price,
                stock=stock))
        for key in customer_keys:
            customers.create_customer(session, wired.clock, CustomerIn(external_id=key))


def template(code: str = "T", **fields: Any) -> TemplateIn:
    values: dict[str, Any] = {"code": code, "name": f"券{code}", "kind": "fixed",
                              "amount_off_fen": 2_000, "starts_at": T0 - timedelta(days=1),
                              "ends_at": T0 + timedelta(days=30), "total_quantity": 100,
                              "budget_fen": 1_000_000}
    values.update(fields)
    return TemplateIn.model_validate(values)


def make(wired: Services, code: str = "T", **fields: Any) -> None:
    with transaction(wired.sessions) as session:
        coupons.create_template(session, wired.clock, template(code, **fields))


def give(wired: Services, code: str, *keys: str, batch: str = "b1") -> dict[str, str]:
    """Issue the template to ``keys``; customer -> coupon code."""
    with transaction(wired.sessions) as session:
        done = coupons.issue(session, wired.clock, code, batch, list(keys))
    return done.codes


def lines(**quantities: int) -> list[LineIn]:
    return [LineIn(sku=sku, quantity=q) for sku, q in quantities.items()]


def buy(wired: Services, coupon: str, customer: str, order: str,
        **quantities: int) -> CheckoutOut:
    with transaction(wired.sessions, actor="test") as session:
        return coupons.checkout(session, wired.clock, CheckoutIn(
            coupon_code=coupon, customer_external_id=customer, order_external_id=order,
            lines=lines(**quantities)))


def refused(wired: Services, coupon: str, customer: str, order: str, **q: int) -> str:
    try:
        buy(wired, coupon, customer, order, **q)
    except ShequError as exc:
        return exc.code
    raise AssertionError("the checkout went through")


def quote(wired: Services, coupon: str, customer: str, **q: int) -> int:
    with transaction(wired.sessions) as session:
        return coupons.quote(session, wired.clock, QuoteIn(
            coupon_code=coupon, customer_external_id=customer, lines=lines(**q))).discount_fen


def sound(wired: Services) -> None:
    with transaction(wired.sessions) as session:
        found = coupons.invariant_violations(session)
    assert found == dict.fromkeys(found, 0), found


def stock(wired: Services, sku: str) -> int:
    with transaction(wired.sessions) as session:
        return catalog.get_product(session, CLI_PRINCIPAL, sku).stock


def move(wired: Services, order: str, to: str) -> None:
    with transaction(wired.sessions, actor="test") as session:
        orders.transition_order(session, wired.clock, CLI_PRINCIPAL, order, to)  # type: ignore[arg-type]


# --- maths ----------------------------------------------------------------------------------


def test_each_kind_takes_off_what_it_says(services: Services) -> None:
    seed(services, "c1")
    make(services, "FIX", amount_off_fen=2_000)
    make(services, "PCT", kind="percent", amount_off_fen=None, percent_off=15,
         max_off_fen=5_000)
    make(services, "PCTNOCAP", kind="percent", amount_off_fen=None, percent_off=15)
    make(services, "MJ", kind="threshold", amount_off_fen=4_000, min_subtotal_fen=29_900)
    codes = {t: give(services, t, "c1")["c1"] for t in ("FIX", "PCT", "PCTNOCAP", "MJ")}
    # fixed: the amount, but never more than the goods
    assert quote(services, codes["FIX"], "c1", CREAM=1) == 2_000
    assert quote(services, codes["FIX"], "c1", PEN=1) == 500
    # percent: rounded down, capped
    assert quote(services, codes["PCT"], "c1", CREAM=1) == 9_900 * 15 // 100 == 1_485
    assert quote(services, codes["PCT"], "c1", SERUM=2) == 5_000  # 8 970 capped at 5 000
    assert quote(services, codes["PCTNOCAP"], "c1", SERUM=2) == 8_970
    # threshold: exactly at the threshold applies, one fen below does not
    assert quote(services, codes["MJ"], "c1", SERUM=1) == 4_000
    assert quote(services, codes["MJ"], "c1", CREAM=3, PEN=1) == 4_000  # 30 200
    with pytest.raises(ValidationFailed) as below:
        quote(services, codes["MJ"], "c1", CREAM=3)  # 29 700
    assert below.value.code == "below_threshold"
    # a percent of a tiny amount that rounds to nothing is refused, not a 0 discount
    with transaction(services.sessions) as session:
        assert coupons.discount_for(coupons.get_template(session, "PCT"), 6) == 0
        assert coupons.discount_for(coupons.get_template(session, "MJ"), 29_899) == 0
        assert coupons.discount_for(coupons.get_template(session, "MJ"), 29_900) == 4_000


def test_threshold_edge_on_the_order(services: Services) -> None:
    seed(services, "c1")
    make(services, "MJ", kind="threshold", amount_off_fen=1_000, min_subtotal_fen=10_000)
    code = give(services, "MJ", "c1")["c1"]
    # 9 900 + 500 = 10 400 ≥ 10 000 (both in scope)
    done = buy(services, code, "c1", "o1", CREAM=1, PEN=1)
    assert (done.discount_fen, done.order.total_fen) == (1_000, 10_400 - 1_000)
    assert done.order.coupon_code == code
    assert done.order.discount_fen == 1_000
    sound(services)


def test_scope_counts_only_lines_in_scope(services: Services) -> None:
    seed(services, "c1")
    make(services, "BR", kind="percent", amount_off_fen=None, percent_off=10, scope="brand",
         brand_external_id="b1")
    make(services, "SK", kind="threshold", amount_off_fen=3_000, min_subtotal_fen=20_000,
         scope="skus", skus=["SERUM"])
    br, sk = give(services, "BR", "c1")["c1"], give(services, "SK", "c1")["c1"]
    with transaction(services.sessions) as session:
        q = coupons.quote(session, services.clock, QuoteIn(
            coupon_code=br, customer_external_id="c1", lines=lines(CREAM=1, PHONE=1)))
    assert (q.subtotal_fen, q.eligible_fen, q.discount_fen) == (209_800, 9_900, 990)
    # the phone alone is out of the brand's scope; lots of cream is out of the SKU scope
    assert refused(services, br, "c1", "o1", PHONE=1) == "not_in_scope"
    assert refused(services, sk, "c1", "o2", CREAM=5) == "not_in_scope"
    # cream does not count toward the SERUM threshold: 29 900 in scope ≥ 20 000
    done = buy(services, sk, "c1", "o3", SERUM=1, CREAM=1)
    assert done.discount_fen == 3_000
    assert done.order.total_fen == 39_800 - 3_000
    assert stock(services, "PHONE") == 1_000  # the refusals took no stock
    sound(services)


# --- template rules ---------------------------------------------------------------------------


def test_template_rules_name_each_faulty_field(services: Services, clock: FixedClock) -> None:
    seed(services)
    make(services, "TAKEN")
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"code": "TAKEN"}, "code", "template_exists"),
        ({"kind": "percent", "amount_off_fen": None}, "percent_off", "percent_required"),
        ({"kind": "percent", "percent_off": 10}, "amount_off_fen", "amount_not_allowed"),
        ({"amount_off_fen": None}, "amount_off_fen", "amount_required"),
        ({"max_off_fen": 100}, "max_off_fen", "cap_not_allowed"),
        ({"min_subtotal_fen": 100}, "min_subtotal_fen", "minimum_not_allowed"),
        ({"kind": "threshold", "min_subtotal_fen": 2_000}, "min_subtotal_fen",
         "threshold_too_low"),
        ({"ends_at": T0 - timedelta(days=2)}, "ends_at", "window_order"),
        ({"starts_at": T0 - timedelta(days=9), "ends_at": T0 - timedelta(days=2)}, "ends_at",
         "window_ended"),
        ({"scope": "brand"}, "brand_external_id", "brand_required"),
        ({"scope": "brand", "brand_external_id": "nope"}, "brand_external_id",
         "unknown_brand"),
        ({"brand_external_id": "b1"}, "brand_external_id", "brand_not_allowed"),
        ({"scope": "skus"}, "skus", "skus_required"),
        ({"scope": "skus", "skus": ["CREAM", "CREAM"]}, "skus", "skus_repeated"),
        ({"scope": "skus", "skus": ["GHOST"]}, "skus", "unknown_sku"),
        ({"skus": ["CREAM"]}, "skus", "skus_not_allowed"),
        ({"budget_fen": 1_999}, "budget_fen", "budget_below_face_value"),
    ]
    for fields, attr, code in cases:
        data = template("NEW", **fields) if "code" not in fields else template(**fields)
        with transaction(services.sessions) as session:
            errors = coupons.template_errors(session, clock, data)
            assert [(e.attr, e.code) for e in errors][:1] == [(attr, code)], fields
            with pytest.raises(ShequError) as exc:
                coupons.create_template(session, clock, data)
            assert exc.value.code == code
    # several faults at once: one error per field, for the console form
    with transaction(services.sessions) as session:
        many = coupons.template_errors(session, clock, template(
            "NEW", amount_off_fen=None, scope="skus", ends_at=T0 - timedelta(days=3)))
    assert {e.attr for e in many} == {"amount_off_fen", "skus", "ends_at"}
    with transaction(services.sessions) as session:
        assert session.scalar(select(func.count()).select_from(CouponTemplate)) == 1


# --- issuance ---------------------------------------------------------------------------------


def test_issuance_limits_quantity_and_idempotent_batches(services: Services) -> None:
    seed(services, "c1", "c2", "c3", "c4")
    make(services, "T", per_customer_limit=2, total_quantity=5)
    with transaction(services.sessions) as session:
        first = coupons.issue(session, services.clock, "T", "push-1",
                              ["c1", "c2", "ghost", "c1"], rng=random.Random(1))
    assert first.issued == ["c1", "c2"]
    assert first.requested == 3
    assert [(s.customer_external_id, s.reason) for s in first.skipped] == [
        ("ghost", "unknown_customer")]
    # the same batch again: nothing new, the same codes
    with transaction(services.sessions) as session:
        again = coupons.issue(session, services.clock, "T", "push-1", ["c1", "c2"])
    assert again.issued == []
    assert again.codes == first.codes
    assert {s.reason for s in again.skipped} == {"already_issued"}
    # a second batch: c1 gets its second coupon, then the quantity (5) runs out
    with transaction(services.sessions) as session:
        second = coupons.issue(session, services.clock, "T", "push-2", ["c1", "c2", "c3", "c4"])
    assert second.issued == ["c1", "c2", "c3"]
    assert [(s.customer_external_id, s.reason) for s in second.skipped] == [("c4", "sold_out")]
    with transaction(services.sessions) as session:
        third = coupons.issue(session, services.clock, "T", "push-3", ["c1"])
        assert [s.reason for s in third.skipped] == ["limit_reached"]
        assert coupons.get_template(session, "T").issued_count == 5
        held = session.scalars(select(Coupon.code)).all()
        assert len(held) == len(set(held)) == 5
        assert all(len(code) == 12 for code in held)
        listed = coupons.batches(session, "T")
        assert [(b.batch_key, b.requested, b.issued) for b in listed] == [
            ("push-3", 1, 0), ("push-2", 4, 3), ("push-1", 3, 2)]
    sound(services)


def test_issuance_after_the_window_is_refused(services: Services, clock: FixedClock) -> None:
    seed(services, "c1")
    make(services, "T", ends_at=T0 + timedelta(hours=1))
    clock.advance(timedelta(hours=2))
    with transaction(services.sessions) as session, pytest.raises(Conflict) as exc:
        coupons.issue(session, clock, "T", "late", ["c1"])
    assert exc.value.code == "template_ended"


def test_issue_to_a_saved_segment(services: Services) -> None:
    seed(services, "c1", "c2", "c3")
    store = event_store(services)
    store.ingest_arrow(pa.Table.from_pylist(
        [{field.name: {"event_id": f"e-{key}", "name": "payment", "ts": T0 - timedelta(days=2),
                       "customer_id": key}.get(field.name) for field in EVENT_SCHEMA}
         for key in ("c1", "c3")], schema=EVENT_SCHEMA))
    segment = segments.create_segment(services, CLI_PRINCIPAL, SegmentIn(
        name="Paid lately", key="paid-lately", rule={"event": "payment", "within_days": 30}))
    make(services, "T")
    source, keys = coupons.recipients(services, CLI_PRINCIPAL,
                                      IssueIn(batch_key="seg", segment_id=segment.id))
    assert (source, keys) == ("segment:paid-lately", ["c1", "c3"])
    with pytest.raises(ValidationFailed) as both:
        coupons.recipients(services, CLI_PRINCIPAL, IssueIn(
            batch_key="x", segment_id=segment.id, customer_external_ids=["c1"]))
    assert both.value.attr == "segment_id"
    with transaction(services.sessions) as session:
        done = coupons.issue(session, services.clock, "T", "seg", keys, source=source)
        assert done.issued == ["c1", "c3"]
        assert coupons.batches(session, "T")[0].source == "segment:paid-lately"


# --- checkout ---------------------------------------------------------------------------------


def test_checkout_is_exactly_once(services: Services) -> None:
    seed(services, "c1", "c2")
    make(services, "T", amount_off_fen=2_000)
    code = give(services, "T", "c1", "c2")
    done = buy(services, code["c1"], "c1", "o1", CREAM=2)
    assert not done.replayed
    assert done.discount_fen == 2_000
    assert done.order.total_fen == 19_800 - 2_000
    assert done.order.status == "created"
    # the same request again: the same order, no more stock taken
    again = buy(services, code["c1"], "c1", "o1", CREAM=2)
    assert again.replayed
    assert again.order.id == done.order.id
    assert again.discount_fen == 2_000
    assert stock(services, "CREAM") == 998
    # the coupon on another order, the order number with other content, someone else's
    assert refused(services, code["c1"], "c1", "o2", CREAM=1) == "coupon_used"
    assert refused(services, code["c1"], "c1", "o1", CREAM=3) == "order_exists"
    assert refused(services, code["c2"], "c1", "o3", CREAM=1) == "coupon_not_owned"
    assert refused(services, "NOSUCHCODE", "c1", "o4", CREAM=1) == "coupon_not_found"
    assert refused(services, code["c2"], "c2", "o1", CREAM=2) == "order_exists"
    assert refused(services, code["c2"], "c2", "o5", GHOST=1) == "unknown_sku"
    assert refused(services, code["c2"], "c2", "o6", CREAM=5_000) == "insufficient_stock"
    assert stock(services, "CREAM") == 998
    with transaction(services.sessions) as session:
        assert session.scalar(select(func.count()).select_from(CouponRedemption)) == 1
        assert coupons.get_template(session, "T").granted_fen == 2_000
        wallet = {c.code: c for c in coupons.customer_coupons(session, services.clock, "c1")}
    assert wallet[code["c1"]].state == "used"
    assert wallet[code["c1"]].order_external_id == "o1"
    sound(services)


def test_window_is_enforced(services: Services, clock: FixedClock) -> None:
    seed(services, "c1")
    make(services, "T", starts_at=T0 + timedelta(days=1), ends_at=T0 + timedelta(days=2))
    code = give(services, "T", "c1")["c1"]
    assert refused(services, code, "c1", "o1", CREAM=1) == "coupon_not_started"
    clock.advance(timedelta(days=1))
    assert buy(services, code, "c1", "o1", CREAM=1).discount_fen == 2_000
    move(services, "o1", "cancelled")
    clock.advance(timedelta(days=1))
    assert refused(services, code, "c1", "o2", CREAM=1) == "coupon_expired"
    with transaction(services.sessions) as session:
        assert coupons.customer_coupons(session, clock, "c1")[0].state == "expired"


def test_budget_cap_refuses_what_it_cannot_cover(services: Services) -> None:
    keys = [f"c{n}" for n in range(5)]
    seed(services, *keys)
    make(services, "T", kind="percent", amount_off_fen=None, percent_off=50,
         max_off_fen=10_000, budget_fen=25_000)
    code = give(services, "T", *keys)
    assert buy(services, code["c0"], "c0", "o0", SERUM=1).discount_fen == 10_000  # capped
    assert buy(services, code["c1"], "c1", "o1", SERUM=1).discount_fen == 10_000
    assert refused(services, code["c2"], "c2", "o2", SERUM=1) == "budget_exhausted"
    with pytest.raises(Conflict) as exc:
        quote(services, code["c2"], "c2", SERUM=1)
    assert exc.value.code == "budget_exhausted"
    # a smaller discount still fits: 9 900 × 50 % = 4 950 ≤ 5 000 left
    assert buy(services, code["c3"], "c3", "o3", CREAM=1).discount_fen == 4_950
    with transaction(services.sessions) as session:
        t = coupons.get_template(session, "T")
    assert t.granted_fen == 24_950 <= t.budget_fen
    assert stock(services, "SERUM") == 998
    sound(services)


def test_cancel_returns_the_coupon_and_refund_keeps_it(services: Services) -> None:
    seed(services, "c1")
    make(services, "T", amount_off_fen=2_000, budget_fen=2_000)
    code = give(services, "T", "c1")["c1"]
    buy(services, code, "c1", "o1", CREAM=1)
    assert refused(services, code, "c1", "o2", CREAM=1) == "coupon_used"
    move(services, "o1", "cancelled")
    move(services, "o1", "cancelled")  # again: nothing more is given back
    with transaction(services.sessions) as session:
        assert coupons.get_template(session, "T").granted_fen == 0
        assert coupons.customer_coupons(session, services.clock, "c1")[0].state == "issued"
    sound(services)
    # the returned coupon (and the budget it freed) work on a new order
    done = buy(services, code, "c1", "o2", CREAM=1)
    assert done.discount_fen == 2_000
    # replaying the cancelled order's checkout answers with that order, as it stands
    old = buy(services, code, "c1", "o1", CREAM=1)
    assert old.replayed
    assert old.order.status == "cancelled"
    move(services, "o2", "paid")
    move(services, "o2", "refunded")
    with transaction(services.sessions) as session:
        assert coupons.get_template(session, "T").granted_fen == 2_000
        assert coupons.customer_coupons(session, services.clock, "c1")[0].state == "used"
        shown = coupons.redemptions(session, "T")
        fig = coupons.figures(session, "T")
    assert [(r.order_external_id, r.state, r.order_status) for r in shown] == [
        ("o2", "active", "refunded"), ("o1", "released", "cancelled")]
    assert (fig.redeemed, fig.gmv_fen, fig.paid_orders) == (1, 0, 0)  # refunded: no GMV
    sound(services)


def test_figures(services: Services) -> None:
    seed(services, "old", "new1", "new2", "idle")
    with transaction(services.sessions) as session:
        orders.create_order(session, services.clock, OrderIn(
            external_id="before", customer_external_id="old", lines=lines(PEN=1)))
    make(services, "T", amount_off_fen=1_000, budget_fen=10_000)
    code = give(services, "T", "old", "new1", "new2", "idle")
    buy(services, code["old"], "old", "o1", CREAM=1)
    buy(services, code["new1"], "new1", "o2", SERUM=1)
    buy(services, code["new2"], "new2", "o3", CREAM=1)
    move(services, "o1", "paid")
    move(services, "o2", "paid")
    move(services, "o3", "cancelled")
    with transaction(services.sessions) as session:
        fig = coupons.figures(session, "T")
        listed = coupons.list_figures(session)
    assert (fig.issued, fig.redeemed, fig.redemption_rate) == (4, 2, 0.5)
    assert (fig.granted_fen, fig.budget_fen, fig.budget_used) == (2_000, 10_000, 0.2)
    assert (fig.gmv_fen, fig.paid_orders) == (9_900 - 1_000 + 29_900 - 1_000, 2)
    assert (fig.redeemers, fig.new_customers) == (2, 1)
    assert listed[0].figures == fig


# --- API ------------------------------------------------------------------------------------


def test_api_flow(client: TestClient, services: Services) -> None:
    seed(services, "c1", "c2")
    staff = bearer(make_key(services, ["campaigns:read", "campaigns:write"]))
    reader = bearer(make_key(services, ["campaigns:read"]))
    body = {"code": "NEW20", "name": "新人立减", "kind": "fixed", "amount_off_fen": 2_000,
            "starts_at": (T0 - timedelta(days=1)).isoformat(),
            "ends_at": (T0 + timedelta(days=7)).isoformat(), "total_quantity": 10,
            "budget_fen": 20_000}
    assert client.post("/api/v1/coupons/templates", json=body, headers=reader
                       ).status_code == 403
    made = client.post("/api/v1/coupons/templates", json=body, headers=staff)
    assert made.status_code == 201, made.text
    bad = client.post("/api/v1/coupons/templates", headers=staff,
                      json=body | {"code": "BAD", "budget_fen": 100})
    assert bad.status_code == 422
    assert bad.json()["attr"] == "budget_fen"
    dup = client.post("/api/v1/coupons/templates", json=body, headers=staff)
    assert dup.status_code == 409
    assert dup.json()["code"] == "template_exists"
    issue = {"batch_key": "welcome", "customer_external_ids": ["c1", "c2", "zz"]}
    issued = client.post("/api/v1/coupons/templates/NEW20/issue", json=issue, headers=staff)
    assert issued.status_code == 201
    assert issued.json()["issued"] == ["c1", "c2"]
    again = client.post("/api/v1/coupons/templates/NEW20/issue", json=issue, headers=staff)
    assert again.status_code == 200
    assert again.json()["issued"] == []
    assert client.post("/api/v1/coupons/templates/NOPE/issue", json=issue,
                       headers=staff).status_code == 404
    wallet = client.get("/api/v1/coupons/customers/c1/coupons", headers=reader).json()
    code = wallet[0]["code"]
    assert wallet[0]["state"] == "issued"
    assert wallet[0]["template_code"] == "NEW20"
    order = {"coupon_code": code, "customer_external_id": "c1", "order_external_id": "A1",
             "lines": [{"sku": "CREAM", "quantity": 1}]}
    q = client.post("/api/v1/coupons/quote", headers=reader, json={
        k: order[k] for k in ("coupon_code", "customer_external_id", "lines")})
    assert q.status_code == 200
    assert q.json()["total_fen"] == 7_900
    first = client.post("/api/v1/coupons/checkout", json=order, headers=staff)
    assert first.status_code == 201, first.text
    assert first.json()["order"]["discount_fen"] == 2_000
    replay = client.post("/api/v1/coupons/checkout", json=order, headers=staff)
    assert replay.status_code == 200
    assert replay.json()["order"] == first.json()["order"]
    other = client.post("/api/v1/coupons/checkout", headers=staff,
                        json=order | {"order_external_id": "A2"})
    assert other.status_code == 409
    assert other.json()["code"] == "coupon_used"
    detail = client.get("/api/v1/coupons/templates/NEW20", headers=reader).json()
    assert detail["figures"]["redeemed"] == 1
    assert detail["figures"]["issued"] == 2
    listed = client.get("/api/v1/coupons/templates", headers=reader).json()
    assert [d["template"]["code"] for d in listed] == ["NEW20"]
    shown = client.get("/api/v1/coupons/templates/NEW20/redemptions", headers=reader).json()
    assert [r["order_external_id"] for r in shown] == ["A1"]
    assert client.get("/api/v1/coupons/templates/NEW20/batches", headers=reader
                      ).json()[0]["batch_key"] == "welcome"
    assert client.get("/api/v1/coupons/customers/ghost/coupons",
                      headers=reader).status_code == 404


def test_not_found_codes(services: Services, session: Session) -> None:
    with pytest.raises(NotFound) as exc:
        coupons.figures(session, "NONE")
    assert exc.value.code == "template_not_found"
