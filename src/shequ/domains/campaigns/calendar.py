"""The shared campaign calendar: month and week views, and the resource conflicts between
campaigns (docs/campaigns.md).

Four kinds of conflict are found among the campaigns that have not ended (drafts
included: they are plans that hold resources too):

* ``product_overlap``: the same SKU in two campaigns whose phases overlap (at least one
  day in common);
* ``stock``: on some day, the allocations of a SKU by the campaigns in a phase that day
  add up to more than the catalog's stock (checked at every phase start, where the sum
  can grow);
* ``budget``: a brand's campaigns starting in a month budget more than the brand's monthly
  budget in ``campaign_budgets`` (ended campaigns of that month count too: their money is
  spent; a month of only ended campaigns is not reported);
* ``channel``: two booked slots of one channel overlap (``[start, end)`` ranges, so a slot
  ending at 12:00 and one starting at 12:00 do not clash).

Days are whole local days of the deployment's time zone, both ends included.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import combinations
from typing import cast
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from shequ.core.clock import Clock, as_utc
from shequ.core.errors import ValidationFailed
from shequ.core.money import format_fen
from shequ.core.permissions import CLI_PRINCIPAL, Principal
from shequ.domains.campaigns.campaign_models import (
    PHASES,
    Campaign,
    CampaignBudget,
    CampaignPhase,
    CampaignProduct,
    CampaignSlot,
)
from shequ.domains.campaigns.campaign_schemas import (
    FIRST_DAY,
    LAST_DAY,
    CalendarDay,
    CalendarEntry,
    CalendarOut,
    CampaignLink,
    ConflictOut,
    PhaseKind,
    Status,
    View,
)
from shequ.domains.catalog import service as catalog

__all__ = ["Plan", "calendar_view", "conflicts", "console_url", "load_plans", "local_window",
           "status_of"]

CONSOLE_URL = "/console/campaigns/{id}"
API_URL = "/api/v1/campaigns/{id}"


def console_url(campaign_id: int) -> str:
    return CONSOLE_URL.format(id=campaign_id)


def refuse_partners(principal: Principal) -> None:
    principal.refuse_if_partner("platform_wide_campaigns", "the campaign calendar spans every "
                                "brand; partners cannot read or plan it")


def local_window(first: date, last: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants ``[since, until)`` of the local days ``first`` .. ``last``."""
    since = datetime.combine(first, time(), zone).astimezone(UTC)
    until = datetime.combine(last + timedelta(days=1), time(), zone).astimezone(UTC)
    return since, until


def status_of(draft: bool, starts_on: date, ends_on: date, now: datetime,
              zone: ZoneInfo) -> Status:
    """``ended`` once its last day is over (a draft too), else ``draft``, else
    ``scheduled`` before its first day and ``live`` on its days."""
    today = now.astimezone(zone).date()
    if today > ends_on:
        return "ended"
    if draft:
        return "draft"
    return "scheduled" if today < starts_on else "live"


@dataclass(frozen=True)
class Phase:
    kind: PhaseKind
    starts_on: date
    ends_on: date

    def covers(self, day: date) -> bool:
        return self.starts_on <= day <= self.ends_on

    def overlaps(self, other: Phase) -> bool:
        return self.starts_on <= other.ends_on and other.starts_on <= self.ends_on


@dataclass(frozen=True)
class Slot:
    channel: str
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class Plan:
    """A campaign as the calendar reads it."""

    id: int
    code: str
    name: str
    tier: str
    kind: str
    brand_id: int | None
    status: Status
    starts_on: date
    ends_on: date
    budget_fen: int
    phases: tuple[Phase, ...]
    skus: tuple[str, ...]
    allocations: dict[str, int]
    slots: tuple[Slot, ...]

    def phase_on(self, day: date) -> Phase | None:
        return next((p for p in self.phases if p.covers(day)), None)

    @property
    def link(self) -> CampaignLink:
        return CampaignLink(id=self.id, code=self.code, name=self.name,
                            url=console_url(self.id), api_url=API_URL.format(id=self.id))


def load_plans(session: Session, now: datetime, zone: ZoneInfo, *,
               between: tuple[date, date] | None = None,
               ids: Iterable[int] | None = None) -> list[Plan]:
    """Campaigns with their phases, products and slots (those with a day in ``between``,
    or those of ``ids``), by first day."""
    query = select(Campaign)
    if between is not None:
        query = query.where(Campaign.starts_on <= between[1], Campaign.ends_on >= between[0])
    if ids is not None:
        query = query.where(Campaign.id.in_(sorted(set(ids))))
    rows = list(session.scalars(query.order_by(Campaign.starts_on, Campaign.id)))
    found = [row.id for row in rows]
    phases: dict[int, list[Phase]] = defaultdict(list)
    products: dict[int, list[tuple[str, int | None]]] = defaultdict(list)
    slots: dict[int, list[Slot]] = defaultdict(list)
    if found:
        for ph in session.scalars(select(CampaignPhase)
                                  .where(CampaignPhase.campaign_id.in_(found))):
            phases[ph.campaign_id].append(Phase(cast(PhaseKind, ph.kind), ph.starts_on,
                                                 ph.ends_on))
        for pr in session.scalars(select(CampaignProduct)
                                  .where(CampaignProduct.campaign_id.in_(found))
                                  .order_by(CampaignProduct.id)):
            products[pr.campaign_id].append((pr.sku, pr.allocation))
        for sl in session.scalars(select(CampaignSlot)
                                  .where(CampaignSlot.campaign_id.in_(found))
                                  .order_by(CampaignSlot.starts_at, CampaignSlot.id)):
            slots[sl.campaign_id].append(Slot(sl.channel, as_utc(sl.starts_at),
                                              as_utc(sl.ends_at)))
    return [Plan(id=row.id, code=row.code, name=row.name, tier=row.tier, kind=row.kind,
                 brand_id=row.brand_id,
                 status=status_of(row.draft, row.starts_on, row.ends_on, now, zone),
                 starts_on=row.starts_on, ends_on=row.ends_on, budget_fen=row.budget_fen,
                 phases=tuple(sorted(phases[row.id], key=lambda p: PHASES.index(p.kind))),
                 skus=tuple(sku for sku, _ in products[row.id]),
                 allocations={sku: units for sku, units in products[row.id]
                              if units is not None},
                 slots=tuple(slots[row.id]))
            for row in rows]


# --- conflicts ------------------------------------------------------------------------


def _days(phase: Phase) -> str:
    return f"{phase.starts_on.isoformat()}–{phase.ends_on.isoformat()}"


def _money(fen: int) -> str:
    return format_fen(fen, "en")


def _product_overlaps(plans: Sequence[Plan]) -> list[ConflictOut]:
    found = []
    for a, b in combinations(plans, 2):
        shared = [sku for sku in a.skus if sku in set(b.skus)]
        if not shared:
            continue
        pair = next(((pa, pb) for pa in a.phases for pb in b.phases if pa.overlaps(pb)), None)
        if pair is None:
            continue
        pa, pb = pair
        noun = "product" if len(shared) == 1 else "products"
        found.append(ConflictOut(
            kind="product_overlap", subject=", ".join(shared), campaigns=[a.link, b.link],
            message=f"{len(shared)} {noun} ({', '.join(shared)}) in both «{a.name}» and "
                    f"«{b.name}», whose phases overlap: {a.name}'s {pa.kind} {_days(pa)} and "
                    f"{b.name}'s {pb.kind} {_days(pb)}."))
    return found


def _stock(session: Session, plans: Sequence[Plan]) -> list[ConflictOut]:
    by_sku: dict[str, list[Plan]] = defaultdict(list)
    for plan in plans:
        for sku in plan.allocations:
            by_sku[sku].append(plan)
    found = []
    for sku in sorted(by_sku):
        holders = by_sku[sku]
        stock = catalog.get_product(session, CLI_PRINCIPAL, sku).stock
        clashes: dict[frozenset[int], date] = {}
        for day in sorted({ph.starts_on for plan in holders for ph in plan.phases}):
            active = [plan for plan in holders if plan.phase_on(day) is not None]
            if sum(plan.allocations[sku] for plan in active) > stock:
                clashes.setdefault(frozenset(plan.id for plan in active), day)
        widest = [ids for ids in clashes if not any(ids < other for other in clashes)]
        for ids in sorted(widest, key=lambda s: clashes[s]):
            involved = [plan for plan in holders if plan.id in ids]
            total = sum(plan.allocations[sku] for plan in involved)
            shares = ", ".join(f"«{plan.name}» {plan.allocations[sku]}" for plan in involved)
            found.append(ConflictOut(
                kind="stock", subject=sku, campaigns=[plan.link for plan in involved],
                message=f"{sku}: {total} units allocated on {clashes[ids].isoformat()} "
                        f"({shares}) but only {stock} in stock, {total - stock} short."))
    return found


def _budgets(session: Session, plans: Sequence[Plan], every: Sequence[Plan]) -> list[ConflictOut]:
    brands = {b.id: b for b in catalog.list_brands(session, CLI_PRINCIPAL)}
    live_months = {(p.brand_id, p.starts_on.strftime("%Y-%m")) for p in plans if p.brand_id}
    found = []
    for row in session.scalars(select(CampaignBudget).order_by(CampaignBudget.month,
                                                               CampaignBudget.brand_id)):
        if (row.brand_id, row.month) not in live_months:
            continue
        involved = [p for p in every if p.brand_id == row.brand_id
                    and p.starts_on.strftime("%Y-%m") == row.month]
        total = sum(p.budget_fen for p in involved)
        if total <= row.budget_fen:
            continue
        brand = brands[row.brand_id]
        shares = ", ".join(f"«{p.name}» {_money(p.budget_fen)}" for p in involved)
        found.append(ConflictOut(
            kind="budget", subject=f"{brand.external_id} {row.month}",
            campaigns=[p.link for p in involved],
            message=f"{brand.name} ({brand.external_id}) plans {_money(total)} of campaigns "
                    f"starting in {row.month} ({shares}), {_money(total - row.budget_fen)} "
                    f"over its monthly budget of {_money(row.budget_fen)}."))
    return found


def _channels(plans: Sequence[Plan], zone: ZoneInfo) -> list[ConflictOut]:
    booked = sorted(((slot, plan) for plan in plans for slot in plan.slots),
                    key=lambda item: (item[0].channel, item[0].starts_at, item[1].id))

    def shown(slot: Slot) -> str:
        start, end = slot.starts_at.astimezone(zone), slot.ends_at.astimezone(zone)
        tail = end.strftime("%H:%M") if end.date() == start.date() \
            else end.strftime("%Y-%m-%d %H:%M")
        return f"{start.strftime('%Y-%m-%d %H:%M')}–{tail}"

    found = []
    for (sa, pa), (sb, pb) in combinations(booked, 2):
        if sa.channel != sb.channel or not (sa.starts_at < sb.ends_at
                                             and sb.starts_at < sa.ends_at):
            continue
        minutes = int((min(sa.ends_at, sb.ends_at) - max(sa.starts_at, sb.starts_at))
                      .total_seconds() // 60)
        links = [pa.link] if pa.id == pb.id else [pa.link, pb.link]
        found.append(ConflictOut(
            kind="channel", subject=sa.channel, campaigns=links,
            message=f"{sa.channel} is booked twice: «{pa.name}» {shown(sa)} and «{pb.name}» "
                    f"{shown(sb)} overlap by {minutes} minutes ({zone.key} time)."))
    return found


def conflicts(session: Session, clock: Clock, principal: Principal, *, zone: ZoneInfo,
              involving: Iterable[int] | None = None) -> list[ConflictOut]:
    """Every conflict among the campaigns not ended (those naming one of ``involving``
    when given), by kind."""
    refuse_partners(principal)
    every = load_plans(session, clock.now(), zone)
    plans = [p for p in every if p.status != "ended"]
    found = [*_product_overlaps(plans), *_stock(session, plans),
             *_budgets(session, plans, every), *_channels(plans, zone)]
    if involving is None:
        return found
    wanted = set(involving)
    return [c for c in found if any(link.id in wanted for link in c.campaigns)]


# --- the calendar ---------------------------------------------------------------------


def _range(view: View, day: date) -> tuple[date, date, date, date]:
    """``(first, last, previous, next)`` of the month or ISO week holding ``day``."""
    if view == "week":
        first = day - timedelta(days=day.weekday())
        return first, first + timedelta(days=6), first - timedelta(days=7), \
            first + timedelta(days=7)
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    previous = (first - timedelta(days=1)).replace(day=1)
    return first, following - timedelta(days=1), previous, following


def calendar_view(session: Session, clock: Clock, principal: Principal, *, view: View,
                  day: date, zone: ZoneInfo) -> CalendarOut:
    """The month or week holding ``day``: for each day the campaigns on it and the phase
    each is in, and the conflicts the campaigns shown take part in."""
    refuse_partners(principal)
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValidationFailed("date_out_of_range", "the calendar shows the years 2000 to "
                               "2099", "date")
    first, last, previous, following = _range(view, day)
    plans = load_plans(session, clock.now(), zone, between=(first, last))
    days = []
    current = first
    while current <= last:
        entries = []
        for plan in plans:
            if not plan.starts_on <= current <= plan.ends_on:
                continue
            phase = plan.phase_on(current)
            entries.append(CalendarEntry(
                campaign_id=plan.id, code=plan.code, name=plan.name, tier=plan.tier,
                kind=plan.kind, status=plan.status, phase=phase.kind if phase else None,
                url=console_url(plan.id)))
        days.append(CalendarDay(day=current, entries=entries))
        current += timedelta(days=1)
    shown = conflicts(session, clock, principal, zone=zone,
                      involving=[p.id for p in plans]) if plans else []
    return CalendarOut(view=view, starts_on=first, ends_on=last, previous=previous,
                       next=following, days=days, conflicts=shown)
