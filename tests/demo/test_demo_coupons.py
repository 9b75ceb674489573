"""The demo's coupons on the small demo: one template of each kind, the push to the
"browsed but not bought" segment, checkouts through the coupon service with consistent
figures and no invariant broken, and a second run that changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from conftest import T0
from shequ.core.clock import FixedClock
from shequ.core.db import Base, transaction
from shequ.core.settings import Settings
from shequ.core.web import Services
from shequ.demo import coupons as demo_coupons
from shequ.demo.generator import generate
from shequ.demo.loader import commerce_community, load_demo
from shequ.domains.campaigns import coupons
from shequ.domains.campaigns.coupon_models import Coupon, CouponRedemption
from shequ.entrypoints.bootstrap import bootstrap, close

END = date(2026, 11, 20)
SEED = 7


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Services, dict[str, Any]]]:
    """The small demo, with the coupons built once (by the loader when it already runs
    them, else here)."""
    home = Path(tmp_path_factory.mktemp("demo-coupons"))
    wired = bootstrap(Settings(home=home / "home", environment="development"),
                      clock=FixedClock(T0))
    Base.metadata.create_all(wired.extras["engine"])
    try:
        summary = load_demo(wired, size="small", seed=SEED, end=END)
        found = summary["commerce"].get("coupons")
        if found is None:
            found = demo_coupons.run(wired, commerce_community(
                generate(size="small", seed=SEED, end=END)))
        yield wired, found
    finally:
        close(wired)


def test_one_of_each_kind_issued_and_redeemed(built: tuple[Services, dict[str, Any]]) -> None:
    wired, found = built
    assert found["templates"] == 3
    assert found["violations"] == 0
    assert found["pushed_to_segment"] is True
    figures = found["figures"]
    assert set(figures) == {"NEWBIE20", "BRAND15", "MJ300-40"}
    assert all(f["issued"] > 0 and f["redeemed"] > 0 for f in figures.values())
    assert found["checkouts"] >= found["redeemed"] > 0
    with transaction(wired.sessions) as session:
        kinds = {t.code: t.kind for t in coupons.list_templates(session)}
        redemptions = session.scalar(select(func.count()).select_from(CouponRedemption))
        issued = session.scalar(select(func.count()).select_from(Coupon))
        for code, fig in figures.items():
            shown = coupons.redemptions(session, code, limit=1_000)
            active = [r for r in shown if r.state == "active"]
            assert fig["redeemed"] == len(active)
            assert fig["granted_fen"] == sum(r.discount_fen for r in active) <= fig["budget_fen"]
            paid = [r for r in active if r.order_status == "paid"]
            assert fig["gmv_fen"] == sum(r.order_total_fen for r in paid)
            if code == "MJ300-40":
                assert all(r.eligible_fen >= 30_000 and r.discount_fen == 4_000 for r in shown)
            if code == "BRAND15":
                assert all(0 < r.discount_fen <= 5_000 for r in shown)
    assert kinds == {"NEWBIE20": "fixed", "BRAND15": "percent", "MJ300-40": "threshold"}
    assert redemptions == found["checkouts"]
    assert issued == found["issued"]
    # some checkouts were cancelled and gave their coupon back
    assert found["checkouts"] > found["redeemed"]


def test_running_again_changes_nothing(built: tuple[Services, dict[str, Any]]) -> None:
    wired, found = built
    again = demo_coupons.run(wired, commerce_community(
        generate(size="small", seed=SEED, end=END)))
    assert again["figures"] == found["figures"]
    assert (again["issued"], again["redeemed"], again["violations"]) == (
        found["issued"], found["redeemed"], 0)
