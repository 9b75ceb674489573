"""The demo's points on the small community: the last weeks' orders, reviews and sign-ins
earn through the ledger, customers redeem rewards, stores accept some codes once, and the
books balance."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from conftest import T0, _wire
from shequ.core.clock import FixedClock
from shequ.core.db import transaction
from shequ.core.web import Services
from shequ.demo import points as demo_points
from shequ.demo.generator import Community, generate
from shequ.domains.catalog import service as catalog
from shequ.domains.content import service as content
from shequ.domains.customers import service as customers
from shequ.domains.loyalty import service as loyalty
from shequ.domains.loyalty.models import PointsAccount, PointsEntry, PointsMovement, StoreCode
from shequ.domains.orders import service as orders
from shequ.entrypoints.bootstrap import close

END = date(2026, 11, 20)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[Services, Community, dict[str, Any]]]:
    wired = _wire(Path(tmp_path_factory.mktemp("demo-points")), FixedClock(T0), None)
    community = generate(size="small", seed=7, end=END)
    with transaction(wired.sessions) as session:
        catalog.bulk_load(session, community.brands, community.categories, community.products)
        customers.bulk_load(session, community.customers, community.devices)
        orders.bulk_load_orders(session, community.orders, community.order_lines)
        content.bulk_load(session, community.hubs, community.creators, community.posts,
                          community.comments, community.reviews)
    summary = demo_points.run(wired, community)
    yield wired, community, summary
    close(wired)


def test_recent_orders_and_reviews_earn_and_rewards_are_taken(
        built: tuple[Services, Community, dict[str, Any]]) -> None:
    wired, community, summary = built
    since = community.end - timedelta(days=demo_points.EARN_DAYS)
    paid = [o for o in community.orders if o["status"] in {"paid", "shipped", "completed"}
            and o["paid_at"] >= since]
    reviews = [r for r in community.reviews if r["created_at"] >= since]
    assert summary["earn_movements"] > len(paid) + len(reviews)  # plus sign-ins
    assert summary["redemptions"] > 0
    assert 0 < summary["codes_verified"] <= summary["redemptions"]
    assert summary["ledger_total"] == 0
    with transaction(wired.sessions) as session:
        earned = session.scalar(select(func.count()).select_from(PointsMovement).where(
            PointsMovement.idempotency_key.like("order:%")))
        assert earned == len(paid)
        # every order earned one point a whole yuan
        order = paid[0]
        movement = session.scalar(select(PointsMovement).where(
            PointsMovement.idempotency_key == f"order:{order['external_id']}"))
        assert movement is not None
        assert movement.points == order["total_fen"] // 100
        assert movement.created_at == order["paid_at"]
        # used codes were used once, at a store, after they were issued
        used = session.scalars(select(StoreCode).where(StoreCode.used_at.is_not(None))).all()
        assert len(used) == summary["codes_verified"]
        assert all(code.store_id in demo_points.STORES for code in used)
        # each balance is the sum of its entries and never negative
        for account in session.scalars(select(PointsAccount).where(
                PointsAccount.kind == "customer")):
            total = session.scalar(select(func.coalesce(func.sum(PointsEntry.points), 0))
                                   .where(PointsEntry.account_id == account.id))
            assert account.balance == total
            assert account.balance is not None
            assert account.balance >= 0
        assert loyalty.ledger_total(session) == 0


def test_running_again_changes_nothing(
        built: tuple[Services, Community, dict[str, Any]]) -> None:
    wired, community, summary = built
    with transaction(wired.sessions) as session:
        before = session.scalar(select(func.count()).select_from(PointsMovement))
    again = demo_points.run(wired, community)
    with transaction(wired.sessions) as session:
        after = session.scalar(select(func.count()).select_from(PointsMovement))
    assert after == before
    assert again["redemptions"] == summary["redemptions"]
