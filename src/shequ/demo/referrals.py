"""The demo's social fission (docs/referrals.md), built through the invite and referral
services at simulated moments in the demo's last five weeks:

* one invite task, "invite 3 friends who pay a first order, earn 500 points", with six
  inviters from the community and their new friends; some invites are abusive the way
  real ones are (the inviter's own phone, the inviter's shipping address or payment
  account, a self-invite, a friend who was a customer already) and are refused with
  their reason;
* four promoters in a chain (A brought B and C, B brought D) and new customers arriving
  by their links and ordering, so commission accrues on two levels: a sale through D's
  link pays D and B, never A;
* orders shipped and completed, some refunded before settlement (the commission is
  cancelled) and one after (a negative entry on the balance), the settlement job run
  after the return window, and one order paid after its attribution window (no
  commission).

Deterministic in ``community.seed``; every call goes through the services, so the
order hooks (points, commission, invite counting) run as in production.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from shequ.core.clock import FixedClock
from shequ.core.db import transaction
from shequ.core.permissions import CLI_PRINCIPAL
from shequ.core.web import Services
from shequ.demo.generator import Community
from shequ.domains.campaigns import invites, referrals
from shequ.domains.campaigns.referral_schemas import (
    ClickIn,
    InviteIn,
    InviteTaskIn,
    PromoterIn,
    RuleIn,
)
from shequ.domains.customers import service as customers
from shequ.domains.customers.schemas import CustomerIn
from shequ.domains.orders import service as orders
from shequ.domains.orders.schemas import LineIn, OrderIn

TASK_CODE = "demo-invite-3"
INVITERS = 6
PROMOTER_CODES = ("DEMOA888", "DEMOB888", "DEMOC888", "DEMOD888")
REFERRED_PER_PROMOTER = (5, 4, 3, 3)
START_DAYS_BEFORE_END = 80  # everything happens inside the demo window
SURNAMES = "王李张刘陈杨赵黄周吴"
GIVEN = ("小雨", "晓晨", "子涵", "一诺", "思远", "欣怡", "浩然", "雨桐", "梓萱", "俊杰")


class _Run:
    """The demo's clock and counters while it builds the objects."""

    def __init__(self, services: Services, community: Community) -> None:
        self.services = services
        self.rng = np.random.default_rng(community.seed + 4242)
        self.clock = FixedClock(community.end - timedelta(days=START_DAYS_BEFORE_END))
        self.skus = [p["sku"] for p in community.products
                     if p.get("is_active", True) and p["stock"] >= 200][:20]
        self.numbers = 0
        self.new_people = 0

    def at(self, moment: datetime) -> None:
        if moment > self.clock.now():
            self.clock.advance(moment - self.clock.now())

    def later(self, minutes: float) -> None:
        self.clock.advance(timedelta(minutes=minutes))

    def person(self, session: Session, prefix: str) -> str:
        self.new_people += 1
        key = f"{prefix}{self.new_people:04d}"
        name = SURNAMES[int(self.rng.integers(len(SURNAMES)))] + GIVEN[
            int(self.rng.integers(len(GIVEN)))]
        customers.create_customer(session, self.clock, CustomerIn(
            external_id=key, nickname=name, acquisition_channel="referral"))
        return key

    def order(self, session: Session, customer: str, *, device: str | None = None,
              address: str | None = None, payment: str | None = None) -> str:
        self.numbers += 1
        number = f"demo-fission-{self.numbers:05d}"
        sku = self.skus[int(self.rng.integers(len(self.skus)))]
        orders.create_order(session, self.clock, OrderIn(
            external_id=number, customer_external_id=customer,
            lines=[LineIn(sku=sku, quantity=int(self.rng.integers(1, 3)))],
            channel="app", device_external_id=device, shipping_address=address,
            payment_account=payment))
        orders.transition_order(session, self.clock, CLI_PRINCIPAL, number, "paid")
        return number


def _traces(community: Community, key: str) -> tuple[str | None, str | None, str | None]:
    """A customer's first device, last shipping address and payment account."""
    device = next((d["external_id"] for d in community.devices
                   if d.get("customer_external_id") == key), None)
    address = payment = None
    for row in community.orders:
        if row["customer_external_id"] == key:
            address = row.get("shipping_address") or address
            payment = row.get("payment_account") or payment
    return device, address, payment


def _inviters(community: Community, run: _Run) -> list[str]:
    """Customers with a device, an address and a payment account on file."""
    keys = sorted({row["customer_external_id"] for row in community.orders
                   if row.get("shipping_address") and row.get("payment_account")})
    keys = [k for k in keys if _traces(community, k)[0] is not None]
    chosen = run.rng.choice(len(keys), size=min(INVITERS, len(keys)), replace=False)
    return [keys[int(i)] for i in sorted(chosen)]


def _invite_task(run: _Run, community: Community) -> list[str]:
    """The invite task with its inviters and friends; the friends' first orders."""
    start = run.clock.now()
    inviters = _inviters(community, run)
    veterans = sorted({row["customer_external_id"] for row in community.orders
                       if row["created_at"] < start} - set(inviters))
    with transaction(run.services.sessions, actor="cli", clock=run.clock) as session:
        invites.create_task(session, run.clock, InviteTaskIn(
            code=TASK_CODE, name="邀请3位好友首单 得500积分", goal=3, counts="first_paid_order",
            starts_at=start, ends_at=start + timedelta(days=21), reward_points=500))
    buyers: list[tuple[str, bool, dict[str, str | None]]] = []
    for n, inviter in enumerate(inviters):
        device, address, payment = _traces(community, inviter)
        friends = int(run.rng.integers(3, 6))
        with transaction(run.services.sessions, actor="cli", clock=run.clock) as session:
            for f in range(friends):
                run.later(float(run.rng.integers(20, 600)))
                friend = run.person(session, "fr")
                # The first inviter's second and third friends are their own phone and
                # address; the second inviter's third friend pays from their account.
                abuse = {(0, 1): "device", (0, 2): "address", (1, 2): "payment"}.get((n, f))
                shown_device = device if abuse == "device" else f"dv-{friend}"
                invites.record_invite(session, run.clock, TASK_CODE, InviteIn(
                    inviter=inviter, invitee=friend, device_external_id=shown_device))
                buyers.append((friend, abuse is not None, {
                    "device": shown_device,
                    "address": address if abuse == "address" else f"杭州市西湖区文三路{n}{f}号",
                    "payment": payment if abuse == "payment" else f"alipay:{friend}"}))
            if n == 0:
                invites.record_invite(session, run.clock, TASK_CODE,
                                      InviteIn(inviter=inviter, invitee=inviter))
            if n == 1:
                invites.record_invite(session, run.clock, TASK_CODE,
                                      InviteIn(inviter=inviter, invitee=veterans[0]))
    # Most friends pay a first order within a few days; the rest never do.
    for friend, abusive, traces in buyers:
        if abusive or run.rng.random() < 0.85:
            run.later(float(run.rng.integers(60, 2 * 24 * 60)))
            with transaction(run.services.sessions, actor="cli", clock=run.clock) as session:
                run.order(session, friend, device=traces["device"], address=traces["address"],
                          payment=traces["payment"])
    return inviters


def _referrals(run: _Run, community: Community, inviters: list[str]) -> dict[str, list[str]]:
    """Promoters A–D (A brought B and C, B brought D), their referred customers and
    orders; answers ``{"paid": [...], "late": [...]}`` order numbers."""
    taken = set(inviters)
    pool = [c["external_id"] for c in community.customers if c["external_id"] not in taken]
    chosen = run.rng.choice(len(pool), size=len(PROMOTER_CODES), replace=False)
    a, b, c, d = (pool[int(i)] for i in chosen)
    paid: list[str] = []
    late: list[str] = []
    with transaction(run.services.sessions, actor="cli", clock=run.clock) as session:
        referrals.put_rule(session, run.clock, RuleIn(level1_bp=1000, level2_bp=300,
                                                      attribution_days=7, return_days=7))
        referrals.make_promoter(session, run.clock, PromoterIn(customer=a,
                                                               code=PROMOTER_CODES[0]))
        for who, code, brought_by in ((b, PROMOTER_CODES[1], PROMOTER_CODES[0]),
                                      (c, PROMOTER_CODES[2], PROMOTER_CODES[0]),
                                      (d, PROMOTER_CODES[3], PROMOTER_CODES[1])):
            run.later(30)
            referrals.click(session, run.clock, ClickIn(code=brought_by, customer=who))
            referrals.make_promoter(session, run.clock, PromoterIn(customer=who, code=code))
    comebacks: list[tuple[str, datetime]] = []  # (buyer, when they clicked)
    for code, count in zip(PROMOTER_CODES, REFERRED_PER_PROMOTER, strict=True):
        for n in range(count):
            run.later(float(run.rng.integers(30, 6 * 60)))
            with transaction(run.services.sessions, actor="cli", clock=run.clock) as session:
                buyer = run.person(session, "rf")
                referrals.click(session, run.clock, ClickIn(code=code, customer=buyer))
                for _ in range(int(run.rng.integers(1, 3))):
                    run.later(float(run.rng.integers(10, 24 * 60)))
                    paid.append(run.order(session, buyer, device=f"dv-{buyer}",
                                          payment=f"wxpay:{buyer}"))
                if n == 0:
                    comebacks.append((buyer, run.clock.now()))
    # Each promoter's first customer comes back after the attribution window (7 days):
    # no commission for that order.
    for buyer, clicked in comebacks:
        run.at(clicked + timedelta(days=8))
        with transaction(run.services.sessions, actor="cli", clock=run.clock) as session:
            late.append(run.order(session, buyer))
    return {"paid": paid, "late": late}


def run(services: Services, community: Community) -> dict[str, Any]:
    """Build the demo's invite task and referral network; the counts it produced."""
    state = _Run(services, community)
    inviters = _invite_task(state, community)
    made = _referrals(state, community, inviters)
    numbers = made["paid"]
    # Ship and complete everything a week on, except a few refunded before completion.
    state.later(7 * 24 * 60)
    refunded_early = numbers[1::9]
    with transaction(services.sessions, actor="cli", clock=state.clock) as session:
        for number in numbers:
            if number in refunded_early:
                orders.transition_order(session, state.clock, CLI_PRINCIPAL, number,
                                        "refunded")
                continue
            for to in ("shipped", "completed"):
                orders.transition_order(session, state.clock, CLI_PRINCIPAL, number,
                                        to)
    state.later(8 * 24 * 60)
    settled = referrals.settle_commissions(dataclasses.replace(services, clock=state.clock))
    state.later(24 * 60)
    refunded_late = [n for n in numbers if n not in refunded_early][2::11]
    with transaction(services.sessions, actor="cli", clock=state.clock) as session:
        for number in refunded_late:
            orders.transition_order(session, state.clock, CLI_PRINCIPAL, number, "refunded")
    if state.clock.now() > community.end:  # the demo's data never runs past its window
        raise RuntimeError(f"the referral demo ran to {state.clock.now():%Y-%m-%d %H:%M}, "
                           f"past the window's end {community.end:%Y-%m-%d %H:%M}")
    with transaction(services.sessions) as session:
        board = invites.board(session, TASK_CODE)
        outcomes = Counter(i.reason or i.state for p in board.inviters for i in p.invitees)
        commissions = [c for n in numbers + made["late"]
                       for c in referrals.commissions_of_order(session, n)]
        promoters = referrals.list_promoters(session)
    return {
        "signed_up": state.new_people,
        "invite_task": TASK_CODE,
        "inviters": len(board.inviters),
        "invitees": sum(outcomes.values()),
        "invitee_outcomes": dict(sorted(outcomes.items())),
        "rewarded": board.task.rewarded,
        "promoters": len(promoters),
        "referral_orders": len(numbers) + len(made["late"]),
        "orders_outside_window": len(made["late"]),
        "commissions": len(commissions),
        "commissions_by_level": dict(sorted(Counter(c.level for c in commissions).items())),
        "settled": settled["settled"],
        "settled_fen": settled["settled_fen"],
        "clawed_back_before_settlement": len(refunded_early),
        "clawed_back_after_settlement": len(refunded_late),
        "balances_fen": {p.customer: p.balance_fen for p in promoters},
    }
