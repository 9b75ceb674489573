"""Community use cases: the ladder, the academy, the creator dashboard, the creator fund,
core-creator retention, hubs, and the demo's population from content (docs/creators.md).

The use cases live in ``ladder``, ``academy``, ``fund`` and ``hubs``; this module gathers
them (the only module other packages call) and adds the dashboard, retention and
:func:`populate_from_content`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from shequ.core import audit
from shequ.core.clock import Clock
from shequ.core.errors import ValidationFailed
from shequ.core.permissions import CLI_PRINCIPAL, Principal
from shequ.domains.community.academy import (
    DEFAULT_TASKS,
    complete_task,
    install_default_tasks,
    list_tasks,
    progress,
    progress_of,
    put_task,
    record_completions,
    refuse_partners,
)
from shequ.domains.community.fund import (
    close_round,
    create_round,
    list_rounds,
    show_round,
    split_budget,
)
from shequ.domains.community.hubs import (
    hub_feed,
    hub_metrics,
    join_hub,
    list_hub_summaries,
    list_members,
    role_history,
    set_role,
)
from shequ.domains.community.ladder import (
    DEFAULT_LEVELS,
    evaluate_ladder,
    install_default_levels,
    levels_at,
    list_changes,
    list_levels,
    put_level,
    standing,
)
from shequ.domains.community.models import HubMembership, HubRoleChange
from shequ.domains.community.schemas import (
    CloseIn,
    CreatorFigures,
    DashboardOut,
    PopulateReport,
    RetentionCohort,
    RetentionOut,
    RoundIn,
    RoundOut,
)
from shequ.domains.community.sources import (
    POSTS,
    CreatorRef,
    all_creators,
    creator_by_key,
    post_stats,
    score,
)
from shequ.domains.content.schemas import CreatorPostStats

__all__ = [
    "DEFAULT_LEVELS", "DEFAULT_TASKS", "close_round", "complete_task", "core_retention",
    "create_round", "dashboard", "dashboards", "evaluate_ladder", "hub_feed", "hub_metrics",
    "install_defaults", "join_hub", "list_changes", "list_hub_summaries", "list_levels",
    "list_members", "list_rounds", "list_tasks", "populate_from_content", "progress",
    "put_level", "put_task", "role_history", "set_role", "show_round", "split_budget",
    "standing",
]

SHANGHAI = ZoneInfo("Asia/Shanghai")
CORE_LEVEL = "core"
TOP_SHARE = 0.1
MAX_MONTHS = 36


# --- dashboard ---------------------------------------------------------------------------


def _figures(rows: list[CreatorPostStats], per: int) -> CreatorFigures:
    """Sums of ``rows`` divided by ``per``; mean quality weighted by posts; conversion is
    orders over views."""
    views = sum(row.views for row in rows)
    orders = sum(row.orders for row in rows)
    scored = [row for row in rows if row.mean_quality is not None]
    scored_posts = sum(row.posts for row in scored)
    quality = (sum(row.posts * (row.mean_quality or 0.0) for row in scored) / scored_posts
               if scored_posts else None)
    per = max(per, 1)
    return CreatorFigures(posts=sum(row.posts for row in rows) / per, mean_quality=quality,
                          views=views / per, orders=orders / per,
                          gmv_fen=sum(row.gmv_fen for row in rows) / per,
                          conversion=orders / views if views else None)


def dashboard(session: Session, clock: Clock, creator_external_id: str, *, days: int = 30,
              principal: Principal = CLI_PRINCIPAL) -> DashboardOut:
    """A creator's posts, mean quality, views, attributed orders and conversion over the
    last ``days`` beside the average posting creator's, their level, the failed criteria
    of the next level and their academy progress."""
    return dashboards(session, clock, [creator_external_id], days=days, principal=principal)[0]


def dashboards(session: Session, clock: Clock, creator_external_ids: Sequence[str], *,
               days: int = 30, principal: Principal = CLI_PRINCIPAL) -> list[DashboardOut]:
    """``dashboard`` of several creators, in order, over one read of the posting figures
    (the creators list shows a page of them)."""
    refuse_partners(principal)
    if not 1 <= days <= 365:
        raise ValidationFailed("days_out_of_range", "days must be between 1 and 365", "days")
    until = clock.now()
    since = until - timedelta(days=days)
    stats = post_stats(session, since, until)
    posting = [row for row in stats.values() if row.creator_external_id is not None]
    platform = _figures(posting, len(posting))
    boards = []
    for key in creator_external_ids:
        creator = creator_by_key(session, key)
        own = stats.get(creator.customer_id)
        held = standing(session, clock, key)
        boards.append(DashboardOut(
            creator_external_id=creator.external_id, display_name=creator.display_name,
            since=since, until=until, level=held.level, level_name=held.level_name,
            score=score(own), creator=_figures([own] if own else [], 1),
            platform_average=platform, next_level=held.next_level,
            missing_for_next=held.missing_for_next,
            academy=progress_of(session, creator.customer_id, creator.external_id)))
    return boards


# --- retention ---------------------------------------------------------------------------


def _month_start(year: int, month: int, zone: ZoneInfo) -> datetime:
    return datetime(year + (month - 1) // 12, (month - 1) % 12 + 1, 1, tzinfo=zone
                    ).astimezone(UTC)


def core_retention(session: Session, clock: Clock, *, months: int = 6,
                   zone: ZoneInfo = SHANGHAI,
                   principal: Principal = CLI_PRINCIPAL) -> RetentionOut:
    """Cohorts of core creators per month (the last ``months`` months in ``zone``, the
    current one included): creators on the top level at the month's end, or in the top
    decile by score among that month's scoring creators; for each later month, how many of
    them posted and their share."""
    refuse_partners(principal)
    if not 1 <= months <= MAX_MONTHS:
        raise ValidationFailed("months_out_of_range", f"months must be between 1 and "
                               f"{MAX_MONTHS}", "months")
    today = clock.now().astimezone(zone).date()
    base = today.year * 12 + today.month - 1 - (months - 1)
    # divmod gives (year, month - 1): shift the month back to 1..12
    bounds = [_month_start(year, month + 1, zone)
              for year, month in (divmod(base + n, 12) for n in range(months + 1))]
    labels = [f"{year:04d}-{month + 1:02d}"
              for year, month in (divmod(base + n, 12) for n in range(months))]
    stats = [post_stats(session, bounds[n], bounds[n + 1]) for n in range(months)]
    cohorts = []
    for n, label in enumerate(labels):
        scores = sorted(((score(row), who) for who, row in stats[n].items()
                         if row.creator_external_id is not None and score(row) > 0),
                        reverse=True)
        top = {who for _, who in scores[:math.ceil(TOP_SHARE * len(scores))]}
        at_end = levels_at(session, bounds[n + 1] - timedelta(microseconds=1))
        cohort = top | {who for who, level in at_end.items() if level == CORE_LEVEL}
        still = [sum(1 for who in cohort if (row := stats[later].get(who)) and row.posts > 0)
                 for later in range(n + 1, months)]
        cohorts.append(RetentionCohort(
            month=label, size=len(cohort), still_posting=still,
            retained=[count / len(cohort) if cohort else None for count in still]))
    return RetentionOut(months=labels, cohorts=cohorts)


# --- defaults and the demo ---------------------------------------------------------------


def install_defaults(session: Session, clock: Clock) -> tuple[int, int]:
    """File the default ladder and academy tasks where missing; ``(levels, tasks)``."""
    return len(install_default_levels(session, clock)), len(install_default_tasks(session,
                                                                                   clock))


def _demo_round(session: Session, clock: Clock) -> RoundOut:
    """The fund round of the 30 whole UTC days before today, ¥50,000 capped at ¥5,000."""
    end = datetime.combine(clock.now().astimezone(UTC).date(), datetime.min.time(), UTC)
    key = f"demo-{end.date().isoformat()}"
    created = create_round(session, clock, RoundIn(
        key=key, name=f"创作者基金 {end.date().isoformat()}",
        period_start=end - timedelta(days=30), period_end=end, budget_fen=5_000_000,
        cap_fen=500_000, min_score=0))
    return close_round(session, clock, created.key, CloseIn(idempotency_key=f"close-{key}"))


#: Demo credits for electives: the task and the number of published posts that earns it
#: (at the time of that post).
DEMO_ELECTIVES = (("review_writing", 5), ("product_photo", 10))


def _demo_credits(session: Session, creators: list[CreatorRef]
                  ) -> dict[tuple[str, int], datetime]:
    """``(task, customer id) -> completed at`` for the demo: the required tasks at a
    creator's first published post, the electives of :data:`DEMO_ELECTIVES` at their
    n-th."""
    p = POSTS.c
    times: dict[int, list[datetime]] = {}
    for customer_id, created_at in session.execute(
            select(p.customer_id, p.created_at).where(p.status == "published")
            .order_by(p.customer_id, p.created_at, p.id)):
        times.setdefault(customer_id, []).append(created_at)
    codes = {task.code: task for task in list_tasks(session)}
    credits: dict[tuple[str, int], datetime] = {}
    for creator in creators:
        posted = times.get(creator.customer_id, [])
        if not posted:
            continue
        for code, task in codes.items():
            if task.required:
                credits[(code, creator.customer_id)] = posted[0]
        for code, count in DEMO_ELECTIVES:
            if code in codes and len(posted) >= count:
                credits[(code, creator.customer_id)] = posted[count - 1]
    return credits


def populate_from_content(session: Session, clock: Clock, *,
                          fund_round: bool = True) -> PopulateReport:
    """Install the defaults and derive the community from the content already loaded (the
    demo's step; running it again adds nothing):

    * every creator with a hub joins it at their creator ``joined_at`` (role ``expert`` for
      content-level experts, else ``user``); every other author of a hub post joins it as a
      ``user`` at their first post there;
    * every creator who has published a post is credited with the required academy tasks
      (community rules, the quiz, the first post) at their first post, and with the
      electives of :data:`DEMO_ELECTIVES` at their 5th and 10th post (demo credits);
    * the ladder is evaluated now and, with ``fund_round``, the fund round of the last 30
      whole days is created and closed (¥50,000 budget, ¥5,000 cap).
    """
    levels, tasks = install_defaults(session, clock)
    creators = all_creators(session)
    wanted: dict[tuple[int, int], tuple[str, datetime]] = {}
    for creator in creators:
        if creator.hub_id is not None:
            role = "expert" if creator.level == "expert" else "user"
            wanted[(creator.hub_id, creator.customer_id)] = (role, creator.joined_at)
    p = POSTS.c
    for hub_id, customer_id, first in session.execute(
            select(p.hub_id, p.customer_id, func.min(p.created_at))
            .where(p.hub_id.is_not(None)).group_by(p.hub_id, p.customer_id)):
        wanted.setdefault((hub_id, customer_id), ("user", first))
    present = set(session.execute(select(HubMembership.hub_id, HubMembership.customer_id))
                  .tuples().all())
    new = [{"hub_id": hub_id, "customer_id": customer_id, "role": role, "joined_at": when}
           for (hub_id, customer_id), (role, when) in sorted(wanted.items())
           if (hub_id, customer_id) not in present]
    if new:
        # Core inserts with one audit row per table, as the bulk loaders do.
        session.execute(insert(HubMembership.__table__), new)  # type: ignore[arg-type]
        made = session.execute(select(HubMembership.id, HubMembership.role,
                                      HubMembership.joined_at)
                               .where(~select(HubRoleChange.id).where(
                                   HubRoleChange.membership_id == HubMembership.id).exists())
                               ).all()
        session.execute(insert(HubRoleChange.__table__), [  # type: ignore[arg-type]
            {"membership_id": row[0], "from_role": None, "to_role": row[1],
             "changed_at": row[2]} for row in made])
        audit.record(session, action="populate", entity="hub_memberships",
                     entity_id="content", after={"rows": len(new)})
    completions = record_completions(session, _demo_credits(session, creators))
    ladder = evaluate_ladder(session, clock)
    return PopulateReport(levels=levels, tasks=tasks, memberships=len(new),
                          completions=completions, ladder=ladder,
                          fund_round=_demo_round(session, clock) if fund_round else None)
