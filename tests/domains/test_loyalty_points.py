"""The points ledger: earn rules, idempotency, oldest-first spending and expiry, rewards
and refunds, signed one-time store codes, ledger invariants under random sequences
(hypothesis), the API, and parallel redemptions and verifications on PostgreSQL."""

from __future__ import annotations

import itertools
import re
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from conftest import T0, bearer, make_key
from shequ.core.clock import FixedClock
from shequ.core.db import transaction
from shequ.core.errors import Conflict, NotFound, ShequError, ValidationFailed
from shequ.core.permissions import CLI_PRINCIPAL
from shequ.core.web import Services
from shequ.domains.catalog import service as catalog
from shequ.domains.catalog.schemas import BrandIn, ProductIn
from shequ.domains.customers import service as customers
from shequ.domains.customers.schemas import CustomerIn
from shequ.domains.loyalty import codes, service
from shequ.domains.loyalty.models import (
    PointsAccount,
    PointsEntry,
    PointsLot,
    PointsMovement,
)
from shequ.domains.loyalty.schemas import (
    AdjustIn,
    EarnIn,
    RedeemIn,
    RedemptionOut,
    RefundIn,
    RewardIn,
    SignInIn,
    VerifyIn,
)
from shequ.domains.orders import service as orders
from shequ.domains.orders.schemas import LineIn, OrderIn

SECRET = "change-me"  # the development secret the test wiring runs with
CODE_FORM = re.compile(r"^SQ1\.[A-Z2-7]{24}\.[A-Z2-7]{24}$")


def add_customers(wired: Services, *keys: str) -> None:
    with transaction(wired.sessions) as session:
        for key in keys:
            customers.create_customer(session, wired.clock, CustomerIn(external_id=key))


def give(session: Session, wired: Services, customer: str, points: int, key: str) -> None:
    """Credit ``points`` through an adjustment (a lot expiring 365 days from now)."""
    service.adjust(session, wired.clock, AdjustIn(customer_external_id=customer, points=points,
                                                  reason="test", idempotency_key=key))


def put(session: Session, wired: Services, code: str, kind: str, cost: int,
        stock: int | None = None) -> None:
    service.put_reward(session, wired.clock, RewardIn(code=code, name=f"奖励{code}", kind=kind,
                                                      cost_points=cost, stock=stock))


def redeem(session: Session, wired: Services, customer: str, reward: str, key: str
           ) -> RedemptionOut:
    return service.redeem(session, wired.clock, RedeemIn(
        customer_external_id=customer, reward=reward, idempotency_key=key), secret_key=SECRET)


def check_ledger(session: Session) -> None:
    """Every movement balances, every balance is the sum of its entries and of its lots'
    remaining points, no lot is negative and the whole ledger sums to zero."""
    per_movement = session.execute(select(PointsEntry.movement_id, func.sum(PointsEntry.points),
                                          func.count()).group_by(PointsEntry.movement_id)).all()
    movements = session.scalar(select(func.count()).select_from(PointsMovement))
    assert len(per_movement) == movements
    assert all(total == 0 and count >= 2 for _, total, count in per_movement)
    for account in session.scalars(select(PointsAccount).where(
            PointsAccount.kind == "customer")):
        entries = session.scalar(select(func.coalesce(func.sum(PointsEntry.points), 0))
                                 .where(PointsEntry.account_id == account.id))
        lots = session.scalar(select(func.coalesce(func.sum(PointsLot.remaining), 0))
                              .where(PointsLot.account_id == account.id))
        assert account.balance == entries == lots
        assert account.balance is not None
        assert account.balance >= 0
    assert session.scalar(select(func.count()).select_from(PointsLot).where(
        (PointsLot.remaining < 0) | (PointsLot.remaining > PointsLot.points))) == 0
    assert service.ledger_total(session) == 0


# --- earning and idempotency -------------------------------------------------------------


def test_orders_earn_when_paid_and_give_back_when_refunded(services: Services,
                                                          clock: FixedClock) -> None:
    add_customers(services, "c1")
    with transaction(services.sessions) as session:
        catalog.create_brand(session, BrandIn(external_id="b1", name="花知晓"))
        catalog.create_product(session, clock, CLI_PRINCIPAL, ProductIn(
            sku="LIP", name="口红", brand_external_id="b1", price_fen=10_000, stock=10))
        for number in ("o1", "o2"):
            orders.create_order(session, clock, OrderIn(
                external_id=number, customer_external_id="c1",
                lines=[LineIn(sku="LIP", quantity=1)]))
        assert service.balance(session, "c1").balance == 0  # created is not paid
        orders.transition_order(session, clock, CLI_PRINCIPAL, "o1", "paid")
        orders.transition_order(session, clock, CLI_PRINCIPAL, "o1", "paid")  # no move
        orders.transition_order(session, clock, CLI_PRINCIPAL, "o2", "paid")
        assert service.balance(session, "c1").balance == 200
        put(session, services, "mug", "goods", 150)
        redeem(session, services, "c1", "mug", "r1")
        # o1's 100 points come back only as far as the 50 left allow; o2's not at all.
        orders.transition_order(session, clock, CLI_PRINCIPAL, "o1", "refunded")
        assert service.balance(session, "c1").balance == 0
        orders.transition_order(session, clock, CLI_PRINCIPAL, "o1", "refunded")  # no move
        orders.transition_order(session, clock, CLI_PRINCIPAL, "o2", "refunded")
        assert service.balance(session, "c1").balance == 0
        entries = [(e.kind, e.points, e.reason)
                   for e in service.statement(session, "c1").entries]
        assert entries[0] == ("adjust", -50, "order refunded: o1 (50 of its 100 points "
                                              "were already spent)")
        assert [kind for kind, _, _ in entries] == ["adjust", "redeem", "earn", "earn"]
        check_ledger(session)


def test_earn_rules_and_idempotent_keys(services: Services, clock: FixedClock) -> None:
    add_customers(services, "c1", "c2")
    with transaction(services.sessions) as session:
        catalog.create_brand(session, BrandIn(external_id="b1", name="花知晓"))
        catalog.create_product(session, clock, CLI_PRINCIPAL, ProductIn(
            sku="LIP", name="口红", brand_external_id="b1", price_fen=12_950, stock=10))
        orders.create_order(session, clock, OrderIn(
            external_id="o1", customer_external_id="c1", lines=[LineIn(sku="LIP", quantity=2)]))
    with transaction(services.sessions) as session:
        with pytest.raises(ValidationFailed) as unpaid:
            service.earn(session, clock, EarnIn(rule="order", reference="o1"))
        assert (unpaid.value.code, unpaid.value.attr) == ("order_not_paid", "reference")
        orders.transition_order(session, clock, CLI_PRINCIPAL, "o1", "paid")
    with transaction(services.sessions) as session:
        # ¥259.00 paid → 259 points (one per whole yuan), credited to the order's customer
        # when the order moved to paid; the shop's own earn request for it is a replay.
        first = service.earn(session, clock, EarnIn(rule="order", reference="o1"))
        assert (first.points, first.balance_after, first.customer_external_id,
                first.idempotency_key, first.replayed) == (259, 259, "c1", "order:o1", True)
        again = service.earn(session, clock, EarnIn(rule="order", reference="o1"))
        assert again == first
        with pytest.raises(ValidationFailed) as mismatch:
            service.earn(session, clock, EarnIn(rule="order", reference="o1",
                                                customer_external_id="c2"))
        assert mismatch.value.attr == "customer_external_id"
        with pytest.raises(NotFound):
            service.earn(session, clock, EarnIn(rule="order", reference="nope"))
        review = service.earn(session, clock, EarnIn(rule="review", reference="r9",
                                                     customer_external_id="c1"))
        post = service.earn(session, clock, EarnIn(rule="ugc", reference="p9",
                                                   customer_external_id="c1"))
        assert (review.points, post.points, post.balance_after) == (20, 10, 289)
        with pytest.raises(ValidationFailed) as who:
            service.earn(session, clock, EarnIn(rule="review", reference="r10"))
        assert (who.value.code, who.value.attr) == ("customer_required",
                                                    "customer_external_id")
        with pytest.raises(NotFound) as nobody:
            service.earn(session, clock, EarnIn(rule="ugc", reference="p10",
                                                customer_external_id="ghost"))
        assert (nobody.value.code, nobody.value.attr) == ("customer_not_found",
                                                          "customer_external_id")
        # The same review key for another customer is refused, nothing is written.
        with pytest.raises(Conflict) as taken:
            service.earn(session, clock, EarnIn(rule="review", reference="r9",
                                                customer_external_id="c2"))
        assert taken.value.code == "idempotency_key_used"
    # T0 is 16:00 in Shanghai: a sign-in at 23:59 is the same day, at 00:00 the next.
    with transaction(services.sessions) as session:
        day1 = service.sign_in(session, clock, SignInIn(customer_external_id="c1"))
        clock.advance(timedelta(hours=7, minutes=59))
        same = service.sign_in(session, clock, SignInIn(customer_external_id="c1"))
        clock.advance(timedelta(minutes=1))
        day2 = service.sign_in(session, clock, SignInIn(customer_external_id="c1"))
    assert day1.idempotency_key == "signin:c1:2026-11-20"
    assert (same.replayed, same.balance_after) == (True, 294)
    assert (day2.idempotency_key, day2.points, day2.balance_after) == (
        "signin:c1:2026-11-21", 5, 299)
    with transaction(services.sessions) as session:
        assert session.scalar(select(func.count()).select_from(PointsMovement)) == 5
        assert service.balance(session, "c1").balance == 299
        assert service.balance(session, "c2").balance == 0
        check_ledger(session)


# --- spending, expiry, stock, refunds ----------------------------------------------------


def test_spending_takes_the_soonest_expiring_lots_and_expiry_takes_the_rest(
        services: Services, clock: FixedClock) -> None:
    add_customers(services, "c1")
    with transaction(services.sessions) as session:
        put(session, services, "tea", "goods", 120)
        put(session, services, "mug", "goods", 60)
        give(session, services, "c1", 100, "a")           # lot A: expires T0 + 365 d
        clock.advance(timedelta(days=100))
        give(session, services, "c1", 50, "b")            # lot B: expires T0 + 465 d
        clock.advance(timedelta(days=10))
        give(session, services, "c1", 40, "c")            # lot C: expires T0 + 475 d
        spent = redeem(session, services, "c1", "tea", "r1")
    assert (spent.movement.points, spent.movement.balance_after) == (-120, 70)
    with transaction(services.sessions) as session:
        lots = service.balance(session, "c1").lots
    # A (100) is spent first, then 20 of B; C is untouched.
    assert [(lot.points, lot.remaining) for lot in lots] == [(50, 30), (40, 40)]
    assert lots[0].expires_at == T0 + timedelta(days=465)
    # At T0 + 466 d lot B is due. A redemption first expires it: 40 left, 60 needed.
    clock.advance(timedelta(days=356))
    with transaction(services.sessions) as session:
        with pytest.raises(Conflict) as short:
            redeem(session, services, "c1", "mug", "r2")
        assert (short.value.code, short.value.attr) == ("insufficient_points", "reward")
    with transaction(services.sessions) as session:
        report = service.expire(session, clock)
        assert (report.lots, report.points, report.customers) == (1, 30, 1)
        assert service.expire(session, clock).lots == 0
        shown = service.balance(session, "c1")
        assert (shown.balance, [lot.remaining for lot in shown.lots]) == (40, [40])
        page = service.statement(session, "c1", limit=2)
        assert [(e.kind, e.points) for e in page.entries] == [("expire", -30), ("redeem", -120)]
        rest = service.statement(session, "c1", before=page.next_before, limit=10)
        assert [(e.kind, e.points) for e in rest.entries] == [
            ("adjust", 40), ("adjust", 50), ("adjust", 100)]
        assert rest.next_before is None
        check_ledger(session)


def test_stock_refunds_and_redemption_keys(services: Services, clock: FixedClock) -> None:
    add_customers(services, "c1", "c2")
    with transaction(services.sessions) as session:
        put(session, services, "lamp", "goods", 100, stock=1)
        put(session, services, "spa", "service", 30)
        give(session, services, "c1", 200, "g1")
        give(session, services, "c2", 200, "g2")
        first = redeem(session, services, "c1", "lamp", "k1")
        assert redeem(session, services, "c1", "lamp", "k1").replayed
        with pytest.raises(Conflict) as gone:
            redeem(session, services, "c2", "lamp", "k2")
        assert (gone.value.code, gone.value.attr) == ("out_of_stock", "reward")
        with pytest.raises(Conflict) as other:
            redeem(session, services, "c1", "spa", "k1")
        assert other.value.code == "idempotency_key_used"
        assert [r.stock for r in service.list_rewards(session)] == [None, 0]
    assert (first.state, first.store_code, first.movement.balance_after) == ("done", None, 100)
    with transaction(services.sessions) as session:
        back = service.refund(session, clock, RefundIn(redemption_key="k1",
                                                       idempotency_key="rf1"),
                              secret_key=SECRET)
        assert back.state == "refunded"
        assert back.refund is not None
        assert (back.refund.points, back.refund.balance_after) == (100, 200)
        assert service.refund(session, clock, RefundIn(redemption_key="k1",
                                                       idempotency_key="rf1"),
                              secret_key=SECRET).replayed
        with pytest.raises(Conflict) as twice:
            service.refund(session, clock, RefundIn(redemption_key="k1",
                                                    idempotency_key="rf2"), secret_key=SECRET)
        assert (twice.value.code, twice.value.attr) == ("already_refunded", "redemption_key")
        with pytest.raises(NotFound):
            service.refund(session, clock, RefundIn(redemption_key="nope",
                                                    idempotency_key="rf3"), secret_key=SECRET)
        # The points went back into a lot with the spent lot's expiry; the stock returned.
        lots = service.balance(session, "c1").lots
        assert sorted((lot.remaining, lot.expires_at) for lot in lots) == [
            (100, T0 + timedelta(days=365)), (100, T0 + timedelta(days=365))]
        assert [r.stock for r in service.list_rewards(session)] == [None, 1]
        assert redeem(session, services, "c2", "lamp", "k2").movement.balance_after == 100
        with pytest.raises(Conflict) as poor:
            service.adjust(session, clock, AdjustIn(customer_external_id="c2", points=-101,
                                                    reason="x", idempotency_key="d1"))
        assert (poor.value.code, poor.value.attr) == ("insufficient_points", "points")
        check_ledger(session)


# --- store codes -------------------------------------------------------------------------


def _refused(session: Session, wired: Services, code: str, store: str = "s1") -> ShequError:
    with pytest.raises(ShequError) as refused:
        service.verify_code(session, wired.clock, VerifyIn(code=code, store_id=store),
                            secret_key=SECRET)
    assert refused.value.attr == "code"
    return refused.value


def test_store_codes_work_once_and_refuse_forgeries(services: Services,
                                                    clock: FixedClock) -> None:
    add_customers(services, "c1")
    with transaction(services.sessions) as session:
        put(session, services, "facial", "offline", 50)
        give(session, services, "c1", 500, "g")
        done = [redeem(session, services, "c1", "facial", f"r{n}") for n in range(4)]
    codes_ = [d.store_code.code for d in done if d.store_code is not None]
    assert len(codes_) == 4
    assert all(CODE_FORM.match(code) for code in codes_)
    assert len(set(codes_)) == 4
    assert done[0].store_code is not None
    assert done[0].store_code.expires_at == T0 + timedelta(days=30)
    first = codes_[0]
    with transaction(services.sessions) as session:
        ok = service.verify_code(session, clock, VerifyIn(code=f"  {first.lower()} ",
                                                          store_id="store-7"),
                                 secret_key=SECRET)
        assert (ok.reward, ok.customer_external_id, ok.store_id) == ("facial", "c1", "store-7")
    with transaction(services.sessions) as session:
        used = _refused(session, services, first)
        assert (used.code, used.status) == ("code_used", 409)
        assert "store-7" in used.detail
        shown = service.show_redemption(session, "r0", secret_key=SECRET).store_code
        assert shown is not None
        assert (shown.code, shown.store_id) == (first, "store-7")
        # A changed signature, a payload with another's signature, another shop's key:
        prefix, payload, signature = codes_[1].split(".")
        flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
        for forged in (f"{prefix}.{payload}.{flipped}",
                       f"{prefix}.{payload}.{codes_[2].split('.')[2]}",
                       codes.sign(codes.code_key("another-shop"), "00" * 11, T0)):
            refused = _refused(session, services, forged)
            assert (refused.code, refused.status) == ("code_forged", 422)
        for junk in ("hello", "SQ1.AAAA.BBBB", f"SQ2.{payload}.{signature}",
                     f"SQ1.{payload[:-1]}1.{signature}"):
            assert _refused(session, services, junk).code == "code_malformed"
        # A genuine signature over a nonce no redemption holds.
        unknown = codes.sign(codes.code_key(SECRET), "ab" * 11, T0 + timedelta(days=1))
        assert _refused(session, services, unknown).code == "code_not_found"
        # The refund of a redemption voids its code; a used code's redemption is kept.
        service.refund(session, clock, RefundIn(redemption_key="r1", idempotency_key="f1"),
                       secret_key=SECRET)
        assert _refused(session, services, codes_[1]).code == "code_void"
        with pytest.raises(Conflict) as kept:
            service.refund(session, clock, RefundIn(redemption_key="r0",
                                                    idempotency_key="f0"), secret_key=SECRET)
        assert kept.value.code == "code_used"
    clock.advance(timedelta(days=30))
    with transaction(services.sessions) as session:
        expired = _refused(session, services, codes_[2])
        assert (expired.code, expired.status) == ("code_expired", 409)
        check_ledger(session)


# --- ledger invariants under random sequences ---------------------------------------------

_serial = itertools.count()
COSTS = {"cheap": 25, "dear": 350, "offline": 80}
operations = st.lists(st.one_of(
    st.tuples(st.just("earn"), st.integers(1, 400)),
    st.tuples(st.just("redeem"), st.sampled_from(sorted(COSTS))),
    st.tuples(st.just("debit"), st.integers(1, 300)),
    st.tuples(st.just("wait"), st.integers(1, 400)),
    st.tuples(st.just("expire"), st.just("")),
    st.tuples(st.just("refund"), st.integers(0, 20)),
    st.tuples(st.just("replay"), st.integers(0, 20)),
), min_size=1, max_size=25)


class LotModel:
    """The ledger's expected lots, kept by plain Python: credits add a lot, debits take
    from the soonest-expiring lots after dropping the due ones, expiry drops due lots."""

    def __init__(self) -> None:
        self.lots: list[list[Any]] = []  # [expires_at, serial, remaining]
        self.serial = itertools.count()

    def credit(self, points: int, expires_at: Any) -> None:
        self.lots.append([expires_at, next(self.serial), points])

    def expire(self, now: Any) -> None:
        for lot in self.lots:
            if lot[0] <= now:
                lot[2] = 0

    def debit(self, points: int, now: Any) -> list[tuple[int, Any]] | None:
        """The (points, expiry) taken, or None (and no change) when short."""
        if sum(lot[2] for lot in self.lots if lot[0] > now) < points:
            return None
        self.expire(now)
        taken = []
        for lot in sorted(self.lots, key=lambda lot: (lot[0], lot[1])):
            take = min(points, lot[2])
            if take:
                lot[2] -= take
                taken.append((take, lot[0]))
                points -= take
        return taken

    def view(self) -> Counter[Any]:
        held: Counter[Any] = Counter()
        for expires_at, _, remaining in self.lots:
            if remaining:
                held[expires_at] += remaining
        return held


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=operations)
def test_random_sequences_keep_the_ledger_balanced(services: Services, clock: FixedClock,
                                                    steps: list[tuple[str, Any]]) -> None:
    customer = f"h{next(_serial)}"
    add_customers(services, customer)
    with transaction(services.sessions) as session:
        for code, cost in COSTS.items():
            put(session, services, code, "offline" if code == "offline" else "goods", cost)
    model = LotModel()
    done: list[tuple[Callable[[Session], Any], Any]] = []  # (repeat it, first answer)
    redeemed: dict[str, list[tuple[int, Any]]] = {}
    refunded: set[str] = set()
    for n, (op, value) in enumerate(steps):
        key, now = f"{customer}:{n}", clock.now()
        with transaction(services.sessions) as session:
            if op == "earn":
                def credit(s: Session, v: int = value, k: str = key) -> Any:
                    return service.adjust(s, clock, AdjustIn(
                        customer_external_id=customer, points=v, reason="e", idempotency_key=k))
                done.append((credit, credit(session)))
                model.credit(value, now + timedelta(days=service.POINTS_VALID_DAYS))
            elif op in ("debit", "redeem"):
                def spend(s: Session, op: str = op, v: Any = value, k: str = key) -> Any:
                    if op == "redeem":
                        return redeem(s, services, customer, v, k)
                    return service.adjust(s, clock, AdjustIn(
                        customer_external_id=customer, points=-v, reason="d",
                        idempotency_key=k))
                taken = model.debit(COSTS[value] if op == "redeem" else value, now)
                if taken is None:
                    with pytest.raises(Conflict, match="balance is"):
                        spend(session)
                else:
                    done.append((spend, spend(session)))
                    if op == "redeem":
                        redeemed[key] = taken
            elif op == "wait":
                clock.advance(timedelta(days=value))
            elif op == "expire":
                service.expire(session, clock)
                model.expire(now)
            elif op == "refund" and redeemed:
                target = sorted(redeemed)[value % len(redeemed)]
                back = service.refund(session, clock, RefundIn(
                    redemption_key=target, idempotency_key=f"{target}:refund"),
                    secret_key=SECRET)
                assert back.replayed == (target in refunded)
                if target not in refunded:
                    refunded.add(target)
                    for points, expires_at in redeemed[target]:
                        model.credit(points, expires_at)
            elif op == "replay" and done:
                repeat, first = done[value % len(done)]
                movements = session.scalar(select(func.count()).select_from(PointsMovement))
                answer = repeat(session)
                assert answer.replayed
                if hasattr(first, "movement"):
                    assert answer.movement == first.movement
                else:
                    assert answer == first.model_copy(update={"replayed": True})
                assert session.scalar(select(func.count())
                                      .select_from(PointsMovement)) == movements
        with transaction(services.sessions) as session:
            check_ledger(session)
            shown = service.balance(session, customer)
            held: Counter[Any] = Counter()
            for lot in shown.lots:
                held[lot.expires_at] += lot.remaining
            assert held == model.view()
            assert shown.balance == sum(held.values())
    with transaction(services.sessions) as session:
        statement = service.statement(session, customer, limit=500)
        assert sum(entry.points for entry in statement.entries) == statement.balance


# --- API -----------------------------------------------------------------------------------


def test_api_flow(client: TestClient, services: Services, clock: FixedClock) -> None:
    add_customers(services, "c1")
    staff = bearer(make_key(services, ["loyalty:read", "loyalty:write"]))
    reader = bearer(make_key(services, ["loyalty:read"]))
    base = "/api/v1/loyalty"
    reward = {"code": "cafe", "name": "到店咖啡", "kind": "offline", "cost_points": 15}
    assert client.post(f"{base}/rewards", json=reward, headers=staff).status_code == 201
    assert client.post(f"{base}/rewards", json=reward | {"stock": 3},
                       headers=staff).status_code == 200
    assert client.post(f"{base}/rewards", json=reward, headers=reader).status_code == 403
    bad = client.post(f"{base}/rewards", json=reward | {"cost_points": 0}, headers=staff)
    assert (bad.status_code, bad.json()["attr"]) == (422, "cost_points")
    assert [r["stock"] for r in client.get(f"{base}/rewards", headers=reader).json()] == [3]
    signed = client.post(f"{base}/sign-in", json={"customer_external_id": "c1"}, headers=staff)
    assert (signed.status_code, signed.json()["points"]) == (201, 5), signed.text
    assert client.post(f"{base}/sign-in", json={"customer_external_id": "c1"},
                       headers=staff).status_code == 200
    earned = client.post(f"{base}/earn", json={"rule": "review", "reference": "rv1",
                                               "customer_external_id": "c1"}, headers=staff)
    assert (earned.status_code, earned.json()["balance_after"]) == (201, 25)
    body = {"customer_external_id": "c1", "reward": "cafe", "idempotency_key": "buy-1"}
    bought = client.post(f"{base}/redeem", json=body, headers=staff)
    assert bought.status_code == 201, bought.text
    code = bought.json()["store_code"]["code"]
    assert client.post(f"{base}/redeem", json=body, headers=staff).json() == bought.json() | {
        "replayed": True}
    poor = client.post(f"{base}/redeem", json=body | {"idempotency_key": "buy-2"},
                       headers=staff)
    assert (poor.status_code, poor.json()["code"], poor.json()["attr"]) == (
        409, "insufficient_points", "reward")
    verified = client.post(f"{base}/codes/verify", json={"code": code, "store_id": "s1"},
                           headers=staff)
    assert (verified.status_code, verified.json()["reward_name"]) == (200, "到店咖啡")
    reused = client.post(f"{base}/codes/verify", json={"code": code, "store_id": "s2"},
                         headers=staff)
    assert reused.status_code == 409
    assert {k: reused.json()[k] for k in ("type", "code", "attr")} == {
        "type": "client_error", "code": "code_used", "attr": "code"}
    forged = client.post(f"{base}/codes/verify", json={"code": code[:-2] + "AA"
                                                      if not code.endswith("AA")
                                                      else code[:-2] + "BB",
                                                      "store_id": "s1"}, headers=staff)
    assert (forged.status_code, forged.json()["code"]) == (422, "code_forged")
    balance = client.get(f"{base}/customers/c1/balance", headers=reader).json()
    assert balance["balance"] == 10
    page = client.get(f"{base}/customers/c1/statement?limit=2", headers=reader).json()
    assert [e["kind"] for e in page["entries"]] == ["redeem", "earn"]
    assert page["next_before"] is not None
    missing = client.get(f"{base}/customers/ghost/balance", headers=reader)
    assert (missing.status_code, missing.json()["code"]) == (404, "customer_not_found")
    clock.advance(timedelta(days=366))
    swept = client.post(f"{base}/expire", headers=staff).json()
    assert (swept["lots"], swept["points"]) == (1, 10)  # the sign-in lot went first
    assert client.get(f"{base}/customers/c1/balance", headers=reader).json()["balance"] == 0


# --- PostgreSQL: real concurrent transactions ---------------------------------------------


def race(wired: Services, count: int, work: Callable[[Session, int], object]
         ) -> list[str]:
    """``work(session, n)`` in ``count`` threads at once, each in its own transaction:
    "ok" or the error code of each."""
    start = threading.Barrier(count)

    def one(n: int) -> str:
        start.wait()
        try:
            with transaction(wired.sessions) as session:
                work(session, n)
        except ShequError as exc:
            return exc.code
        return "ok"

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


@pytest.mark.postgres
def test_parallel_redemptions_never_overspend(pg_services: Services) -> None:
    pg = pg_services
    add_customers(pg, "c1")
    with transaction(pg.sessions) as session:
        put(session, pg, "gift", "offline", 70)
        give(session, pg, "c1", 300, "g1")   # two lots: 300 + 60 = 360 → five gifts of 70
        give(session, pg, "c1", 60, "g2")
    outcomes = race(pg, 16, lambda s, n: redeem(s, pg, "c1", "gift", f"buy-{n}"))
    assert Counter(outcomes) == {"ok": 5, "insufficient_points": 11}
    with transaction(pg.sessions) as session:
        shown = service.balance(session, "c1")
        assert shown.balance == 360 - 5 * 70
        # Both lots expire the same day: the older (300) went first, 10 of the 60 are left.
        assert [(lot.points, lot.remaining) for lot in shown.lots] == [(60, 10)]
        assert session.scalar(select(func.count()).select_from(PointsMovement)
                              .where(PointsMovement.kind == "redeem")) == 5
        check_ledger(session)
    # The same idempotency key from 8 threads: one debit, every answer the same.
    with transaction(pg.sessions) as session:
        give(session, pg, "c1", 100, "g3")
    answers: list[Any] = []
    outcomes = race(pg, 8, lambda s, n: answers.append(redeem(s, pg, "c1", "gift", "same")))
    assert outcomes == ["ok"] * 8
    assert sorted(a.replayed for a in answers) == [False] + [True] * 7
    assert len({a.store_code.code for a in answers}) == 1
    with transaction(pg.sessions) as session:
        assert service.balance(session, "c1").balance == 10 + 100 - 70
        check_ledger(session)


@pytest.mark.postgres
def test_parallel_verifications_accept_a_code_once(pg_services: Services) -> None:
    pg = pg_services
    add_customers(pg, "c1")
    with transaction(pg.sessions) as session:
        put(session, pg, "gift", "offline", 10)
        give(session, pg, "c1", 10, "g1")
        done = redeem(session, pg, "c1", "gift", "buy")
    assert done.store_code is not None
    code = done.store_code.code
    outcomes = race(pg, 8, lambda s, n: service.verify_code(
        s, pg.clock, VerifyIn(code=code, store_id=f"store-{n}"), secret_key=SECRET))
    assert Counter(outcomes) == {"ok": 1, "code_used": 7}
    with transaction(pg.sessions) as session:
        shown = service.show_redemption(session, "buy", secret_key=SECRET).store_code
        assert shown is not None
        assert shown.used_at is not None
        assert shown.store_id == f"store-{outcomes.index('ok')}"


@pytest.mark.postgres
def test_parallel_expiry_and_redemptions_stay_consistent(pg_services: Services) -> None:
    pg = pg_services
    add_customers(pg, *(f"c{n}" for n in range(6)))
    with transaction(pg.sessions) as session:
        put(session, pg, "gift", "goods", 30)
        for n in range(6):
            give(session, pg, f"c{n}", 50, f"old{n}")
    assert isinstance(pg.clock, FixedClock)
    pg.clock.advance(timedelta(days=200))
    with transaction(pg.sessions) as session:
        for n in range(6):
            give(session, pg, f"c{n}", 40, f"new{n}")
    pg.clock.advance(timedelta(days=170))  # the first lots (50) are due, the second not
    outcomes = race(pg, 12, lambda s, n: (service.expire(s, pg.clock) if n >= 6 else
                                          redeem(s, pg, f"c{n}", "gift", f"r{n}")))
    assert outcomes == ["ok"] * 12
    with transaction(pg.sessions) as session:
        # Every customer: 50 expired, 30 of the 40 spent → 10 left.
        assert [service.balance(session, f"c{n}").balance for n in range(6)] == [10] * 6
        assert session.scalar(select(func.count()).select_from(PointsMovement)
                              .where(PointsMovement.kind == "expire")) == 6
        check_ledger(session)


@pytest.mark.postgres
def test_parallel_first_earnings_create_one_account(pg_services: Services) -> None:
    pg = pg_services
    add_customers(pg, "new", "other")
    # No account exists yet, not even the system accounts: 8 threads create them at once.
    outcomes = race(pg, 8, lambda s, n: service.earn(s, pg.clock, EarnIn(
        rule="review", reference=f"r{n}", customer_external_id="new" if n % 2 else "other")))
    assert outcomes == ["ok"] * 8
    with transaction(pg.sessions) as session:
        assert service.balance(session, "new").balance == 4 * 20
        assert service.balance(session, "other").balance == 4 * 20
        assert session.scalar(select(func.count()).select_from(PointsAccount)) == 2 + 3
        check_ledger(session)
