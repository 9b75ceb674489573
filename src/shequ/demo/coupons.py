"""The demo's coupons (docs/coupons.md): one template of each kind, issued two weeks
before the demo ends, and orders that use them through the shop's checkout.

* ``NEWBIE20`` (¥20 off everything) goes to the "browsed but not bought" segment the
  demo saved (M6.2's coupon push), or to a sample of customers when it is empty;
* ``BRAND15`` (15 % off one brand, at most ¥50) and ``MJ300-40`` (¥40 off from ¥300)
  go to samples of customers;
* ``REDEEM_SHARE`` of the holders check out with their coupon on in-scope products at a
  random moment of the last ten days; most of those orders are paid, some cancelled
  (which gives the coupon back), the rest left unpaid.

Everything goes through ``campaigns.coupons`` with the clock at the moment it happened,
deterministically from the community's seed; running it again changes nothing (the
templates exist, the batches and checkouts replay).
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from shequ.core.clock import FixedClock
from shequ.core.db import transaction
from shequ.core.errors import NotFound, ShequError
from shequ.core.permissions import CLI_PRINCIPAL
from shequ.core.web import Services
from shequ.demo.generator import Community
from shequ.domains.campaigns import coupons
from shequ.domains.campaigns.coupon_schemas import CheckoutIn, IssueIn, TemplateIn
from shequ.domains.orders import service as orders
from shequ.domains.orders.schemas import LineIn, Status
from shequ.domains.segments import service as segments

SEGMENT_KEY = "browsed-not-bought"
ISSUED_DAYS_BEFORE_END = 14
REDEEM_DAYS = 10
SAMPLE = 120  # customers each sampled template goes to
REDEEM_SHARE = 0.35
MAX_REDEMPTIONS = 60  # per template
PAID_SHARE = 0.75
CANCELLED_SHARE = 0.1
Row = dict[str, Any]


def _templates(community: Community, start: datetime, end: datetime) -> list[TemplateIn]:
    brand = community.brands[0]["external_id"]
    common: dict[str, Any] = {"starts_at": start, "ends_at": end}
    return [
        TemplateIn(code="NEWBIE20", name="浏览未购 · 立减20元", kind="fixed",
                   description="推给浏览过但未下单的顾客", amount_off_fen=2_000,
                   total_quantity=2_000, budget_fen=2_000_000, **common),
        TemplateIn(code="BRAND15", name=f"{brand} 品牌85折 (最高减50元)", kind="percent",
                   percent_off=15, max_off_fen=5_000, scope="brand",
                   brand_external_id=brand, total_quantity=1_000, budget_fen=1_000_000,
                   **common),
        TemplateIn(code="MJ300-40", name="满300减40", kind="threshold", amount_off_fen=4_000,
                   min_subtotal_fen=30_000, per_customer_limit=2, total_quantity=1_000,
                   budget_fen=1_500_000, **common),
    ]


def _create(services: Services, at: datetime, data: TemplateIn) -> None:
    with transaction(services.sessions, actor="cli", clock=services.clock) as session:
        try:
            coupons.get_template(session, data.code)
        except NotFound:
            coupons.create_template(session, FixedClock(at), data)


def _segment_members(services: Services) -> tuple[str, list[str]] | None:
    for segment in segments.list_segments(services, CLI_PRINCIPAL):
        if segment.key == SEGMENT_KEY and segment.size:
            return coupons.recipients(services, CLI_PRINCIPAL,
                                      IssueIn(batch_key="push", segment_id=segment.id))
    return None


def _issue(services: Services, at: datetime, code: str, batch: str, source: str,
           keys: list[str], seed: int) -> dict[str, str]:
    with transaction(services.sessions, actor="cli", clock=services.clock) as session:
        done = coupons.issue(session, FixedClock(at), code, batch, keys, source=source,
                             rng=random.Random(f"{seed}:{code}:{batch}"))
    return done.codes


def _lines(rng: random.Random, products: list[Row], minimum: int) -> list[LineIn]:
    """One or two in-scope products, enough of the first to reach ``minimum``."""
    chosen = rng.sample(products, min(len(products), rng.choice((1, 1, 2))))
    first = chosen[0]
    quantity = max(1, -(-minimum // max(first["price_fen"], 1)))
    lines = [LineIn(sku=first["sku"], quantity=min(quantity, 20))]
    lines += [LineIn(sku=row["sku"], quantity=1) for row in chosen[1:]]
    return lines


def _in_scope(community: Community, data: TemplateIn) -> list[Row]:
    usable = [row for row in community.products if row["stock"] >= 40]
    if data.scope == "brand":
        usable = [row for row in usable if row["brand_external_id"] == data.brand_external_id]
    return usable


def _redeem(services: Services, community: Community, data: TemplateIn,
            codes: dict[str, str], rng: random.Random, outcomes: Counter[str]) -> None:
    products = _in_scope(community, data)
    holders = sorted(codes)
    if not products or not holders:
        return
    takers = rng.sample(holders, min(MAX_REDEMPTIONS, int(len(holders) * REDEEM_SHARE)))
    first_day = community.end - timedelta(days=REDEEM_DAYS)
    for n, customer in enumerate(takers):
        at = first_day + timedelta(seconds=rng.uniform(0, REDEEM_DAYS * 86_400 - 7_200))
        order = f"CPN-{data.code}-{n:04d}"
        fate = rng.random()
        try:
            with transaction(services.sessions, actor="cli", clock=services.clock) as session:
                coupons.checkout(session, FixedClock(at), CheckoutIn(
                    coupon_code=codes[customer], customer_external_id=customer,
                    order_external_id=order,
                    lines=_lines(rng, products, data.min_subtotal_fen), channel="app"))
        except ShequError as exc:
            outcomes[exc.code] += 1
            continue
        outcomes["ok"] += 1
        later = FixedClock(at + timedelta(minutes=rng.uniform(1, 90)))
        to: Status | None = "paid" if fate < PAID_SHARE else (
            "cancelled" if fate < PAID_SHARE + CANCELLED_SHARE else None)
        if to is not None:
            with transaction(services.sessions, actor="cli", clock=later) as session:
                orders.transition_order(session, later, CLI_PRINCIPAL, order, to)


def run(services: Services, community: Community) -> dict[str, Any]:
    """Build the coupons; counts of templates, coupons issued, checkouts and their
    refusals, and the figures per template."""
    rng = random.Random(f"{community.seed}:coupons")
    issued_at = community.end - timedelta(days=ISSUED_DAYS_BEFORE_END)
    templates = _templates(community, issued_at, community.end + timedelta(days=30))
    for data in templates:
        _create(services, issued_at, data)
    keys = sorted(row["external_id"] for row in community.customers)
    pushed = _segment_members(services)
    outcomes: Counter[str] = Counter()
    for data in templates:
        if data.code == "NEWBIE20" and pushed is not None:
            source, chosen = pushed
        else:
            source, chosen = "list", rng.sample(keys, min(SAMPLE, len(keys)))
        codes = _issue(services, issued_at, data.code, "demo", source, chosen, community.seed)
        _redeem(services, community, data, codes, rng, outcomes)
    with transaction(services.sessions) as session:
        figures = {d.template.code: d.figures.model_dump(exclude={"code"})
                   for d in coupons.list_figures(session)}
        violations = coupons.invariant_violations(session)
    return {"templates": len(templates),
            "issued": sum(f["issued"] for f in figures.values()),
            "checkouts": outcomes["ok"],
            "refused": {code: n for code, n in sorted(outcomes.items()) if code != "ok"},
            "redeemed": sum(f["redeemed"] for f in figures.values()),
            "granted_fen": sum(f["granted_fen"] for f in figures.values()),
            "pushed_to_segment": pushed is not None,
            "figures": figures, "violations": sum(violations.values())}
