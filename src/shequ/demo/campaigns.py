"""The demo's campaign calendar, planned through ``campaigns.campaign_service`` the way an
operator would in the console:

* three campaigns inside the demo window, ended, whose results come from the generated
  orders and content: a brand day (the first brand), a mid-autumn holiday and Double 11
  (platform-wide, the best-selling products);
* a help-farmers ESG campaign (助农丰收季) from three weeks before the window's end until
  after it: the food products as farm produce, each unit's weight as its impact in kg
  (from the product name, 0.3 kg a pack otherwise), 5 % of GMV donated;
* two upcoming campaigns that clash on purpose, so the calendar has one warning of each
  kind: a hot-topic campaign and the second brand's brand day share that brand's first
  product with overlapping phases, each allocating 60 % of its stock, book the live room
  for overlapping evenings, and the brand day's budget exceeds the brand's monthly budget.

Dates follow the window (``community.end``) and the clock: the upcoming campaigns start
after whichever is later, so they are upcoming whenever the demo is built.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from shequ.core.db import transaction
from shequ.core.permissions import CLI_PRINCIPAL
from shequ.core.web import Services
from shequ.demo.generator import Community
from shequ.domains.campaigns import calendar
from shequ.domains.campaigns import campaign_service as campaigns
from shequ.domains.campaigns.campaign_schemas import (
    BudgetIn,
    CampaignIn,
    KpiIn,
    PhaseIn,
    ProductLineIn,
    SlotIn,
)
from shequ.domains.catalog import service as catalog

WEIGHT = re.compile(r"(\d+)\s*(kg|g)\b", re.I)
PACK_KG = Decimal("0.3")
ALLOCATED_SHARE = 0.6
DONATION_BP = 500


def _kg(name: str) -> Decimal:
    found = WEIGHT.search(name)
    if found is None:
        return PACK_KG
    grams = Decimal(found.group(1)) * (1000 if found.group(2).lower() == "kg" else 1)
    return (grams / 1000).quantize(Decimal("0.001"))


SMALL_ORDERS = 1_500  # the small demo's orders, for which the KPI targets below are written


def _phases(first: date, *spans: tuple[str, int, int]) -> list[PhaseIn]:
    """Phases as ``(kind, first day offset, last day offset)`` from ``first``."""
    return [PhaseIn(kind=kind, starts_on=first + timedelta(days=a),
                    ends_on=first + timedelta(days=b)) for kind, a, b in spans]


def _evening(day: date, start_h: int, end_h: int, zone: ZoneInfo,
             channel: str = "live_room") -> SlotIn:
    return SlotIn(channel=channel,
                  starts_at=datetime.combine(day, time(start_h), zone),
                  ends_at=datetime.combine(day, time(end_h), zone))


def _kpi(scale: float, **targets: int) -> KpiIn:
    """KPI targets written for the small demo, grown with the demo's order count."""
    return KpiIn(**{name: round(value * scale) for name, value in targets.items()})


def _plans(community: Community, last: date, anchor: date, zone: ZoneInfo,
           stock: dict[str, int]) -> list[CampaignIn]:
    scale = max(1.0, len(community.orders) / SMALL_ORDERS)
    products = community.products
    by_brand = {b["external_id"]: [p for p in products if p["brand_external_id"]
                                   == b["external_id"]] for b in community.brands}
    first_brand, second_brand = (b["external_id"] for b in community.brands[:2])
    sold = Counter[str]()
    for line in community.order_lines:
        sold[str(line["sku"])] += int(line["quantity"])
    top = [sku for sku, _ in sorted(sold.items(), key=lambda kv: (-kv[1], kv[0]))[:8]]
    food = [p for p in products if str(p["category_external_id"]).startswith("food")]
    clash = str(by_brand[second_brand][0]["sku"])
    held = math.ceil(stock[clash] * ALLOCATED_SHARE)
    brand_day = last - timedelta(days=78)
    autumn = last - timedelta(days=60)
    double11 = last - timedelta(days=31)
    farm = last - timedelta(days=20)
    snow = anchor + timedelta(days=1)
    day2 = anchor + timedelta(days=3)
    four = (("teaser", 0, 1), ("seeding", 2, 4), ("conversion", 5, 7), ("word_of_mouth", 8, 12))
    return [
        CampaignIn(
            code="demo-brand-day-1", name=f"{community.brands[0]['name']}品牌日",
            tier="brand_day", brand=first_brand, starts_on=brand_day,
            ends_on=brand_day + timedelta(days=12), phases=_phases(brand_day, *four),
            products=[ProductLineIn(sku=p["sku"]) for p in by_brand[first_brand][:4]],
            channels=[_evening(brand_day + timedelta(days=5), 19, 22, zone)],
            budget_fen=8_000_000, kpi=_kpi(scale, gmv_fen=3_000_000, orders=60, new_customers=10,
                                            ugc_posts=15)),
        CampaignIn(
            code="demo-mid-autumn", name="中秋礼遇季", tier="holiday", starts_on=autumn,
            ends_on=autumn + timedelta(days=15),
            phases=_phases(autumn, ("teaser", 0, 2), ("seeding", 3, 6),
                           ("conversion", 7, 11), ("word_of_mouth", 12, 15)),
            products=[ProductLineIn(sku=sku) for sku in top[:5]],
            channels=[_evening(autumn + timedelta(days=7), 10, 22, zone, "app_home_banner")],
            budget_fen=20_000_000, kpi=_kpi(scale, gmv_fen=10_000_000, orders=200, new_customers=30,
                                             ugc_posts=40)),
        CampaignIn(
            code="demo-double-11", name="双十一狂欢节", tier="holiday", starts_on=double11,
            ends_on=double11 + timedelta(days=26),
            phases=_phases(double11, ("teaser", 0, 4), ("seeding", 5, 10),
                           ("conversion", 11, 21), ("word_of_mouth", 22, 26)),
            products=[ProductLineIn(sku=sku) for sku in top],
            channels=[_evening(double11 + timedelta(days=21), 20, 23, zone),
                      _evening(double11 + timedelta(days=11), 0, 23, zone, "app_home_banner")],
            budget_fen=50_000_000, kpi=_kpi(scale, gmv_fen=30_000_000, orders=500,
                                             new_customers=60, ugc_posts=80)),
        CampaignIn(
            code="demo-help-farmers", name="助农丰收季", tier="hot_topic", kind="esg",
            starts_on=farm, ends_on=anchor + timedelta(days=10),
            phases=[PhaseIn(kind="seeding", starts_on=farm, ends_on=farm + timedelta(days=4)),
                    PhaseIn(kind="conversion", starts_on=farm + timedelta(days=5),
                            ends_on=anchor + timedelta(days=4)),
                    PhaseIn(kind="word_of_mouth", starts_on=anchor + timedelta(days=5),
                            ends_on=anchor + timedelta(days=10))],
            products=[ProductLineIn(sku=p["sku"], impact_unit="kg",
                                    impact_per_unit=_kg(str(p["name"]))) for p in food],
            channels=[_evening(farm + timedelta(days=6), 19, 21, zone, "wechat_group")],
            budget_fen=3_000_000, donation_bp=DONATION_BP,
            kpi=_kpi(scale, gmv_fen=2_000_000, orders=100, new_customers=10, ugc_posts=20)),
        CampaignIn(
            code="demo-first-snow", name="初雪暖冬热点", tier="hot_topic", starts_on=snow,
            ends_on=snow + timedelta(days=8),
            phases=_phases(snow, ("teaser", 0, 0), ("conversion", 1, 5),
                           ("word_of_mouth", 6, 8)),
            products=[ProductLineIn(sku=clash, allocation=held)],
            channels=[_evening(day2, 20, 22, zone)], budget_fen=1_000_000,
            kpi=_kpi(scale, gmv_fen=1_000_000, orders=50)),
        CampaignIn(
            code="demo-brand-day-2", name=f"{community.brands[1]['name']}品牌日",
            tier="brand_day", brand=second_brand, starts_on=day2,
            ends_on=day2 + timedelta(days=12), phases=_phases(day2, *four),
            products=[ProductLineIn(sku=clash, allocation=held),
                      *(ProductLineIn(sku=p["sku"]) for p in by_brand[second_brand][1:3])],
            channels=[_evening(day2, 21, 23, zone)], budget_fen=15_000_000,
            kpi=_kpi(scale, gmv_fen=5_000_000, orders=100, new_customers=20, ugc_posts=30)),
    ]


def run(services: Services, community: Community) -> dict[str, Any]:
    """Plan the demo's campaigns and the second brand's monthly budget; counts of what was
    made and of the calendar's conflicts by kind."""
    zone = services.settings.zone
    last = (community.end - timedelta(microseconds=1)).astimezone(zone).date()
    anchor = max(last, services.clock.now().astimezone(zone).date())
    second_brand = str(community.brands[1]["external_id"])
    with transaction(services.sessions, actor="cli", clock=services.clock) as session:
        skus = [p["sku"] for p in community.products]
        stock = {sku: catalog.get_product(session, CLI_PRINCIPAL, sku).stock for sku in skus}
        plans = _plans(community, last, anchor, zone, stock)
        budget_month = plans[-1].starts_on.strftime("%Y-%m")
        campaigns.put_budget(session, services.clock, CLI_PRINCIPAL, BudgetIn(
            brand=second_brand, month=budget_month, budget_fen=10_000_000))
        made = [campaigns.create_campaign(session, services.clock, CLI_PRINCIPAL, plan,
                                          zone=zone) for plan in plans]
        found = calendar.conflicts(session, services.clock, CLI_PRINCIPAL, zone=zone)
    by_kind: dict[str, int] = {}
    for conflict in found:
        by_kind[conflict.kind] = by_kind.get(conflict.kind, 0) + 1
    return {"campaigns": len(made), "esg": sum(1 for c in made if c.kind == "esg"),
            "phases": sum(len(c.phases) for c in made),
            "products": sum(len(c.products) for c in made),
            "slots": sum(len(c.channels) for c in made), "budgets": 1,
            "conflicts": dict(sorted(by_kind.items()))}
