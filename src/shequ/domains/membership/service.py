"""Membership use cases: evaluate a day, read a member, the change log and per-tier figures.

Evaluation (docs/membership.md) computes every customer's qualifying value over the 12
months ending on the day, runs :func:`shequ.stats.membership.step` and writes what changed.
It is idempotent (the state after a day is a fixed point of that day's step) and serialised:
each evaluation first takes a write lock on the ``tier_rules`` rows, so a second evaluation
of the same day waits, then finds nothing left to change.

Read-only dependencies: paid orders come from ``orders.service.purchases``; reviews and
published posts per customer (for the ``points`` basis) are counted here over lightweight
``reviews``/``posts`` table constructs, since the content service has no per-customer count.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import (
    Date,
    Integer,
    String,
    Table,
    bindparam,
    column,
    func,
    insert,
    select,
    table,
)
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session

from shequ.analytics.rollup import local_day_bounds
from shequ.core.db import UTCDateTime, transaction
from shequ.core.errors import Conflict, ValidationFailed, not_found
from shequ.core.permissions import CLI_PRINCIPAL, Principal
from shequ.core.web import Services
from shequ.domains.customers.service import customer_keys_by_id
from shequ.domains.membership.models import (
    TIER_CODES,
    EvaluationRun,
    Membership,
    TierChange,
    TierRule,
)
from shequ.domains.membership.rules import (
    DEFAULT_RULES,
    install_default_rules,
    list_rules,
    put_rule,
    put_rules,
    refuse_partners,
    rule_out,
    rule_rows,
)
from shequ.domains.membership.schemas import (
    EvaluationReport,
    FiguresOut,
    MemberOut,
    TierChangeOut,
    TierChangePage,
    TierFigures,
)
from shequ.domains.orders.service import purchases
from shequ.stats.membership import (
    CHANGE_REASONS,
    NO_GRACE,
    TIERS,
    assign_tiers,
    change_reasons,
    step,
)
from shequ.stats.value_tiers import group_figures

__all__ = [
    "DEFAULT_RULES", "WINDOW_DAYS", "current_tiers", "due_day", "evaluate", "evaluate_due",
    "figures", "install_default_rules", "last_evaluated_day", "list_changes", "list_rules",
    "member", "put_rule", "put_rules", "refuse_partners", "tier_history",
]

WINDOW_DAYS = 365
SHANGHAI = ZoneInfo("Asia/Shanghai")
CATCH_UP_DAYS = 31
FIRST_DAY = date(2000, 1, 1)  # no shop data predates it; keeps window arithmetic in range

_REVIEWS = table("reviews", column("customer_id", Integer()),
                 column("created_at", UTCDateTime()))
_POSTS = table("posts", column("customer_id", Integer()), column("created_at", UTCDateTime()),
               column("status", String()))


def _lookup(ids: NDArray[np.int64], values: NDArray[np.int64], wanted: NDArray[np.int64]
            ) -> NDArray[np.int64]:
    """``values`` (aligned with sorted ``ids``) of the ``wanted`` ids, 0 for those absent."""
    found = np.zeros(len(wanted), np.int64)
    if len(ids):
        where = np.minimum(np.searchsorted(ids, wanted), len(ids) - 1)
        hit = ids[where] == wanted
        found[hit] = values[where[hit]]
    return found


@dataclass(frozen=True)
class _Window:
    """Per customer over the 12 months ending on a day: net spend (fen) and paid orders,
    aligned with the sorted customer ``ids``."""

    ids: NDArray[np.int64]
    spend: NDArray[np.int64]
    orders: NDArray[np.int64]


def _window_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    if not FIRST_DAY <= day < date.max:
        raise ValidationFailed("day_out_of_range", f"{day} is not between {FIRST_DAY} and "
                               "9999-12-30", "day")
    return local_day_bounds(day - timedelta(days=WINDOW_DAYS - 1), day, zone)


def _spend(session: Session, day: date, zone: ZoneInfo) -> _Window:
    since, until = _window_bounds(day, zone)
    bought = purchases(session, since=since, until=until)
    ids, index = np.unique(bought.customer_ids, return_inverse=True)
    spend = np.zeros(len(ids), np.int64)
    np.add.at(spend, index, bought.total_fen)
    return _Window(ids.astype(np.int64), spend,
                   np.bincount(index, minlength=len(ids)).astype(np.int64))


def _content_counts(session: Session, day: date, zone: ZoneInfo, source: Any,
                    *where: Any) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """``(customer ids, rows)`` of ``source`` created in the window, by customer id."""
    since, until = _window_bounds(day, zone)
    rows = session.execute(
        select(source.c.customer_id, func.count()).where(
            source.c.created_at >= since, source.c.created_at < until, *where)
        .group_by(source.c.customer_id).order_by(source.c.customer_id)).all()
    return np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows], np.int64)


def _qualifying(session: Session, day: date, zone: ZoneInfo, rule: TierRule
                ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """``(customer ids, values)`` of everyone with a value on the programme's basis: fen of
    net spend, or growth points (one per whole yuan of spend plus the weight per review and
    per published post)."""
    window = _spend(session, day, zone)
    if rule.basis == "spend":
        return window.ids, window.spend
    parts = [(window.ids, window.spend // 100)]
    for weight, source, where in ((rule.points_per_review, _REVIEWS, ()),
                                  (rule.points_per_post, _POSTS,
                                   (_POSTS.c.status == "published",))):
        if weight:
            ids, counts = _content_counts(session, day, zone, source, *where)
            parts.append((ids, weight * counts))
    everyone = np.unique(np.concatenate([ids for ids, _ in parts])).astype(np.int64)
    return everyone, sum((_lookup(ids, values, everyone) for ids, values in parts),
                         np.zeros(len(everyone), np.int64))


def _lock(session: Session) -> list[TierRule]:
    # The first statement of the transaction writes: PostgreSQL locks every rule row and
    # SQLite takes its write lock, so concurrent evaluations run one after the other and
    # each sees what the previous one committed.
    session.execute(sql_update(TierRule).values(rank=TierRule.rank)
                    .execution_options(synchronize_session=False))
    rules = rule_rows(session)
    if len(rules) != len(TIERS):
        raise Conflict("tier_rules_missing", "every tier needs a rule before evaluating: "
                       "install the defaults (`shequ membership rules --install`) or PUT them")
    return rules


def last_evaluated_day(session: Session) -> date | None:
    """The latest evaluated day, if any."""
    return session.scalar(select(func.max(EvaluationRun.day)))


def _ordinal(value: date | None) -> int:
    return NO_GRACE if value is None else value.toordinal()


def _day(value: int) -> date | None:
    return None if value == NO_GRACE else date.fromordinal(value)


@dataclass
class _Standing:
    """Every evaluated customer's state before and after the step, aligned arrays."""

    ids: NDArray[np.int64]
    has_row: NDArray[np.bool_]
    tier: NDArray[np.int64]
    grace: NDArray[np.int64]
    stored_value: NDArray[np.int64]
    evaluated_on: NDArray[np.int64]


def _standing(session: Session, wanted: NDArray[np.int64]) -> _Standing:
    rows = session.execute(select(Membership.customer_id, Membership.tier,
                                  Membership.grace_until, Membership.qualified_value,
                                  Membership.evaluated_on)).all()
    stored = {r[0]: r for r in rows}
    ids = np.union1d(wanted, np.array(list(stored), np.int64)).astype(np.int64)
    found = [stored.get(int(i)) for i in ids]
    return _Standing(
        ids=ids, has_row=np.array([r is not None for r in found], np.bool_),
        tier=np.array([TIER_CODES.index(r[1]) if r else 0 for r in found], np.int64),
        grace=np.array([_ordinal(r[2]) if r else NO_GRACE for r in found], np.int64),
        stored_value=np.array([r[3] if r else -1 for r in found], np.int64),
        evaluated_on=np.array([r[4].toordinal() if r else 0 for r in found], np.int64))


def _write(session: Session, day: date, before: _Standing, value: NDArray[np.int64],
           tier: NDArray[np.int8], grace: NDArray[np.int64], reasons: NDArray[np.int8]) -> None:
    """Conditional UPDATEs of the rows that moved, INSERTs of new members, history rows."""
    moved = tier != before.tier
    touched = before.has_row & ((reasons != 0) | (value != before.stored_value)
                                | (before.evaluated_on != day.toordinal()))
    updates = [{
        "b_id": int(before.ids[i]), "b_tier": TIER_CODES[before.tier[i]],
        "b_grace": _day(int(before.grace[i])), "n_tier": TIER_CODES[tier[i]],
        "n_grace": _day(int(grace[i])), "n_value": int(value[i]), "n_moved": bool(moved[i]),
    } for i in np.flatnonzero(touched)]
    if updates:
        table_ = Membership.__table__
        assert isinstance(table_, Table)
        statement = sql_update(table_).where(
            table_.c.customer_id == bindparam("b_id"), table_.c.tier == bindparam("b_tier"),
            table_.c.grace_until.is_not_distinct_from(bindparam("b_grace", type_=Date()))
        ).values(tier=bindparam("n_tier"), grace_until=bindparam("n_grace", type_=Date()),
                 qualified_value=bindparam("n_value"), evaluated_on=day,
                 since=func.coalesce(bindparam("n_since", type_=Date()), table_.c.since))
        for row in updates:
            row["n_since"] = day if row.pop("n_moved") else None
        done = session.execute(statement, updates)
        if done.rowcount != len(updates):  # type: ignore[attr-defined]
            raise Conflict("membership_changed_concurrently", "memberships changed during "
                           "the evaluation; run it again")
    new = np.flatnonzero(~before.has_row & (tier > 0))
    if len(new):
        session.execute(insert(Membership), [{
            "customer_id": int(before.ids[i]), "tier": TIER_CODES[tier[i]],
            "qualified_value": int(value[i]), "since": day, "grace_until": _day(int(grace[i])),
            "evaluated_on": day} for i in new])
    changed = np.flatnonzero(reasons != 0)
    if len(changed):
        session.execute(insert(TierChange), [{
            "customer_id": int(before.ids[i]), "day": day,
            "from_tier": TIER_CODES[before.tier[i]], "to_tier": TIER_CODES[tier[i]],
            "reason": CHANGE_REASONS[reasons[i]], "qualified_value": int(value[i]),
            "grace_until": _day(int(grace[i]))} for i in changed])


def _evaluate(session: Session, services: Services, day: date) -> EvaluationReport:
    rules = _lock(session)
    last = last_evaluated_day(session)
    if last is not None and day < last:
        raise Conflict("day_before_last_evaluation", f"{day} is before the last evaluated day "
                       f"{last}: days are evaluated in order", "day")
    valued, values = _qualifying(session, day, services.settings.zone, rules[0])
    before = _standing(session, valued)
    value = _lookup(valued, values, before.ids)
    target = assign_tiers(value, [rule.threshold for rule in rules])
    after = step(before.tier, target, before.grace, day.toordinal(),
                 [rule.grace_days for rule in rules])
    reasons = change_reasons(before.tier, before.grace, after)
    _write(session, day, before, value, after.tier, after.grace_until, reasons)
    counts = np.bincount(reasons, minlength=len(CHANGE_REASONS))
    run = session.get(EvaluationRun, day)
    if run is None:
        run = EvaluationRun(day=day, changes=0)
        session.add(run)
    run.evaluated_at, run.customers = services.clock.now(), len(before.ids)
    run.changes += int(counts[1:].sum())
    held = np.bincount(after.tier, minlength=len(TIER_CODES))
    return EvaluationReport(
        day=day, basis=rules[0].basis, customers=len(before.ids),
        members={code: int(held[rank]) for rank, code in enumerate(TIER_CODES) if rank},
        upgrades=int(counts[1]), downgrades=int(counts[2]), grace_started=int(counts[3]),
        grace_cancelled=int(counts[4]))


def _local_today(services: Services) -> date:
    return services.clock.now().astimezone(services.settings.zone).date()


def due_day(services: Services) -> date:
    """The day a scheduled evaluation covers: yesterday in the business time zone."""
    return _local_today(services) - timedelta(days=1)


def evaluate(services: Services, day: date, *,
             principal: Principal = CLI_PRINCIPAL) -> EvaluationReport:
    """Evaluate every customer on ``day`` (a business-time-zone day, at most today) in one
    transaction. Evaluating the same day again changes nothing unless orders or content of
    the window changed meanwhile; a day before the last evaluated one is refused."""
    refuse_partners(principal)
    if day > _local_today(services):
        raise ValidationFailed("day_in_future", f"{day} has not begun yet", "day")
    with transaction(services.sessions, clock=services.clock) as session:
        return _evaluate(session, services, day)


def evaluate_due(services: Services) -> list[EvaluationReport]:
    """The worker's job: evaluate yesterday (business time zone) and any days missed since
    the last evaluation (at most :data:`CATCH_UP_DAYS`); nothing when yesterday is done."""
    yesterday = due_day(services)
    with transaction(services.sessions) as session:
        last = last_evaluated_day(session)
        if rule_rows(session) == [] or (last is not None and last >= yesterday):
            return []
    first = yesterday if last is None else max(last + timedelta(days=1),
                                               yesterday - timedelta(days=CATCH_UP_DAYS - 1))
    return [evaluate(services, first + timedelta(days=n))
            for n in range((yesterday - first).days + 1)]


def current_tiers(session: Session, *,
                  customer_ids: Iterable[int] | None = None) -> dict[int, str]:
    """``customer id -> tier code`` of every customer holding a tier now, or only of
    ``customer_ids`` (a page of a list)."""
    query = select(Membership.customer_id, Membership.tier).where(Membership.tier != "none")
    if customer_ids is not None:
        query = query.where(Membership.customer_id.in_(sorted(set(customer_ids))))
    return dict(session.execute(query).tuples().all())


def _change_out(row: TierChange) -> TierChangeOut:
    return TierChangeOut.model_validate(row, from_attributes=True)


def tier_history(session: Session, customer_id: int) -> list[TierChangeOut]:
    """A customer's tier changes, oldest first (the growth trajectory of the 360° view)."""
    return [_change_out(row) for row in session.scalars(
        select(TierChange).where(TierChange.customer_id == customer_id)
        .order_by(TierChange.day, TierChange.id))]


def member(session: Session, customer_id: int, *,
           principal: Principal = CLI_PRINCIPAL) -> MemberOut:
    """A customer's standing, the benefits of their tier, the value still missing for the
    next tier and their history; a customer who never held a tier has standing ``none``."""
    refuse_partners(principal)
    key = customer_keys_by_id(session, [customer_id]).get(customer_id)
    if key is None:
        raise not_found("customer", customer_id)
    row = session.get(Membership, customer_id)
    rules = [rule_out(rule) for rule in rule_rows(session)]
    tier = row.tier if row is not None else "none"
    held = next((rule for rule in rules if rule.code == tier), None)
    value = row.qualified_value if row is not None else 0
    above = next((rule for rule in rules if rule.rank > (held.rank if held else 0)), None)
    return MemberOut(
        customer_id=customer_id, customer_external_id=key, tier=tier,
        tier_name=held.name if held else None, basis=rules[0].basis if rules else None,
        qualified_value=value, since=row.since if row else None,
        grace_until=row.grace_until if row else None,
        evaluated_on=row.evaluated_on if row else None,
        next_tier=above.code if above else None,
        missing_for_next=max(above.threshold - value, 0) if above else None,
        benefits=held.benefits if held else [],
        history=tier_history(session, customer_id))


def list_changes(session: Session, *, day: date | None = None, after: int | None = None,
                 limit: int = 50, principal: Principal = CLI_PRINCIPAL) -> TierChangePage:
    """Tier changes in id order, optionally of one day; page on with ``after``."""
    refuse_partners(principal)
    query = select(TierChange).order_by(TierChange.id).limit(limit + 1)
    if day is not None:
        query = query.where(TierChange.day == day)
    if after is not None:
        query = query.where(TierChange.id > after)
    rows = list(session.scalars(query))
    items = [_change_out(row) for row in rows[:limit]]
    return TierChangePage(items=items, next_after=items[-1].id if len(rows) > limit else None)


def figures(session: Session, day: date, *, zone: ZoneInfo = SHANGHAI,
            principal: Principal = CLI_PRINCIPAL) -> FiguresOut:
    """Per tier, over the 12 months ending ``day``: customers, net spend and its share,
    average spend and its multiple of the average of buyers without a tier, and the
    repurchase rate (share with at least two paid orders). Tiers are the current ones;
    the ``none`` row covers the buyers of the window without a tier."""
    refuse_partners(principal)
    window = _spend(session, day, zone)
    tiers = current_tiers(session)
    ids = np.union1d(window.ids, np.array(sorted(tiers), np.int64)).astype(np.int64)
    groups = np.array([TIER_CODES.index(tiers.get(int(i), "none")) for i in ids], np.int64)
    rows = group_figures(groups, _lookup(window.ids, window.spend, ids),
                         _lookup(window.ids, window.orders, ids),
                         base=0, labels=range(len(TIER_CODES)))
    return FiguresOut(
        day=day, window_from=day - timedelta(days=WINDOW_DAYS - 1),
        items=[TierFigures(tier=TIER_CODES[row.group],
                           customers=row.customers, spend_fen=round(row.spend),
                           spend_share=row.gmv_share, average_spend_fen=row.average_spend,
                           spend_multiple=row.spend_multiple,
                           repurchase_rate=row.repurchase_rate) for row in rows])
