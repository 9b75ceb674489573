"""Invite rewards and commissions under real concurrent transactions on PostgreSQL: many
invitees of one inviter counted at once issue one reward; racing reports of one invitee
file one row; settlement racing refunds moves each balance exactly once."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from test_invite_tasks import REWARD, task
from test_referrals import add_people, advance, arrive, buy, move, promote, shop

from shequ.core.db import transaction
from shequ.core.errors import ShequError
from shequ.core.permissions import CLI_PRINCIPAL
from shequ.core.web import Services
from shequ.domains.campaigns import invites, referrals
from shequ.domains.campaigns.referral_models import (
    Invitee,
    ReferralCommission,
    ReferralEntry,
    ReferralPromoter,
)
from shequ.domains.campaigns.referral_schemas import InviteIn
from shequ.domains.loyalty import service as loyalty
from shequ.domains.loyalty.models import PointsMovement
from shequ.domains.orders import service as orders

pytestmark = pytest.mark.postgres


def race(wired: Services, count: int, work: Callable[[Any, int], object]) -> list[str]:
    """``work(session, n)`` in ``count`` threads at once, each in its own transaction."""
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


def rewards(wired: Services) -> int:
    with transaction(wired.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(PointsMovement).where(
            PointsMovement.idempotency_key.like("invite:%"))) or 0)


def test_parallel_payments_reward_the_inviter_once(pg_services: Services) -> None:
    pg = pg_services
    friends = [f"f{n}" for n in range(12)]
    shop(pg, "boss", *friends)
    task(pg, counts="first_paid_order", goal=3)
    with transaction(pg.sessions) as session:
        for friend in friends:
            invites.record_invite(session, pg.clock, "t1", InviteIn(inviter="boss",
                                                                     invitee=friend))
            orders.create_order(session, pg.clock, orders_in(friend))
    advance(pg, timedelta(minutes=1))
    outcomes = race(pg, 12, lambda s, n: orders.transition_order(
        s, pg.clock, CLI_PRINCIPAL, f"o-{friends[n]}", "paid"))
    assert outcomes == ["ok"] * 12
    with transaction(pg.sessions) as session:
        shown = invites.progress(session, "t1", "boss")
        assert (shown.counted, shown.rewarded) == (12, True)
        assert loyalty.balance(session, "boss").balance == REWARD
    assert rewards(pg) == 1


def orders_in(customer: str) -> Any:
    from shequ.domains.orders.schemas import LineIn, OrderIn

    return OrderIn(external_id=f"o-{customer}", customer_external_id=customer,
                   lines=[LineIn(sku="SKU1", quantity=1)])


def test_parallel_sign_ups_reward_once_and_file_one_row(pg_services: Services) -> None:
    pg = pg_services
    friends = [f"f{n}" for n in range(10)]
    shop(pg, "boss", "rival", *friends)
    task(pg, goal=5)
    outcomes = race(pg, 10, lambda s, n: invites.record_invite(
        s, pg.clock, "t1", InviteIn(inviter="boss", invitee=friends[n])))
    assert outcomes == ["ok"] * 10
    assert rewards(pg) == 1
    # One invitee reported by 8 threads at once, half of them naming another inviter.
    add_people(pg, "late")
    outcomes = race(pg, 8, lambda s, n: invites.record_invite(
        s, pg.clock, "t1", InviteIn(inviter="boss" if n % 2 else "rival", invitee="late")))
    assert Counter(outcomes)["ok"] >= 1
    assert set(outcomes) <= {"ok", "already_invited"}
    with transaction(pg.sessions) as session:
        assert session.scalar(select(func.count()).select_from(Invitee)) == 11
        boss = invites.progress(session, "t1", "boss")
        rival = invites.progress(session, "t1", "rival")
        assert boss.counted + rival.counted == 11
        assert loyalty.balance(session, "boss").balance == REWARD
    assert rewards(pg) == 1 + (int(rival.counted) >= 5)


def test_settlement_racing_refunds_moves_each_balance_once(pg_services: Services) -> None:
    pg = pg_services
    buyers = [f"c{n}" for n in range(16)]
    shop(pg, "p1", "p2", *buyers)
    promote(pg, "p2", "CODEP2")
    promote(pg, "p1", "CODEP1")
    arrive(pg, "CODEP2", "p1")
    for buyer in buyers:
        arrive(pg, "CODEP1", buyer)
        buy(pg, f"o-{buyer}", buyer, to="completed")
    advance(pg, timedelta(days=8))
    # 8 settlement runs and 16 refunds (every other order) race.
    outcomes = race(pg, 24, lambda s, n: referrals.settle_commissions(pg) if n < 8 else
                    (move(pg, f"o-{buyers[n - 8]}", "refunded") if n % 2 else None))
    assert outcomes == ["ok"] * 24
    referrals.settle_commissions(pg)
    with transaction(pg.sessions) as session:
        for promoter in session.scalars(select(ReferralPromoter)):
            entries = session.scalar(select(func.coalesce(func.sum(ReferralEntry.amount_fen), 0))
                                     .where(ReferralEntry.promoter_id == promoter.id))
            settled = session.scalar(select(func.coalesce(func.sum(
                ReferralCommission.amount_fen), 0)).where(
                ReferralCommission.promoter_id == promoter.id,
                ReferralCommission.state == "settled"))
            assert promoter.balance_fen == entries == settled
        assert session.scalar(select(func.count()).select_from(ReferralCommission).where(
            ReferralCommission.state == "settled")) == 16
        assert session.scalar(select(func.count()).select_from(ReferralCommission).where(
            ReferralCommission.state == "clawed_back")) == 16
        # One settle entry per commission ever settled, one clawback entry per settled
        # commission refunded afterwards.
        ever_settled = session.scalar(select(func.count()).select_from(ReferralCommission)
                                      .where(ReferralCommission.settled_at.is_not(None)))
        assert session.scalar(select(func.count()).select_from(ReferralEntry).where(
            ReferralEntry.kind == "settle")) == ever_settled
        assert session.scalar(select(func.count()).select_from(ReferralEntry).where(
            ReferralEntry.kind == "clawback")) == (ever_settled or 0) - 16
        assert referrals.statement(session, "p1").balance_fen == 8 * 1000
        assert referrals.statement(session, "p2").balance_fen == 8 * 300
