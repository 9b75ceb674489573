"""The demo's campaigns on the small community: six campaigns across the tiers with one
ESG help-farmers campaign, results from the generated orders, and exactly one planted
conflict of each kind on the calendar."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from conftest import T0, _wire
from shequ.core.clock import FixedClock
from shequ.core.db import transaction
from shequ.core.permissions import CLI_PRINCIPAL
from shequ.core.web import Services
from shequ.demo import campaigns as demo_campaigns
from shequ.demo.generator import Community, generate
from shequ.domains.campaigns import calendar
from shequ.domains.campaigns import campaign_service as service
from shequ.domains.catalog import service as catalog
from shequ.domains.content import service as content
from shequ.domains.customers import service as customers
from shequ.domains.orders import service as orders
from shequ.entrypoints.bootstrap import close

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[Services, Community, dict[str, Any]]]:
    """The small community (window ending 2026-11-20, the clock on that day) loaded, then
    the demo's campaigns planned once."""
    community = generate(size="small", seed=7, end=date(2026, 11, 20))
    wired = _wire(Path(tmp_path_factory.mktemp("demo-campaigns")), FixedClock(T0), None)
    with transaction(wired.sessions) as session:
        catalog.bulk_load(session, community.brands, community.categories, community.products)
        customers.bulk_load(session, community.customers, community.devices)
        orders.bulk_load_orders(session, community.orders, community.order_lines)
        content.bulk_load(session, community.hubs, community.creators, community.posts,
                          community.comments, community.reviews)
    counts = demo_campaigns.run(wired, community)
    yield wired, community, counts
    close(wired)


def test_counts_and_one_conflict_of_each_kind(
        built: tuple[Services, Community, dict[str, Any]]) -> None:
    wired, _community, counts = built
    assert counts["campaigns"] == 6
    assert counts["esg"] == 1
    assert counts["conflicts"] == {"budget": 1, "channel": 1, "product_overlap": 1, "stock": 1}
    with wired.sessions() as session:
        page = service.list_campaigns(session, wired.clock, CLI_PRINCIPAL, zone=SHANGHAI,
                                      limit=50)
        assert page.total == 6
        assert {c.tier for c in page.items} == {"brand_day", "holiday", "hot_topic"}
        assert sorted(c.status for c in page.items) == ["ended", "ended", "ended", "live",
                                                        "scheduled", "scheduled"]
        assert counts["phases"] == sum(len(c.phases) for c in page.items)
        found = calendar.conflicts(session, wired.clock, CLI_PRINCIPAL, zone=SHANGHAI)
        codes = {frozenset(link.code for link in c.campaigns) for c in found}
        assert codes == {frozenset({"demo-first-snow", "demo-brand-day-2"}),
                         frozenset({"demo-brand-day-2"})}  # the budget is the brand day's
        stock = next(c for c in found if c.kind == "stock")
        numbers = re.fullmatch(r"\S+: (\d+) units allocated on \S+ \(«[^»]+» (\d+), «[^»]+» "
                               r"(\d+)\) but only (\d+) in stock, (\d+) short\.", stock.message)
        assert numbers is not None, stock.message
        total, first, second, in_stock, short = (int(n) for n in numbers.groups())
        assert total == first + second == 2 * first > in_stock
        assert short == total - in_stock


def test_results_come_from_the_generated_orders(
        built: tuple[Services, Community, dict[str, Any]]) -> None:
    wired, community, _counts = built
    with wired.sessions() as session:
        by_code = {c.code: c for c in service.list_campaigns(
            session, wired.clock, CLI_PRINCIPAL, zone=SHANGHAI, limit=50).items}
        double11 = service.results(session, wired.clock, CLI_PRINCIPAL,
                                   by_code["demo-double-11"].id, zone=SHANGHAI)
        # The same figure straight from the generated rows: paid and still paid, in the
        # campaign's days, campaign products only.
        skus = {line.sku for line in by_code["demo-double-11"].products}
        kept = {o["external_id"] for o in community.orders
                if o["status"] in ("paid", "shipped", "completed") and o["paid_at"] is not None
                and double11.since <= o["paid_at"] < double11.until}
        expected = sum(line["quantity"] * line["unit_price_fen"]
                       for line in community.order_lines
                       if line["order_external_id"] in kept and line["sku"] in skus)
        assert double11.figures.gmv_fen == expected > 0
        assert sum(p.figures.gmv_fen for p in double11.phases) == expected  # phases tile it
        farm = service.results(session, wired.clock, CLI_PRINCIPAL,
                               by_code["demo-help-farmers"].id, zone=SHANGHAI)
        assert farm.esg is not None
        assert farm.esg.beneficiaries == len({line.brand_external_id
                                               for line in by_code["demo-help-farmers"].products})
        assert farm.esg.impact[0].unit == "kg"
        assert farm.esg.impact[0].amount > Decimal(0)
        assert farm.esg.donation_fen == farm.figures.gmv_fen * 500 // 10_000
