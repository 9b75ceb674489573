"""The demo's points: rewards, points earned by the last weeks' orders, reviews and daily
sign-ins, redemptions, and store codes checked at the shop's stores (docs/points.md).

Every movement goes through the loyalty service with the clock set to the moment it
happened, so the ledger, the lots and the store codes are the ones a live shop would hold.
Only the last ``EARN_DAYS`` days earn points: that keeps the default demo's build short
(a few thousand movements rather than one per order of the window).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy.orm import Session

from shequ.core.clock import FixedClock
from shequ.core.db import transaction
from shequ.core.errors import NotFound, ShequError
from shequ.core.web import Services
from shequ.demo.generator import Community
from shequ.domains.loyalty import service as loyalty
from shequ.domains.loyalty.schemas import EarnIn, RedeemIn, RewardIn, SignInIn, VerifyIn

EARN_DAYS = 30
SIGN_IN_SHARE = 0.08  # customers who use the daily sign-in
SIGN_IN_DAYS = 14
REDEEM_SHARE = 0.35  # of customers who can afford a reward, those who take one
VERIFIED_SHARE = 0.6  # of offline codes, those used at a store before the demo ends
CHUNK = 400  # movements per transaction
STORES = ("store-sh-jingan", "store-bj-sanlitun", "store-gz-tianhe")

REWARDS = (  # code, name, kind, cost in points, stock
    RewardIn(code="cup", name="品牌保温杯", kind="goods", cost_points=800, stock=120),
    RewardIn(code="sample", name="新品小样礼盒", kind="goods", cost_points=300, stock=400),
    RewardIn(code="care", name="免费皮肤检测", kind="service", cost_points=500),
    RewardIn(code="coffee", name="门店咖啡兑换券", kind="offline", cost_points=200, stock=600,
             code_valid_days=30),
    RewardIn(code="salon", name="门店美妆沙龙名额", kind="offline", cost_points=1_000, stock=40,
             code_valid_days=14),
)


@dataclass(frozen=True)
class _Step:
    at: datetime
    order: int  # ties at the same moment keep a stable order
    run: Callable[[Session, FixedClock], None]


def _earning_steps(community: Community, since: datetime, rng: random.Random) -> list[_Step]:
    steps: list[_Step] = []
    for order in community.orders:
        paid = order["paid_at"]
        if order["status"] in {"paid", "shipped", "completed"} and paid and paid >= since:
            steps.append(_Step(paid, len(steps), partial(_earn, data=EarnIn(
                rule="order", reference=order["external_id"]))))
    for review in community.reviews:
        if review["created_at"] >= since:
            steps.append(_Step(review["created_at"], len(steps), partial(_earn, data=EarnIn(
                rule="review", reference=review["external_id"],
                customer_external_id=review["customer_external_id"]))))
    keys = [row["external_id"] for row in community.customers]
    signers = rng.sample(keys, int(len(keys) * SIGN_IN_SHARE))
    first_day = community.end - timedelta(days=SIGN_IN_DAYS)
    for key in signers:
        for day in range(SIGN_IN_DAYS):
            if rng.random() < 0.6:
                at = first_day + timedelta(days=day, hours=rng.uniform(0, 14))
                steps.append(_Step(at, len(steps), partial(_sign_in, key=key)))
    return steps


def _earn(session: Session, clock: FixedClock, data: EarnIn) -> None:
    loyalty.earn(session, clock, data)


def _sign_in(session: Session, clock: FixedClock, key: str) -> None:
    loyalty.sign_in(session, clock, SignInIn(customer_external_id=key))


def _run(services: Services, steps: list[_Step]) -> int:
    """Run ``steps`` in time order, ``CHUNK`` to a transaction; the count that moved."""
    steps.sort(key=lambda step: (step.at, step.order))
    done = 0
    for first in range(0, len(steps), CHUNK):
        with transaction(services.sessions) as session:
            for step in steps[first:first + CHUNK]:
                step.run(session, FixedClock(step.at))
                done += 1
    return done


def _redeem(services: Services, community: Community, rng: random.Random) -> dict[str, int]:
    """Customers who can afford a reward take one near the end; some codes are used.

    Every customer draws the same numbers whatever happens, and a customer whose demo
    redemption exists already is counted, not asked again: running it twice changes
    nothing."""
    secret = services.settings.secret_key
    counts = {"redemptions": 0, "codes_verified": 0, "refused": 0}
    end = community.end
    for row in community.customers:
        key = row["external_id"]
        roll, choice, days, visit, hours = (rng.random(), rng.random(), rng.uniform(1, 10),
                                            rng.random(), rng.uniform(2, 20))
        store = STORES[int(choice * 1_000) % len(STORES)]
        with transaction(services.sessions) as session:
            try:
                done = loyalty.show_redemption(session, f"demo-redeem:{key}", secret_key=secret)
            except NotFound:
                points = loyalty.balance(session, key).balance
                affordable = [r for r in REWARDS if r.cost_points <= points]
                if not affordable or roll >= REDEEM_SHARE:
                    continue
                reward = affordable[int(choice * len(affordable))]
                at = end - timedelta(days=days)
                try:
                    done = loyalty.redeem(session, FixedClock(at), RedeemIn(
                        customer_external_id=key, reward=reward.code,
                        idempotency_key=f"demo-redeem:{key}"), secret_key=secret)
                except ShequError:  # a reward that ran out of stock meanwhile
                    counts["refused"] += 1
                    continue
                if done.store_code is not None and visit < VERIFIED_SHARE:
                    used = done.movement.created_at + timedelta(hours=hours)
                    loyalty.verify_code(session, FixedClock(min(used, end)), VerifyIn(
                        code=done.store_code.code, store_id=store), secret_key=secret)
                    done = loyalty.show_redemption(session, f"demo-redeem:{key}",
                                                   secret_key=secret)
            counts["redemptions"] += 1
            counts["codes_verified"] += bool(done.store_code and done.store_code.used_at)
    return counts


def run(services: Services, community: Community) -> dict[str, Any]:
    """Rewards, the last ``EARN_DAYS`` days' earnings, redemptions and store visits."""
    rng = random.Random(community.seed * 7919 + 7)
    with transaction(services.sessions) as session:
        for reward in REWARDS:
            loyalty.put_reward(session, FixedClock(community.start), reward)
    since = community.end - timedelta(days=EARN_DAYS)
    movements = _run(services, _earning_steps(community, since, rng))
    counts = _redeem(services, community, rng)
    with transaction(services.sessions) as session:
        outstanding = loyalty.ledger_total(session)
    return {"rewards": len(REWARDS), "earn_movements": movements, **counts,
            "ledger_total": outstanding}
