"""Campaign use cases: create, replace, delete, list, results, brand budgets
(docs/campaigns.md).

A campaign's status is derived, not stored: ``draft`` while marked as a draft, then
``scheduled`` before its first day, ``live`` on its days and ``ended`` after its last one
(local days of the deployment's zone), so it never goes stale and needs no job.

Results are computed from the orders and content in the database each time they are
asked for (see :func:`results`); nothing is cached or copied.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shequ.core.clock import Clock, as_utc
from shequ.core.errors import Conflict, NotFound, ValidationFailed
from shequ.core.permissions import CLI_PRINCIPAL, Principal
from shequ.domains.campaigns import calendar
from shequ.domains.campaigns.campaign_models import (
    PHASES,
    Campaign,
    CampaignBudget,
    CampaignPhase,
    CampaignProduct,
    CampaignSlot,
)
from shequ.domains.campaigns.campaign_schemas import (
    Attainment,
    BudgetIn,
    BudgetOut,
    CampaignIn,
    CampaignOut,
    CampaignPage,
    EsgResult,
    Figures,
    ImpactOut,
    KpiIn,
    PhaseOut,
    PhaseResult,
    ProductLineOut,
    ResultsOut,
    SlotOut,
    Status,
)
from shequ.domains.catalog import service as catalog
from shequ.domains.content import service as content
from shequ.domains.content.schemas import PostStatus
from shequ.domains.orders import service as orders

__all__ = ["create_campaign", "delete_campaign", "get_campaign", "list_budgets",
           "list_campaigns", "put_budget", "results", "update_campaign"]

KPI_NAMES = ("gmv_fen", "orders", "new_customers", "ugc_posts")
CONTENT_PAGE = 500


# --- validation -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Checked:
    brand_id: int | None
    product_ids: dict[str, int]


def _check(session: Session, data: CampaignIn, zone: ZoneInfo) -> _Checked:
    """Every rule a campaign must meet; the first broken one names its field."""
    brand_id = None
    if data.brand is not None:
        brand_id = catalog.brand_ids_by_key(session, [data.brand]).get(data.brand)
        if brand_id is None:
            raise ValidationFailed("unknown_brand", f"no brand {data.brand!r}", "brand")
    if data.ends_on < data.starts_on:
        raise ValidationFailed("days_out_of_order", "the campaign ends before it starts",
                               "ends_on")
    if (data.ends_on - data.starts_on).days > 366:
        raise ValidationFailed("too_long", "a campaign lasts at most a year", "ends_on")
    _check_phases(data)
    product_ids = _check_products(session, data)
    _check_slots(data, zone)
    if data.donation_bp and data.kind != "esg":
        raise ValidationFailed("donation_not_esg", "only ESG campaigns donate a share of GMV",
                               "donation_bp")
    return _Checked(brand_id, product_ids)


def _check_phases(data: CampaignIn) -> None:
    seen: set[str] = set()
    for phase in data.phases:
        attr = f"phases.{phase.kind}"
        if phase.kind in seen:
            raise ValidationFailed("duplicate_phase", f"the {phase.kind} phase is given twice",
                                   f"{attr}.kind")
        seen.add(phase.kind)
        if phase.ends_on < phase.starts_on:
            raise ValidationFailed("days_out_of_order", f"the {phase.kind} phase ends before "
                                   "it starts", f"{attr}.ends_on")
        if phase.starts_on < data.starts_on:
            raise ValidationFailed("phase_outside", f"the {phase.kind} phase starts before the "
                                   f"campaign ({data.starts_on.isoformat()})",
                                   f"{attr}.starts_on")
        if phase.ends_on > data.ends_on:
            raise ValidationFailed("phase_outside", f"the {phase.kind} phase ends after the "
                                   f"campaign ({data.ends_on.isoformat()})", f"{attr}.ends_on")
    ordered = sorted(data.phases, key=lambda p: PHASES.index(p.kind))
    for before, after in pairwise(ordered):
        if after.starts_on <= before.ends_on:
            reason = ("overlaps" if after.ends_on >= before.starts_on else "comes before")
            raise ValidationFailed(
                "phase_overlap" if reason == "overlaps" else "phase_order",
                f"the {after.kind} phase {reason} the {before.kind} phase (which ends on "
                f"{before.ends_on.isoformat()}); phases run teaser, seeding, conversion, "
                "word_of_mouth without sharing a day", f"phases.{after.kind}.starts_on")


def _check_products(session: Session, data: CampaignIn) -> dict[str, int]:
    known = catalog.product_brands(session, (line.sku for line in data.products))
    seen: set[str] = set()
    for index, line in enumerate(data.products):
        attr = f"products.{index}"
        if line.sku not in known:
            raise ValidationFailed("unknown_sku", f"no product {line.sku!r}", f"{attr}.sku")
        if line.sku in seen:
            raise ValidationFailed("duplicate_sku", f"{line.sku} is listed twice",
                                   f"{attr}.sku")
        seen.add(line.sku)
        if (line.impact_unit is None) != (line.impact_per_unit is None):
            raise ValidationFailed("impact_incomplete", "give both the impact unit and the "
                                   "impact per unit, or neither", f"{attr}.impact_unit")
        if line.impact_unit is not None and data.kind != "esg":
            raise ValidationFailed("impact_not_esg", "only ESG campaigns record an impact",
                                   f"{attr}.impact_unit")
    return {sku: ids[0] for sku, ids in known.items()}


def _check_slots(data: CampaignIn, zone: ZoneInfo) -> None:
    since, until = calendar.local_window(data.starts_on, data.ends_on, zone)
    for index, slot in enumerate(data.channels):
        attr = f"channels.{index}"
        for name, value in (("starts_at", slot.starts_at), ("ends_at", slot.ends_at)):
            if value.tzinfo is None:
                raise ValidationFailed("naive_time", "give the time with its UTC offset",
                                       f"{attr}.{name}")
        if slot.ends_at <= slot.starts_at:
            raise ValidationFailed("empty_slot", "the slot ends before it starts",
                                   f"{attr}.ends_at")
        if slot.starts_at < since or slot.ends_at > until:
            raise ValidationFailed("slot_outside", "the slot lies outside the campaign's "
                                   f"days ({data.starts_on.isoformat()} to "
                                   f"{data.ends_on.isoformat()})", f"{attr}.starts_at")


# --- create, replace, read ------------------------------------------------------------


def _write_children(session: Session, campaign_id: int, data: CampaignIn,
                    product_ids: dict[str, int]) -> None:
    session.add_all(CampaignPhase(campaign_id=campaign_id, kind=p.kind, starts_on=p.starts_on,
                                  ends_on=p.ends_on) for p in data.phases)
    session.add_all(CampaignProduct(campaign_id=campaign_id, product_id=product_ids[line.sku],
                                    sku=line.sku, allocation=line.allocation,
                                    impact_unit=line.impact_unit,
                                    impact_per_unit=line.impact_per_unit)
                    for line in data.products)
    session.add_all(CampaignSlot(campaign_id=campaign_id, channel=s.channel,
                                 starts_at=as_utc(s.starts_at), ends_at=as_utc(s.ends_at))
                    for s in data.channels)


def _fields(data: CampaignIn, checked: _Checked) -> dict[str, Any]:
    return {"code": data.code, "name": data.name, "tier": data.tier, "kind": data.kind,
            "brand_id": checked.brand_id, "draft": data.draft, "starts_on": data.starts_on,
            "ends_on": data.ends_on, "budget_fen": data.budget_fen,
            "kpi_gmv_fen": data.kpi.gmv_fen, "kpi_orders": data.kpi.orders,
            "kpi_new_customers": data.kpi.new_customers, "kpi_ugc_posts": data.kpi.ugc_posts,
            "donation_bp": data.donation_bp}


def _with_warnings(session: Session, clock: Clock, principal: Principal, campaign_id: int,
                   zone: ZoneInfo) -> CampaignOut:
    found = get_campaign(session, clock, principal, campaign_id, zone=zone)
    found.warnings = calendar.conflicts(session, clock, principal, zone=zone,
                                        involving=[campaign_id])
    return found


def create_campaign(session: Session, clock: Clock, principal: Principal, data: CampaignIn,
                    *, zone: ZoneInfo) -> CampaignOut:
    """File a new campaign under its unique ``code``; returns it with the conflicts it
    takes part in (warnings only: they never block)."""
    calendar.refuse_partners(principal)
    checked = _check(session, data, zone)
    now = clock.now()
    row = Campaign(**_fields(data, checked), created_at=now, updated_at=now)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError as exc:
        raise Conflict("campaign_exists", f"a campaign {data.code!r} exists", "code") from exc
    _write_children(session, row.id, data, checked.product_ids)
    session.flush()
    return _with_warnings(session, clock, principal, row.id, zone)


def _locked(session: Session, campaign_id: int) -> Campaign:
    row = session.scalar(select(Campaign).where(Campaign.id == campaign_id).with_for_update())
    if row is None:
        raise NotFound("campaign_not_found", f"no campaign {campaign_id}", "campaign_id")
    return row


def _drop_children(session: Session, campaign_id: int) -> None:
    for model in (CampaignPhase, CampaignProduct, CampaignSlot):
        session.execute(delete(model).where(model.campaign_id == campaign_id))


def update_campaign(session: Session, clock: Clock, principal: Principal, campaign_id: int,
                    data: CampaignIn, *, zone: ZoneInfo) -> CampaignOut:
    """Replace a campaign: its fields, phases, products and slots (under its row lock)."""
    calendar.refuse_partners(principal)
    row = _locked(session, campaign_id)
    checked = _check(session, data, zone)
    if data.code != row.code and session.scalar(
            select(Campaign.id).where(Campaign.code == data.code)) is not None:
        raise Conflict("campaign_exists", f"a campaign {data.code!r} exists", "code")
    for name, value in _fields(data, checked).items():
        setattr(row, name, value)
    row.updated_at = clock.now()
    _drop_children(session, campaign_id)
    _write_children(session, campaign_id, data, checked.product_ids)
    session.flush()
    return _with_warnings(session, clock, principal, campaign_id, zone)


def delete_campaign(session: Session, principal: Principal, campaign_id: int) -> None:
    """Remove a campaign and its phases, products and slots."""
    calendar.refuse_partners(principal)
    row = _locked(session, campaign_id)
    _drop_children(session, campaign_id)
    session.delete(row)
    session.flush()


def _outs(session: Session, rows: Sequence[Campaign], now: datetime,
          zone: ZoneInfo) -> list[CampaignOut]:
    ids = [row.id for row in rows]
    if not ids:
        return []
    brands = {b.id: b for b in catalog.list_brands(session, CLI_PRINCIPAL)}
    phases: dict[int, list[PhaseOut]] = defaultdict(list)
    for ph in session.scalars(select(CampaignPhase).where(CampaignPhase.campaign_id.in_(ids))):
        phases[ph.campaign_id].append(PhaseOut(kind=ph.kind, starts_on=ph.starts_on,
                                               ends_on=ph.ends_on))
    lines: dict[int, list[CampaignProduct]] = defaultdict(list)
    for pr in session.scalars(select(CampaignProduct)
                              .where(CampaignProduct.campaign_id.in_(ids))
                              .order_by(CampaignProduct.id)):
        lines[pr.campaign_id].append(pr)
    products = {sku: catalog.get_product(session, CLI_PRINCIPAL, sku)
                for sku in {pr.sku for prs in lines.values() for pr in prs}}
    slots: dict[int, list[SlotOut]] = defaultdict(list)
    for sl in session.scalars(select(CampaignSlot).where(CampaignSlot.campaign_id.in_(ids))
                              .order_by(CampaignSlot.starts_at, CampaignSlot.id)):
        slots[sl.campaign_id].append(SlotOut(channel=sl.channel, starts_at=as_utc(sl.starts_at),
                                             ends_at=as_utc(sl.ends_at)))
    found = []
    for row in rows:
        brand = brands.get(row.brand_id) if row.brand_id is not None else None
        found.append(CampaignOut(
            id=row.id, code=row.code, name=row.name, tier=row.tier, kind=row.kind,
            brand=brand.external_id if brand else None, brand_name=brand.name if brand else None,
            draft=row.draft, status=calendar.status_of(row.draft, row.starts_on, row.ends_on,
                                                       now, zone),
            starts_on=row.starts_on, ends_on=row.ends_on,
            phases=sorted(phases[row.id], key=lambda p: PHASES.index(p.kind)),
            products=[ProductLineOut(
                sku=pr.sku, name=products[pr.sku].name,
                brand_external_id=products[pr.sku].brand_external_id,
                stock=products[pr.sku].stock, allocation=pr.allocation,
                impact_unit=pr.impact_unit, impact_per_unit=pr.impact_per_unit)
                for pr in lines[row.id]],
            channels=slots[row.id], budget_fen=row.budget_fen,
            kpi=KpiIn(gmv_fen=row.kpi_gmv_fen, orders=row.kpi_orders,
                      new_customers=row.kpi_new_customers, ugc_posts=row.kpi_ugc_posts),
            donation_bp=row.donation_bp, created_at=as_utc(row.created_at),
            updated_at=as_utc(row.updated_at)))
    return found


def get_campaign(session: Session, clock: Clock, principal: Principal, campaign_id: int,
                 *, zone: ZoneInfo) -> CampaignOut:
    """One campaign with its phases, products (with current stock) and slots."""
    calendar.refuse_partners(principal)
    row = session.get(Campaign, campaign_id, populate_existing=True)
    if row is None:
        raise NotFound("campaign_not_found", f"no campaign {campaign_id}", "campaign_id")
    return _outs(session, [row], clock.now(), zone)[0]


def list_campaigns(session: Session, clock: Clock, principal: Principal, *, zone: ZoneInfo,
                   tier: str | None = None, kind: str | None = None,
                   status: Status | None = None, brand: str | None = None,
                   q: str | None = None, limit: int = 50, offset: int = 0) -> CampaignPage:
    """Campaigns newest first, filtered by tier, kind, derived status, brand and a text
    found in the name or code."""
    calendar.refuse_partners(principal)
    query = select(Campaign)
    if tier is not None:
        query = query.where(Campaign.tier == tier)
    if kind is not None:
        query = query.where(Campaign.kind == kind)
    if brand is not None:
        query = query.where(Campaign.brand_id == catalog.brand_ids_by_key(session, [brand])
                            .get(brand, -1))
    if q:
        like = f"%{q.replace('%', '').replace('_', '')}%"
        query = query.where(or_(Campaign.name.like(like), Campaign.code.like(like)))
    rows = list(session.scalars(query.order_by(Campaign.starts_on.desc(), Campaign.id.desc())))
    now = clock.now()
    if status is not None:
        rows = [r for r in rows if calendar.status_of(r.draft, r.starts_on, r.ends_on, now,
                                                      zone) == status]
    return CampaignPage(total=len(rows), items=_outs(session, rows[offset:offset + limit],
                                                     now, zone))


# --- results --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sale:
    customer_id: int
    at_us: int
    sku: str
    quantity: int
    amount_fen: int
    brand_id: int
    first_order: bool


def _sales(session: Session, skus: set[str], since: datetime, until: datetime) -> list[_Sale]:
    """The campaign products' lines of orders paid in ``[since, until)`` and still paid,
    each marked when its order is the customer's first paid order ever."""
    table = orders.purchased_lines(session, since=since, until=until)
    if table.num_rows == 0 or not skus:
        return []
    history = orders.purchases(session, until=until)
    customers, first_at = np.unique(history.customer_ids, return_index=True)
    first = dict(zip(customers.tolist(),
                     history.paid_at[first_at].astype("int64").tolist(), strict=True))
    stamps = table.column("ts").cast(pa.int64()).to_pylist()
    found = []
    for row, at_us in zip(table.to_pylist(), stamps, strict=True):
        if row["sku"] not in skus:
            continue
        found.append(_Sale(row["customer_id"], at_us, row["sku"], row["quantity"],
                           row["quantity"] * row["unit_price_fen"], row["brand_id"],
                           first.get(row["customer_id"]) == at_us))
    return found


def _ugc(session: Session, skus: set[str], since: datetime,
         until: datetime) -> tuple[list[datetime], list[datetime]]:
    """Creation times of the published posts and reviews about ``skus`` in the window
    (pages newest first until one is older than ``since``)."""
    posts: list[datetime] = []
    reviews: list[datetime] = []
    for sku in sorted(skus):
        offset = 0
        while True:
            page = content.list_posts(session, CLI_PRINCIPAL, product=sku,
                                      status=PostStatus.PUBLISHED, limit=CONTENT_PAGE,
                                      offset=offset)
            stamps = [as_utc(p.created_at) for p in page.items]
            posts.extend(t for t in stamps if since <= t < until)
            offset += CONTENT_PAGE
            if not stamps or stamps[-1] < since or offset >= page.total:
                break
        offset = 0
        while True:
            rpage = content.list_reviews(session, CLI_PRINCIPAL, sku=sku, limit=CONTENT_PAGE,
                                         offset=offset)
            reviews.extend(as_utc(r.created_at) for r in rpage.items
                           if r.status is PostStatus.PUBLISHED
                           and since <= as_utc(r.created_at) < until)
            offset += CONTENT_PAGE
            if not rpage.items or as_utc(rpage.items[-1].created_at) < since \
                    or offset >= rpage.total:
                break
    return posts, reviews


def _figures(sales: list[_Sale], posts: list[datetime], reviews: list[datetime],
             since: datetime, until: datetime) -> Figures:
    lo = int(since.timestamp() * 1_000_000)
    hi = int(until.timestamp() * 1_000_000)
    inside = [s for s in sales if lo <= s.at_us < hi]
    ugc_posts = sum(1 for t in posts if since <= t < until)
    ugc_reviews = sum(1 for t in reviews if since <= t < until)
    return Figures(gmv_fen=sum(s.amount_fen for s in inside),
                   orders=len({(s.customer_id, s.at_us) for s in inside}),
                   units=sum(s.quantity for s in inside),
                   new_customers=len({s.customer_id for s in inside if s.first_order}),
                   ugc_posts=ugc_posts, ugc_reviews=ugc_reviews, ugc=ugc_posts + ugc_reviews)


def _attainment(figures: Figures, kpi: KpiIn) -> list[Attainment]:
    actual = {"gmv_fen": figures.gmv_fen, "orders": figures.orders,
              "new_customers": figures.new_customers, "ugc_posts": figures.ugc}
    found = []
    for name in KPI_NAMES:
        target = getattr(kpi, name)
        pct = round(actual[name] * 100 / target, 1) if target else None
        found.append(Attainment(name=name, target=target, actual=actual[name], pct=pct))
    return found


def _esg(campaign: CampaignOut, sales: list[_Sale], gmv_fen: int) -> EsgResult:
    per_unit = {line.sku: (line.impact_unit, line.impact_per_unit) for line in campaign.products
                if line.impact_unit is not None and line.impact_per_unit is not None}
    impact: dict[str, Decimal] = defaultdict(Decimal)
    for sale in sales:
        if sale.sku in per_unit:
            unit, amount = per_unit[sale.sku]
            impact[unit] += amount * sale.quantity
    return EsgResult(impact=[ImpactOut(unit=unit, amount=impact[unit]) for unit in sorted(impact)],
                     beneficiaries=len({sale.brand_id for sale in sales}),
                     donation_bp=campaign.donation_bp,
                     donation_fen=gmv_fen * campaign.donation_bp // 10_000)


def results(session: Session, clock: Clock, principal: Principal, campaign_id: int, *,
            zone: ZoneInfo) -> ResultsOut:
    """The campaign's results over its days and over each phase, from the database:

    * GMV and orders: the campaign products' line amounts (before order discounts, which
      belong to no one product) of orders paid in the window and not cancelled or
      refunded, and how many orders (one customer's payment instant) held such a line;
    * new customers: customers whose first paid order ever was paid in the window and
      holds a campaign product;
    * UGC: published posts about a campaign product plus published reviews of one,
      created in the window;
    * KPI attainment: actual / target in %; for a phase, its share of the target;
    * ESG campaigns: impact (units sold × impact per unit, by unit), beneficiaries (the
      distinct brands whose campaign products sold) and the donation (GMV × donation share).
    """
    campaign = get_campaign(session, clock, principal, campaign_id, zone=zone)
    skus = {line.sku for line in campaign.products}
    since, until = calendar.local_window(campaign.starts_on, campaign.ends_on, zone)
    sales = _sales(session, skus, since, until)
    posts, reviews = _ugc(session, skus, since, until) if skus else ([], [])
    total = _figures(sales, posts, reviews, since, until)
    phases = []
    for phase in campaign.phases:
        p_since, p_until = calendar.local_window(phase.starts_on, phase.ends_on, zone)
        figures = _figures(sales, posts, reviews, p_since, p_until)
        phases.append(PhaseResult(kind=phase.kind, starts_on=phase.starts_on,
                                  ends_on=phase.ends_on, figures=figures,
                                  kpis=_attainment(figures, campaign.kpi)))
    return ResultsOut(campaign_id=campaign_id, as_of=clock.now(), since=since, until=until,
                      figures=total, kpis=_attainment(total, campaign.kpi), phases=phases,
                      esg=_esg(campaign, sales, total.gmv_fen) if campaign.kind == "esg"
                      else None)


# --- brand budgets --------------------------------------------------------------------


def _planned(session: Session, brand_id: int, month: str) -> int:
    first = date.fromisoformat(f"{month}-01")
    following = (first + timedelta(days=32)).replace(day=1)
    planned = session.scalar(select(func.coalesce(func.sum(Campaign.budget_fen), 0)).where(
        Campaign.brand_id == brand_id, Campaign.starts_on >= first,
        Campaign.starts_on < following))
    return int(planned or 0)


def put_budget(session: Session, clock: Clock, principal: Principal,
               data: BudgetIn) -> BudgetOut:
    """Set a brand's campaign budget for a month (created or replaced)."""
    calendar.refuse_partners(principal)
    brand_id = catalog.brand_ids_by_key(session, [data.brand]).get(data.brand)
    if brand_id is None:
        raise ValidationFailed("unknown_brand", f"no brand {data.brand!r}", "brand")
    row = session.scalar(select(CampaignBudget).where(
        CampaignBudget.brand_id == brand_id, CampaignBudget.month == data.month)
        .with_for_update())
    if row is None:
        row = CampaignBudget(brand_id=brand_id, month=data.month, budget_fen=data.budget_fen,
                             updated_at=clock.now())
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError:  # a twin request created it meanwhile: replace that one
            row = session.scalars(select(CampaignBudget).where(
                CampaignBudget.brand_id == brand_id, CampaignBudget.month == data.month)
                .with_for_update()).one()
    row.budget_fen = data.budget_fen
    row.updated_at = clock.now()
    session.flush()
    return next(b for b in list_budgets(session, principal)
                if b.brand == data.brand and b.month == data.month)


def list_budgets(session: Session, principal: Principal) -> list[BudgetOut]:
    """Every brand budget with what the brand's campaigns starting that month plan."""
    calendar.refuse_partners(principal)
    brands = {b.id: b for b in catalog.list_brands(session, CLI_PRINCIPAL)}
    rows = session.scalars(select(CampaignBudget).order_by(CampaignBudget.month.desc(),
                                                           CampaignBudget.brand_id))
    return [BudgetOut(brand=brands[r.brand_id].external_id, brand_name=brands[r.brand_id].name,
                      month=r.month, budget_fen=r.budget_fen,
                      planned_fen=_planned(session, r.brand_id, r.month)) for r in rows]
