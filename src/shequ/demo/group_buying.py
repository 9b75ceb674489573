"""The demo's group buying (docs/group-buying.md): four offers on demo products and a few
hundred groups over the demo window, built through ``campaigns.groups`` with a fixed
clock moved to each moment, like a live shop's:

* groups open as a Poisson process over each offer's window (``GROUPS_PER_DAY``), each
  leader a customer of the community, a "social" share of customers doing most of it;
* each group draws a number of would-be joiners (Poisson, ``JOINERS_MEAN``) who arrive
  uniformly over 1.25 × the time limit, so some come too late (``group_closed``), some
  find the group full, and some hit the per-customer limit;
* the expiry job runs as the groups' deadlines pass: a group with at least the smallest
  tier's members succeeds (orders at the tier's discount), the others expire and are
  refunded; ended offers give their leftover stock back to the catalog.

Three offers lie inside the window; the last one is still running when the demo ends (it
ends ``RUNNING_DAYS_AFTER_END`` days later) so the console has open groups to show.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from shequ.core.clock import FixedClock
from shequ.core.db import transaction
from shequ.core.errors import ShequError
from shequ.core.permissions import CLI_PRINCIPAL
from shequ.core.web import Services
from shequ.demo.generator import Community
from shequ.domains.campaigns import groups
from shequ.domains.campaigns.group_schemas import JoinIn, OfferIn, OpenIn
from shequ.domains.catalog import service as catalog

SOCIAL_SHARE = 0.3  # customers who do most of the group buying
SOCIAL_WEIGHT = 4.0  # how much likelier a social customer is to take part
TWO_UNITS_SHARE = 0.1
LATE_FACTOR = 1.25  # joiners arrive over 1.25 × the time limit
RUNNING_DAYS_AFTER_END = 7
MIN_PRODUCT_STOCK = 300


@dataclass(frozen=True)
class _Plan:
    code: str
    title: str
    tiers: tuple[tuple[int, int], ...]
    hours: int
    first_day: float  # share of the window
    last_day: float | None  # share of the window; None: runs past the end
    groups_per_day: float
    joiners_mean: float
    limit: int


PLANS = (
    _Plan("gb-tea-duo", "好友拼 · 两人成团", ((2, 10), (3, 15), (5, 25)), 24, 0.05, 0.40, 3.0,
          1.4, 2),
    _Plan("gb-care-trio", "三人团 · 护肤套装", ((3, 15), (5, 30)), 48, 0.30, 0.65, 2.0, 2.6, 2),
    _Plan("gb-snack-party", "零食派对团", ((2, 8), (4, 20), (6, 35)), 24, 0.55, 0.90, 3.5, 1.8,
          3),
    _Plan("gb-weekly", "每周拼团 · 进行中", ((2, 12), (4, 22)), 24, 0.80, None, 4.0, 1.5, 2),
)


@dataclass(order=True, frozen=True)
class _Event:
    at: datetime
    seq: int
    kind: str  # "open" | "join"
    offer: str
    group: int  # the plan-local group number
    customer: str
    quantity: int


def _products(community: Community, rng: random.Random) -> list[str]:
    """Active SKUs with enough stock for an offer, one per plan."""
    fit = [row["sku"] for row in community.products
           if row["stock"] >= MIN_PRODUCT_STOCK and row.get("is_active", True)]
    return rng.sample(sorted(fit), len(PLANS))


def _poisson(rng: random.Random, mean: float) -> int:
    count, total = 0, rng.expovariate(1.0)
    while total < mean:
        count += 1
        total += rng.expovariate(1.0)
    return count


def _events(community: Community, plan: _Plan, rng: random.Random, people: list[str],
            weights: list[float], seq: int) -> list[_Event]:
    span = community.end - community.start
    start = community.start + span * plan.first_day
    stop = community.start + span * plan.last_day if plan.last_day else community.end
    found: list[_Event] = []
    at, number = start, 0
    while True:
        at += timedelta(days=rng.expovariate(plan.groups_per_day))
        if at >= stop:
            return found
        leader = rng.choices(people, weights)[0]
        found.append(_Event(at, seq + len(found), "open", plan.code, number, leader,
                            2 if rng.random() < TWO_UNITS_SHARE else 1))
        wanted = _poisson(rng, plan.joiners_mean)
        chosen: set[str] = {leader}
        while len(chosen) < wanted + 1:
            chosen.add(rng.choices(people, weights)[0])
        for joiner in sorted(chosen - {leader}):
            when = at + timedelta(hours=rng.uniform(0, plan.hours * LATE_FACTOR))
            if when < community.end:
                found.append(_Event(when, seq + len(found), "join", plan.code, number,
                                    joiner, 2 if rng.random() < TWO_UNITS_SHARE else 1))
        number += 1


def _create_offers(services: Services, community: Community, skus: list[str]) -> int:
    span = community.end - community.start
    with transaction(services.sessions, actor="cli") as session:
        for plan, sku in zip(PLANS, skus, strict=True):
            starts = community.start + span * plan.first_day - timedelta(hours=1)
            ends = (community.start + span * plan.last_day if plan.last_day
                    else community.end + timedelta(days=RUNNING_DAYS_AFTER_END))
            # The catalog's stock now (earlier demo steps may have sold some).
            stock = catalog.get_product(session, CLI_PRINCIPAL, sku).stock
            groups.create_offer(session, FixedClock(starts), OfferIn.model_validate({
                "code": plan.code, "title": plan.title, "sku": sku,
                "tiers": [{"size": s, "percent_off": p} for s, p in plan.tiers],
                "hours": plan.hours, "starts_at": starts, "ends_at": ends,
                "stock": min(stock // 2, 600), "per_customer_limit": plan.limit}))
    return len(PLANS)


def _move(clock: FixedClock, to: datetime) -> None:
    """Move the demo's clock forward to ``to`` (never back)."""
    if to > clock.now():
        clock.advance(to - clock.now())


def run(services: Services, community: Community) -> dict[str, Any]:
    """The offers, their groups and the expiry runs; what happened, counted."""
    rng = random.Random(community.seed * 104_729 + 11)
    people = sorted(row["external_id"] for row in community.customers)
    social = set(rng.sample(people, int(len(people) * SOCIAL_SHARE)))
    weights = [SOCIAL_WEIGHT if key in social else 1.0 for key in people]
    offers = _create_offers(services, community, _products(community, rng))
    events: list[_Event] = []
    for plan in PLANS:
        events += _events(community, plan, rng, people, weights, len(events))
    events.sort()
    clock = FixedClock(community.start)
    sim = replace(services, clock=clock)
    opened: dict[tuple[str, int], int] = {}
    deadlines: list[datetime] = []
    outcomes: Counter[str] = Counter()

    def expire_until(moment: datetime) -> None:
        """Run the expiry job at each deadline that has passed by ``moment``."""
        while deadlines and deadlines[0] <= moment:
            due = heapq.heappop(deadlines)
            while deadlines and deadlines[0] <= due + timedelta(minutes=30):
                due = max(due, heapq.heappop(deadlines))
            _move(clock, due)
            groups.expire_groups(sim)

    for event in events:
        expire_until(event.at)
        _move(clock, event.at)
        key = f"demo-gb:{event.offer}:{event.group}:{event.customer}"
        try:
            with transaction(services.sessions, actor="cli") as session:
                if event.kind == "open":
                    done = groups.open_group(session, clock, OpenIn(
                        offer=event.offer, customer_external_id=event.customer,
                        quantity=event.quantity, idempotency_key=key))
                    opened[(event.offer, event.group)] = done.group.id
                    heapq.heappush(deadlines, done.group.deadline_at)
                else:
                    group_id = opened.get((event.offer, event.group))
                    if group_id is None:
                        continue  # its leader could not open it
                    groups.join_group(session, clock, JoinIn(
                        group_id=group_id, customer_external_id=event.customer,
                        quantity=event.quantity, idempotency_key=key))
        except ShequError as exc:
            outcomes[f"{event.kind}:{exc.code}"] += 1
            continue
        outcomes[f"{event.kind}:ok"] += 1
    expire_until(community.end)
    _move(clock, community.end)
    groups.expire_groups(sim)
    with transaction(services.sessions) as session:
        found = groups.all_figures(session, clock)
        broken = groups.invariant_violations(session)
    totals = Counter[str]()
    for figures in found.values():
        totals.update({"groups": figures.groups_opened, "succeeded": figures.groups_succeeded,
                       "expired": figures.groups_expired, "open": figures.groups_open,
                       "members": figures.members, "orders": figures.orders,
                       "new_customers": figures.new_customers, "gmv_fen": figures.gmv_fen})
    return {"offers": offers, **{k: totals[k] for k in (
        "groups", "succeeded", "expired", "open", "members", "orders", "new_customers",
        "gmv_fen")}, "attempts": dict(sorted(outcomes.items())),
        "invariant_violations": sum(broken.values())}
