"""Lifecycle use cases: the daily stage refresh, snapshots, transitions, LTV per stage and
the per-stage strategies. Stage rules in :mod:`shequ.stats.lifecycle`, semantics in
docs/lifecycle.md.

A refresh judges every customer on every day of its range from behaviour read once
(:mod:`.features`), vectorised over customers, and stores only the changes. It is
idempotent (a range is replaced, never appended to) and two refreshes never interleave
their writes: on PostgreSQL a transaction-scoped advisory lock serialises them, on SQLite
the first statement of the write transaction is a write, which takes the database's write
lock.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import Select, Table, and_, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shequ.analytics.rollup import DEFAULT_TZ, local_day_bounds
from shequ.core.clock import Clock
from shequ.core.days import day_number, day_of, instants, local_days
from shequ.core.db import transaction
from shequ.core.errors import ValidationFailed
from shequ.core.permissions import Principal
from shequ.core.web import Services
from shequ.domains.events.service import event_store
from shequ.domains.lifecycle.features import (
    Behaviour,
    order_bounds,
    read_behaviour,
    realised_spend,
)
from shequ.domains.lifecycle.models import LifecycleChange, LifecycleDaily, LifecycleStrategy
from shequ.domains.lifecycle.schemas import (
    CustomerLifecycle,
    LtvByStage,
    RefreshReport,
    SeriesPoint,
    Snapshot,
    Stage,
    StageChange,
    StageValue,
    StrategyIn,
    StrategyOut,
    TransitionMatrix,
)
from shequ.domains.segments import service as segments
from shequ.stats.lifecycle import (
    ABSENT,
    DEFAULT_CONFIG,
    STAGES,
    LifecycleConfig,
    StageArray,
    classify,
    entered,
    stage_counts,
    transition_matrix,
)

__all__ = [
    "DEFAULT_STRATEGIES", "MAX_RANGE_DAYS", "current_stages", "customer_lifecycle",
    "data_window", "history", "install_default_strategies", "ltv_by_stage", "refresh",
    "refresh_due", "refuse_partners", "series", "snapshot", "stage_of", "strategies",
    "transition_series", "transitions", "update_strategy",
]

MAX_RANGE_DAYS = 366
# Days far outside any business history are typos; they would also overflow the
# look-back arithmetic near date.min and date.max.
EARLIEST_DAY, LATEST_DAY = date(1970, 1, 1), date(2999, 12, 31)
# Any constant works: it only has to be the same in every process refreshing stages.
REFRESH_LOCK_KEY = 0x5E0C1F
ProgressFn = Callable[[int, int], None]
DEFAULT_ZONE = ZoneInfo(DEFAULT_TZ)
# Core inserts of the tables, not the ORM's bulk path: tens of thousands of changes a run.
_CHANGES = cast(Table, LifecycleChange.__table__)
_DAILY = cast(Table, LifecycleDaily.__table__)
SEGMENT_KEY = re.compile(r"[a-z0-9][a-z0-9_-]*")

DEFAULT_STRATEGIES: dict[str, StrategyIn] = {
    "new": StrategyIn(action="coupon", channel="app", message="新人专享：首单立减20元",
                      note="Turn a sign-up into a first order within its first 30 days."),
    "active": StrategyIn(action="push", channel="app", message="为你精选的好物和真实测评",
                         note="Browsers who have not paid: recommendations and reviews."),
    "paying": StrategyIn(action="coupon", channel="app", message="老客复购券已到账",
                         note="One order so far: a repurchase coupon towards loyal."),
    "loyal": StrategyIn(action="invite_to_hub", channel="wecom", message="邀请你加入会员社群",
                        note="Repeat buyers: the community hub and member care."),
    "advocate": StrategyIn(action="creator_invite", channel="wecom",
                           message="邀请你成为社区达人，分享好物赚积分",
                           note="Their content sells: creator programme and rewards."),
    "dormant": StrategyIn(action="sms", channel="sms", message="好久不见，回归礼包等你领取",
                          note="Lapsed: a win-back offer."),
}


def refuse_partners(principal: Principal) -> None:
    """Lifecycle figures cover every customer: brand partners may not see them."""
    principal.refuse_if_partner("platform_wide_lifecycle", "lifecycle stages cover every "
                                "customer of the platform; partners cannot see them")


def _checked_day(day: date, attr: str) -> None:
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise ValidationFailed("day_out_of_range", f"{day} is outside {EARLIEST_DAY} … "
                               f"{LATEST_DAY}", attr)


def _checked_range(first: date, last: date) -> None:
    _checked_day(first, "from")
    _checked_day(last, "to")
    if last < first:
        raise ValidationFailed("bad_range", f"to ({last}) is before from ({first})", "to")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise ValidationFailed("range_too_long", f"at most {MAX_RANGE_DAYS} days at a time, "
                               f"got {(last - first).days + 1}", "to")


# --- the refresh ---------------------------------------------------------------------------

def _judge(behaviour: Behaviour, first: int, last: int, config: LifecycleConfig,
           on_progress: ProgressFn | None) -> StageArray:
    """Stage numbers, one row per day of ``first..last``, one column per customer."""
    days = last - first + 1
    stages = np.empty((days, len(behaviour.customer_ids)), dtype=np.int8)
    for offset in range(days):
        stages[offset] = classify(behaviour.features_on(first + offset, config), config)
        if on_progress is not None:
            on_progress(offset + 1, days)
    return stages


def _stages_query(day: date) -> Select[tuple[int, str]]:
    """(customer id, stage) of every customer as of ``day``: its latest change."""
    latest = (select(LifecycleChange.customer_id, func.max(LifecycleChange.day).label("day"))
              .where(LifecycleChange.day <= day).group_by(LifecycleChange.customer_id)
              .subquery())
    return (select(LifecycleChange.customer_id, LifecycleChange.to_stage)
            .join(latest, and_(LifecycleChange.customer_id == latest.c.customer_id,
                               LifecycleChange.day == latest.c.day)))


def _stage_array(session: Session, ids: np.ndarray, day: date) -> StageArray:
    """Stored stage numbers on ``day`` aligned with the sorted ``ids`` (ABSENT if none)."""
    found = np.full(len(ids), ABSENT, dtype=np.int8)
    rows = session.execute(_stages_query(day)).all()
    if rows and len(ids):
        customer = np.array([row[0] for row in rows], dtype=np.int64)
        code = np.array([STAGES.index(row[1]) for row in rows], dtype=np.int8)
        where = np.minimum(np.searchsorted(ids, customer), len(ids) - 1)
        known = ids[where] == customer
        found[where[known]] = code[known]
    return found


def _lock(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": REFRESH_LOCK_KEY})


def _change_rows(ids: np.ndarray, previous: StageArray, stages: StageArray,
                 first: date) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    before = previous
    for offset, today in enumerate(stages):
        moved = np.nonzero((today != before) & (today >= 0))[0]
        day = first + timedelta(days=offset)
        rows.extend({"customer_id": int(ids[i]), "day": day,
                     "from_stage": STAGES[before[i]] if before[i] >= 0 else None,
                     "to_stage": STAGES[today[i]]} for i in moved)
        before = today
    return rows


def _patch_next_changes(session: Session, ids: np.ndarray, last: date,
                        final: StageArray) -> None:
    """Keep the first stored change after ``last`` consistent with the recomputed stage
    on ``last``: its ``from_stage`` follows it, and it goes when it is no change any more."""
    following = (select(LifecycleChange.customer_id, func.min(LifecycleChange.day).label("day"))
                 .where(LifecycleChange.day > last).group_by(LifecycleChange.customer_id)
                 .subquery())
    rows = session.execute(
        select(LifecycleChange.id, LifecycleChange.customer_id, LifecycleChange.from_stage,
               LifecycleChange.to_stage)
        .join(following, and_(LifecycleChange.customer_id == following.c.customer_id,
                              LifecycleChange.day == following.c.day))).all()
    gone: list[int] = []
    changed: list[dict[str, object]] = []
    for change_id, customer_id, from_stage, to_stage in rows:
        where = int(np.searchsorted(ids, customer_id))
        if where >= len(ids) or ids[where] != customer_id or final[where] < 0:
            continue
        now = STAGES[final[where]]
        if to_stage == now:
            gone.append(change_id)
        elif from_stage != now:
            changed.append({"id": change_id, "from_stage": now})
    if gone:
        session.execute(delete(LifecycleChange).where(LifecycleChange.id.in_(gone)))
    if changed:
        session.execute(update(LifecycleChange), changed)


def _write(session: Session, behaviour: Behaviour, first: date, last: date,
           stages: StageArray) -> int:
    ids = behaviour.customer_ids
    _lock(session)
    # The first statement writes, so on SQLite this transaction holds the write lock from
    # here on and a concurrent refresh waits instead of interleaving.
    session.execute(delete(LifecycleChange).where(LifecycleChange.day.between(first, last)))
    previous = _stage_array(session, ids, first - timedelta(days=1))
    rows = _change_rows(ids, previous, stages, first)
    if rows:
        session.execute(insert(_CHANGES), rows)
    _patch_next_changes(session, ids, last, stages[-1])
    session.execute(delete(LifecycleDaily).where(LifecycleDaily.day.between(first, last)))
    daily = [{"day": first + timedelta(days=offset), "stage": stage, "customers": int(count)}
             for offset, today in enumerate(stages)
             for stage, count in zip(STAGES, stage_counts(today), strict=True)]
    session.execute(insert(_DAILY), daily)
    return len(rows)


def refresh(services: Services, first_day: date, last_day: date, *,
            config: LifecycleConfig = DEFAULT_CONFIG,
            referrals: Iterable[tuple[int, date]] = (),
            on_progress: ProgressFn | None = None) -> RefreshReport:
    """Judge every customer's stage on each local day ``first_day..last_day`` and store the
    changes and the daily counts, replacing what those days held.

    ``referrals`` are ``(referring customer id, local day)`` pairs, counted towards
    ``advocate`` exactly like converting UGC (the referral programme arrives later and
    passes its referrals here). ``on_progress(days_done, days)`` follows the judging.
    """
    _checked_range(first_day, last_day)
    started = time.perf_counter()
    zone = services.settings.zone
    with transaction(services.sessions) as session:
        behaviour = read_behaviour(session, event_store(services), zone, first_day, last_day,
                                   config, referrals)
    stages = _judge(behaviour, day_number(first_day), day_number(last_day), config,
                    on_progress)
    with transaction(services.sessions) as session:
        written = _write(session, behaviour, first_day, last_day, stages)
    return RefreshReport(first_day=first_day, last_day=last_day,
                         customers=len(behaviour.customer_ids), changes_written=written,
                         seconds=round(time.perf_counter() - started, 3))


def refresh_due(services: Services) -> RefreshReport:
    """The scheduled job: yesterday (local) judged with the default rules."""
    today = services.clock.now().astimezone(services.settings.zone).date()
    yesterday = today - timedelta(days=1)
    return refresh(services, yesterday, yesterday)


def data_window(services: Services) -> tuple[date, date]:
    """The local days from the first to the last event or order: the default refresh range."""
    store = event_store(services)
    events = store.table("events")
    bounds = store.to_arrow(events.aggregate(first=events.ts.min(), last=events.ts.max()))
    moments: list[datetime] = [m for m in (bounds["first"][0].as_py(),
                                           bounds["last"][0].as_py()) if m is not None]
    with services.sessions() as session:
        moments += order_bounds(session)
    if not moments:
        raise ValidationFailed("no_data", "no events and no orders yet: nothing to judge",
                               "from")
    days = local_days(instants(moments), services.settings.zone)
    return day_of(int(days.min())), day_of(int(days.max()))


# --- reading stages ------------------------------------------------------------------------

def _counts(found: Mapping[str, int]) -> dict[Stage, int]:
    return {stage: int(found.get(stage, 0)) for stage in STAGES}  # type: ignore[misc]


def current_stages(session: Session, day: date | None = None, *,
                   customer_ids: Iterable[int] | None = None) -> dict[int, str]:
    """Customer id → stage as of ``day`` (default: the latest change of each customer), of
    every customer or only of ``customer_ids`` (a page of a list)."""
    query = _stages_query(day or date.max)
    if customer_ids is not None:
        query = query.where(LifecycleChange.customer_id.in_(sorted(set(customer_ids))))
    return dict(session.execute(query).tuples().all())


def snapshot(session: Session, day: date) -> Snapshot:
    """Customers per stage on ``day``: each customer's latest change at or before it."""
    stages = _stages_query(day).subquery()
    found = dict(session.execute(select(stages.c.to_stage, func.count())
                                 .group_by(stages.c.to_stage)).tuples().all())
    counts = _counts(found)
    return Snapshot(day=day, counts=counts, total=sum(counts.values()))


def stage_of(session: Session, customer_id: int, day: date | None = None) -> Stage | None:
    """The customer's stage on ``day`` (default: its latest), None before its first one."""
    query = (select(LifecycleChange.to_stage).where(LifecycleChange.customer_id == customer_id)
             .order_by(LifecycleChange.day.desc()).limit(1))
    if day is not None:
        query = query.where(LifecycleChange.day <= day)
    stage: Stage | None = session.scalar(query)
    return stage


def history(session: Session, customer_id: int) -> list[StageChange]:
    """The customer's stage changes, oldest first (its growth path)."""
    rows = session.execute(
        select(LifecycleChange.day, LifecycleChange.from_stage, LifecycleChange.to_stage)
        .where(LifecycleChange.customer_id == customer_id).order_by(LifecycleChange.day)).all()
    return [StageChange(day=day, from_stage=old, to_stage=new) for day, old, new in rows]


def customer_lifecycle(session: Session, customer_id: int) -> CustomerLifecycle:
    """The customer's latest stage and its history (the 360° page's growth trajectory)."""
    changes = history(session, customer_id)
    return CustomerLifecycle(customer_id=customer_id,
                             stage=changes[-1].to_stage if changes else None,
                             history=changes)


def _aligned(session: Session, day_before: date, day_after: date
             ) -> tuple[StageArray, StageArray]:
    before = current_stages(session, day_before)
    after = current_stages(session, day_after)
    ids = np.array(sorted(set(before) | set(after)), dtype=np.int64)
    return (np.array([STAGES.index(before[i]) if i in before else ABSENT for i in ids.tolist()],
                     dtype=np.int8),
            np.array([STAGES.index(after[i]) if i in after else ABSENT for i in ids.tolist()],
                     dtype=np.int8))


def transitions(session: Session, from_day: date, to_day: date) -> TransitionMatrix:
    """Stage on ``from_day`` against stage on ``to_day``, every customer counted once."""
    _checked_day(from_day, "from")
    _checked_day(to_day, "to")
    if to_day < from_day:
        raise ValidationFailed("bad_range", f"to ({to_day}) is before from ({from_day})", "to")
    before, after = _aligned(session, from_day, to_day)
    arrived = entered(before, after)
    return TransitionMatrix(from_day=from_day, to_day=to_day, stages=list(STAGES),
                            matrix=transition_matrix(before, after).tolist(),
                            entered=_counts(dict(zip(STAGES, arrived.tolist(), strict=True))))


def transition_series(session: Session, first: date, last: date, step_days: int = 7
                      ) -> list[TransitionMatrix]:
    """Matrices over consecutive periods of ``step_days`` from ``first`` up to ``last``
    (weekly by default): how the flows between stages change over time."""
    _checked_range(first, last)
    if not 1 <= step_days <= 92:
        raise ValidationFailed("bad_step", f"step_days must be 1 to 92, got {step_days}",
                               "step_days")
    starts = range(0, (last - first).days, step_days)
    return [transitions(session, first + timedelta(days=offset),
                        min(first + timedelta(days=offset + step_days), last))
            for offset in starts]


def series(session: Session, first: date, last: date) -> list[SeriesPoint]:
    """Customers per stage for each refreshed day of ``first..last``."""
    _checked_range(first, last)
    rows = session.execute(select(LifecycleDaily.day, LifecycleDaily.stage,
                                  LifecycleDaily.customers)
                           .where(LifecycleDaily.day.between(first, last))
                           .order_by(LifecycleDaily.day)).all()
    per_day: dict[date, dict[str, int]] = {}
    for day, stage, customers in rows:
        per_day.setdefault(day, {})[stage] = customers
    return [SeriesPoint(day=day, counts=_counts(found)) for day, found in per_day.items()]


def ltv_by_stage(session: Session, day: date, predicted_clv: Mapping[int, int] | None = None,
                 *, zone: ZoneInfo = DEFAULT_ZONE) -> LtvByStage:
    """Average realised net spend to date of each stage's customers on ``day`` (orders paid
    by the end of ``day`` in ``zone``, less those refunded by then; customers without
    orders count as 0); with ``predicted_clv`` (customer id → fen) also their average
    predicted CLV (customers missing from it count as 0)."""
    _checked_day(day, "day")
    stages = current_stages(session, day)
    spent = realised_spend(session, local_day_bounds(day, day, zone)[1])
    members: dict[str, list[int]] = {stage: [] for stage in STAGES}
    for customer_id, stage in stages.items():
        members[stage].append(customer_id)
    values = []
    for stage, ids in members.items():
        predicted = None
        if predicted_clv is not None:
            predicted = _mean(sum(predicted_clv.get(i, 0) for i in ids), len(ids))
        values.append(StageValue(stage=stage, customers=len(ids),
                                 avg_realised_fen=_mean(sum(spent.get(i, 0) for i in ids),
                                                        len(ids)),
                                 avg_predicted_clv_fen=predicted))
    return LtvByStage(day=day, stages=values)


def _mean(total: int, count: int) -> int:
    return round(total / count) if count else 0


# --- strategies ------------------------------------------------------------------------------

def _strategy_out(stage: str, row: LifecycleStrategy | None) -> StrategyOut:
    if row is None:
        return StrategyOut(stage=stage, **DEFAULT_STRATEGIES[stage].model_dump())
    return StrategyOut(stage=stage, segment_key=row.segment_key, action=row.action,
                       channel=row.channel, message=row.message, note=row.note,
                       updated_by=row.updated_by, updated_at=row.updated_at)


def strategies(session: Session) -> list[StrategyOut]:
    """The strategy of every stage, in ladder order; a stage never edited shows its
    default (``updated_at`` None)."""
    stored = {row.stage: row for row in session.scalars(select(LifecycleStrategy))}
    return [_strategy_out(stage, stored.get(stage)) for stage in STAGES]


def install_default_strategies(session: Session) -> int:
    """Store the default strategy of every stage that has none (idempotent); returns how
    many were stored."""
    installed = 0
    for stage, default in DEFAULT_STRATEGIES.items():
        if session.get(LifecycleStrategy, stage) is not None:
            continue
        try:
            with session.begin_nested():
                session.add(LifecycleStrategy(stage=stage, **default.model_dump()))
        except IntegrityError:  # installed by a concurrent caller meanwhile
            continue
        installed += 1
    return installed


def _checked_stage(stage: str) -> str:
    if stage not in STAGES:
        raise ValidationFailed("unknown_stage", f"no stage {stage!r}; known: "
                               f"{', '.join(STAGES)}", "stage")
    return stage


def update_strategy(session: Session, clock: Clock, principal: Principal, stage: str,
                    data: StrategyIn) -> StrategyOut:
    """Replace a stage's strategy. Concurrent updates of one stage serialise on its row
    (the last one wins, neither fails)."""
    refuse_partners(principal)
    _checked_stage(stage)
    _checked_segment(session, data.segment_key)
    fields = {**data.model_dump(), "updated_by": principal.actor,
              "updated_at": clock.now()}
    row = session.get(LifecycleStrategy, stage, with_for_update=True)
    if row is None:
        try:
            with session.begin_nested():
                row = LifecycleStrategy(stage=stage, **fields)
                session.add(row)
        except IntegrityError:  # a concurrent first update stored the row: update it
            row = session.get(LifecycleStrategy, stage, with_for_update=True,
                              populate_existing=True)
            if row is None:
                raise
    for name, value in fields.items():
        setattr(row, name, value)
    session.flush()
    return _strategy_out(stage, row)


def _checked_segment(session: Session, key: str | None) -> None:
    """A strategy's segment must be a saved segment's key."""
    if key is None:
        return
    if not SEGMENT_KEY.fullmatch(key):
        raise ValidationFailed("bad_segment_key", "a segment key is lower-case letters, "
                               "digits, '_' and '-', starting with a letter or digit",
                               "segment_key")
    if not segments.key_exists(session, key):
        raise ValidationFailed("unknown_segment", f"no saved segment {key!r}", "segment_key")
