"""The KOC certification ladder: levels with criteria, evaluation of every creator with
the checks that decided each level, and the change history.

Evaluation is serialised by a write lock on the ``ladder_levels`` rows (the first statement
of its transaction), idempotent (a second run of the same instant finds every creator on
the level it computes and writes no change) and refuses instants before the last one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from shequ.core.clock import Clock
from shequ.core.errors import Conflict, ValidationFailed, not_found
from shequ.core.permissions import CLI_PRINCIPAL, Principal
from shequ.domains.community.academy import completed_counts, refuse_partners, required_total
from shequ.domains.community.models import (
    LEVEL_CODES,
    CreatorStanding,
    LadderLevel,
    LadderRun,
    LevelChange,
)
from shequ.domains.community.models import HubMembership as _Membership
from shequ.domains.community.schemas import (
    CriterionCheck,
    LadderReport,
    LevelChangeOut,
    LevelChangePage,
    LevelIn,
    LevelOut,
    StandingOut,
)
from shequ.domains.community.sources import (
    CreatorRef,
    all_creators,
    creator_by_key,
    creator_keys,
    post_stats,
)
from shequ.domains.content.schemas import CreatorPostStats

RANKS = {code: rank for rank, code in enumerate(LEVEL_CODES)}
MINIMUMS = ("min_posts", "min_mean_quality", "min_orders", "min_academy_tasks",
            "min_hub_days")

#: The default ladder. Quality is the content domain's 0-100 post quality score.
DEFAULT_LEVELS: Mapping[str, LevelIn] = {
    "newcomer": LevelIn(name="新人"),
    "certified": LevelIn(name="认证KOC", min_posts=3, min_mean_quality=40,
                         min_academy_tasks=3, required_tasks_done=True),
    "senior": LevelIn(name="资深KOC", min_posts=6, min_mean_quality=50, min_orders=2,
                      min_academy_tasks=4, required_tasks_done=True, min_hub_days=30),
    "core": LevelIn(name="核心创作者", min_posts=10, min_mean_quality=60, min_orders=5,
                    min_academy_tasks=5, required_tasks_done=True, min_hub_days=60),
}


# --- levels ------------------------------------------------------------------------------


def level_out(row: LadderLevel) -> LevelOut:
    """The contract of a stored level."""
    return LevelOut(code=row.code, rank=row.rank, name=row.name,
                    window_days=row.window_days, min_posts=row.min_posts,
                    min_mean_quality=row.min_mean_quality, min_orders=row.min_orders,
                    min_academy_tasks=row.min_academy_tasks,
                    required_tasks_done=row.required_tasks_done,
                    min_hub_days=row.min_hub_days, updated_at=row.updated_at)


def level_rows(session: Session) -> list[LadderLevel]:
    """The stored levels, lowest first."""
    return list(session.scalars(select(LadderLevel).order_by(LadderLevel.rank)))


def list_levels(session: Session, *, principal: Principal = CLI_PRINCIPAL) -> list[LevelOut]:
    """Every level with its criteria, lowest first."""
    refuse_partners(principal)
    return [level_out(row) for row in level_rows(session)]


def check_ladder(levels: Mapping[str, LevelIn]) -> None:
    """Refuse a ladder that cannot rank creators: ``newcomer`` (everyone's first level)
    needs nothing, and no minimum may fall from one level to the next."""
    if "newcomer" in levels:
        first = levels["newcomer"]
        for attr in (*MINIMUMS, "required_tasks_done"):
            if getattr(first, attr):
                raise ValidationFailed("newcomer_has_criteria", "newcomer is every creator's "
                                       f"first level and needs nothing: {attr} must be 0 "
                                       "(false)", attr)
    ordered = sorted(levels.items(), key=lambda item: RANKS[item[0]])
    for (low_code, low), (high_code, high) in pairwise(ordered):
        for attr in (*MINIMUMS, "required_tasks_done"):
            if getattr(high, attr) < getattr(low, attr):
                raise ValidationFailed(
                    "criteria_decreasing", f"{high_code} {attr} ({getattr(high, attr)}) is "
                    f"below {low_code} {attr} ({getattr(low, attr)}): a higher level cannot "
                    "be easier", attr)


def _store(session: Session, clock: Clock, levels: Mapping[str, LevelIn]) -> None:
    existing = {row.code: row for row in level_rows(session)}
    for code, data in levels.items():
        row = existing.get(code)
        if row is None:
            row = LadderLevel(code=code, rank=RANKS[code])
            session.add(row)
        for attr, value in data.model_dump().items():
            setattr(row, attr, value)
        row.updated_at = clock.now()
    session.flush()


def _current(session: Session) -> dict[str, LevelIn]:
    return {row.code: LevelIn.model_validate(level_out(row).model_dump(
        include=set(LevelIn.model_fields))) for row in level_rows(session)}


def put_level(session: Session, clock: Clock, code: str, data: LevelIn, *,
              principal: Principal = CLI_PRINCIPAL) -> LevelOut:
    """Create or replace one level's criteria, checked against the other levels."""
    refuse_partners(principal)
    if code not in RANKS:
        raise not_found("level", code)
    check_ladder(_current(session) | {code: data})
    _store(session, clock, {code: data})
    return next(level for level in list_levels(session) if level.code == code)


def install_default_levels(session: Session, clock: Clock) -> list[LevelOut]:
    """File :data:`DEFAULT_LEVELS` that are missing; levels already there are kept."""
    present = {row.code for row in level_rows(session)}
    missing = {code: data for code, data in DEFAULT_LEVELS.items() if code not in present}
    if missing:
        check_ladder(_current(session) | missing)
        _store(session, clock, missing)
    return list_levels(session)


# --- judging -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    """Everything the criteria look at, for every creator, at one instant."""

    as_of: datetime
    stats: dict[int, dict[int, CreatorPostStats]]  # window days -> customer id -> figures
    tasks: dict[int, tuple[int, int]]
    required: int
    first_joined: dict[int, datetime]


def gather(session: Session, levels: Sequence[LevelOut], as_of: datetime) -> Inputs:
    """Read the inputs of every level's criteria at ``as_of``."""
    windows = sorted({level.window_days for level in levels})
    joined = session.execute(select(_Membership.customer_id, func.min(_Membership.joined_at))
                             .where(_Membership.joined_at <= as_of)
                             .group_by(_Membership.customer_id)).tuples().all()
    return Inputs(as_of=as_of,
                  stats={days: post_stats(session, as_of - timedelta(days=days), as_of)
                         for days in windows},
                  tasks=completed_counts(session), required=required_total(session),
                  first_joined=dict(joined))


def checks_for(level: LevelOut, inputs: Inputs, customer_id: int) -> list[CriterionCheck]:
    """Each criterion of ``level`` that asks for something, judged for one creator."""
    figures = inputs.stats[level.window_days].get(customer_id)
    tasks, required_done = inputs.tasks.get(customer_id, (0, 0))
    joined = inputs.first_joined.get(customer_id)
    hub_days = (inputs.as_of - joined).days if joined is not None else 0
    wanted: list[tuple[str, float, float]] = [
        ("posts", level.min_posts, figures.posts if figures else 0),
        ("mean_quality", level.min_mean_quality,
         (figures.mean_quality or 0.0) if figures else 0.0),
        ("orders", level.min_orders, figures.orders if figures else 0),
        ("academy_tasks", level.min_academy_tasks, tasks),
        ("hub_days", level.min_hub_days, hub_days),
    ]
    if level.required_tasks_done:
        wanted.append(("required_tasks", inputs.required, required_done))
    return [CriterionCheck(level=level.code, criterion=name, needed=needed, actual=actual,
                           passed=actual >= needed)
            for name, needed, actual in wanted if needed > 0]


def judge(levels: Sequence[LevelOut], inputs: Inputs, customer_id: int
          ) -> tuple[str, list[CriterionCheck]]:
    """The highest level whose every criterion the creator meets, and all the checks."""
    reached, checks = "newcomer", []
    for level in levels:
        found = checks_for(level, inputs, customer_id)
        checks.extend(found)
        if all(check.passed for check in found):
            reached = level.code
    return reached, checks


def _lock(session: Session) -> list[LevelOut]:
    # The first statement writes: PostgreSQL locks every level row and SQLite takes its
    # write lock, so concurrent evaluations run one after the other.
    session.execute(update(LadderLevel).values(rank=LadderLevel.rank)
                    .execution_options(synchronize_session=False))
    levels = list_levels(session)
    if len(levels) != len(LEVEL_CODES):
        raise Conflict("ladder_levels_missing", "every level needs criteria before "
                       "evaluating: install the defaults (`shequ community ladder levels "
                       "--install`) or PUT them")
    return levels


def last_evaluated(session: Session) -> datetime | None:
    """The latest evaluated instant, if any."""
    return session.scalar(select(func.max(LadderRun.as_of)))


def evaluate_ladder(session: Session, clock: Clock, as_of: datetime | None = None, *,
                    principal: Principal = CLI_PRINCIPAL) -> LadderReport:
    """Give every creator the highest level whose criteria they meet at ``as_of`` (default
    now) and record each change once, with the checks that decided it."""
    refuse_partners(principal)
    now = clock.now()
    as_of = as_of or now
    if as_of.tzinfo is None:
        raise ValidationFailed("naive_time", "as_of needs a time zone", "as_of")
    if as_of > now:
        raise ValidationFailed("time_in_future", f"{as_of.isoformat()} lies in the future",
                               "as_of")
    levels = _lock(session)
    last = last_evaluated(session)
    if last is not None and as_of < last:
        raise Conflict("before_last_evaluation", f"{as_of.isoformat()} is before the last "
                       f"evaluation ({last.isoformat()}): evaluate in order", "as_of")
    inputs = gather(session, levels[1:], as_of)
    stored = {row.customer_id: row for row in session.scalars(select(CreatorStanding))}
    creators = all_creators(session)
    held = dict.fromkeys(LEVEL_CODES, 0)
    upgrades = downgrades = 0
    for creator in creators:
        level, checks = judge(levels[1:], inputs, creator.customer_id)
        held[level] += 1
        dumped = [check.model_dump() for check in checks]
        row = stored.get(creator.customer_id)
        before = row.level if row is not None else None
        if row is None:
            row = CreatorStanding(customer_id=creator.customer_id, level=level, since=as_of)
            session.add(row)
        row.evaluated_at, row.checks = as_of, dumped
        if before == level:
            continue
        row.level, row.since = level, as_of
        session.add(LevelChange(customer_id=creator.customer_id, as_of=as_of,
                                from_level=before, to_level=level, checks=dumped))
        if before is None or RANKS[level] > RANKS[before]:
            upgrades += 1
        else:
            downgrades += 1
    run = session.get(LadderRun, as_of)
    if run is None:
        run = LadderRun(as_of=as_of, changes=0)
        session.add(run)
    run.evaluated_at, run.creators = now, len(creators)
    run.changes += upgrades + downgrades
    session.flush()
    return LadderReport(as_of=as_of, creators=len(creators), levels=held,
                        upgrades=upgrades, downgrades=downgrades,
                        changes=upgrades + downgrades)


def _next(levels: Sequence[LevelOut], level: str) -> LevelOut | None:
    return next((each for each in levels if each.rank == RANKS[level] + 1), None)


def live_standing(session: Session, creator: CreatorRef, as_of: datetime
                  ) -> tuple[str, list[CriterionCheck]]:
    """The level and checks of one creator computed now, without storing anything."""
    levels = list_levels(session)
    if len(levels) < 2:
        return "newcomer", []
    return judge(levels[1:], gather(session, levels[1:], as_of), creator.customer_id)


def standing(session: Session, clock: Clock, creator_external_id: str, *,
             principal: Principal = CLI_PRINCIPAL) -> StandingOut:
    """A creator's stored level with the checks of its last evaluation (computed now for
    a creator never evaluated), and the failed criteria of the next level."""
    refuse_partners(principal)
    creator = creator_by_key(session, creator_external_id)
    levels = list_levels(session)
    row = session.get(CreatorStanding, creator.customer_id)
    if row is not None:
        level = row.level
        checks = [CriterionCheck.model_validate(check) for check in row.checks]
    else:
        level, checks = live_standing(session, creator, clock.now())
    above = _next(levels, level)
    names: dict[str, str] = {each.code: each.name for each in levels}
    return StandingOut(
        creator_external_id=creator.external_id, customer_id=creator.customer_id,
        level=level, level_name=names.get(level, level),
        since=row.since if row else None, evaluated_at=row.evaluated_at if row else None,
        next_level=above.code if above else None,
        missing_for_next=[check for check in checks
                          if above is not None and check.level == above.code
                          and not check.passed],
        checks=checks)


def current_levels(session: Session) -> dict[int, str]:
    """``customer id -> level`` of every evaluated creator."""
    return dict(session.execute(select(CreatorStanding.customer_id, CreatorStanding.level))
                .tuples().all())


def levels_at(session: Session, when: datetime) -> dict[int, str]:
    """``customer id -> level`` as the history stood at ``when``."""
    latest = (select(LevelChange.customer_id, func.max(LevelChange.id).label("last"))
              .where(LevelChange.as_of <= when).group_by(LevelChange.customer_id).subquery())
    return dict(session.execute(select(LevelChange.customer_id, LevelChange.to_level)
                                .join(latest, latest.c.last == LevelChange.id)).tuples().all())


def list_changes(session: Session, *, after: int | None = None, limit: int = 50,
                 principal: Principal = CLI_PRINCIPAL) -> LevelChangePage:
    """Level changes in id order; page on with ``after``."""
    refuse_partners(principal)
    query = select(LevelChange).order_by(LevelChange.id).limit(limit + 1)
    if after is not None:
        query = query.where(LevelChange.id > after)
    rows = list(session.scalars(query))
    keys = creator_keys(session, [row.customer_id for row in rows])
    items = [LevelChangeOut(id=row.id, customer_id=row.customer_id,
                            creator_external_id=keys.get(row.customer_id), as_of=row.as_of,
                            from_level=row.from_level,
                            to_level=row.to_level)
             for row in rows[:limit]]
    return LevelChangePage(items=items, next_after=items[-1].id if len(rows) > limit else None)
