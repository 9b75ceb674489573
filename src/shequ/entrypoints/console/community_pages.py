"""Console pages of the creator community: creators with their ladder level, score and
conversion against the platform average, the ladder's criteria and the fund rounds; a
creator's dashboard; hubs with members by role, weekly figures and the feed
(docs/creators.md).

Figures come from ``community.service`` (and the content and customers services for the
creator's posts); the routes parse, call and render. The creator programmes span every
brand, so partners get no creator pages; hubs show a partner its brands' hubs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from shequ.core.clock import Clock
from shequ.core.errors import NotFound
from shequ.core.permissions import Principal
from shequ.core.web import DbSession, ServicesDep, require
from shequ.domains.community import service as community
from shequ.domains.community.schemas import (
    DashboardOut,
    FeedOrder,
    HubMetrics,
    HubRole,
    StandingOut,
)
from shequ.domains.content import service as content
from shequ.domains.content.schemas import CreatorOut, PostOut, PostSort
from shequ.domains.customers import service as customers
from shequ.entrypoints.console.content_pages import TYPE_NAMES
from shequ.entrypoints.console.i18n import N_, Formats, load_translations
from shequ.entrypoints.console.nav import PREFIX
from shequ.entrypoints.console.rendering import render, request_locale

router = APIRouter(prefix=PREFIX, include_in_schema=False)
CommunityReader = Annotated[Principal, require("community:read")]

CREATORS_PAGE = 20
CREATOR_POSTS = 30
MEMBERS_PAGE = 30
FEED_PAGE = 15
HUB_WEEKS = 12
RETENTION_MONTHS = 6
WINDOWS = (30, 90, 365)
LEVEL_NAMES = {"newcomer": N_("Newcomer"), "certified": N_("Certified KOC"),
               "senior": N_("Senior KOC"), "core": N_("Core creator")}
LEVEL_BADGES = {"newcomer": "badge-grey", "certified": "badge-blue", "senior": "badge-green",
                "core": "badge-red"}
CRITERION_NAMES = {"posts": N_("Posts"), "mean_quality": N_("Mean quality"),
                   "orders": N_("Attributed orders"), "academy_tasks": N_("Academy tasks"),
                   "hub_days": N_("Days in a hub"), "required_tasks": N_("Required tasks")}
ROLE_NAMES = {"expert": N_("Expert"), "brand": N_("Brand"), "user": N_("User")}
TASK_KIND_NAMES = {"course": N_("Course"), "quiz": N_("Quiz"), "first_post": N_("First post"),
                   "live": N_("Live stream"), "other": N_("Other")}
ROUND_STATE_NAMES = {"open": N_("In progress"), "closed": N_("Paid out")}
FEED_ORDER_NAMES = {"newest": N_("Newest first"), "best": N_("Best score first")}
WEEK_COLOURS = {"new_members": "#5b8ff9", "posts": "#5ad8a6", "comments": "#f6bd16"}
CREATOR_LABELS = {"posts": N_("Posts"), "mean_quality": N_("Mean quality"),
                  "views": N_("Views"), "orders": N_("Attributed orders"),
                  "conversion": N_("Conversion"), "index": N_("% of the platform average"),
                  "par": N_("Platform average"), "quality": N_("Quality score"),
                  "platform": N_("Platform mean")}
WEEK_LABELS = {"new_members": N_("New members"), "posts": N_("Posts"),
               "comments": N_("Comments")}
SHARED = {"level_names": LEVEL_NAMES, "level_badges": LEVEL_BADGES,
          "criterion_names": CRITERION_NAMES, "role_names_hub": ROLE_NAMES,
          "type_names": TYPE_NAMES}


def ratio(value: float | None, base: float | None) -> float | None:
    """``value / base`` (None when either is missing or the base is 0)."""
    if value is None or base is None or base == 0:
        return None
    return value / base


# --- creators ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatorLine:
    """One row of the creators list: the profile and its dashboard over the window."""

    creator: CreatorOut
    dashboard: DashboardOut


def creator_lines(session: Session, clock: Clock, principal: Principal,
                  creators: list[CreatorOut], days: int) -> list[CreatorLine]:
    """The dashboard of each listed creator over the last ``days`` days."""
    boards = community.dashboards(session, clock, [c.external_id for c in creators], days=days,
                                  principal=principal)
    return [CreatorLine(creator, board) for creator, board in zip(creators, boards, strict=True)]


def retention_rows(months: list[str], cohorts: list[Any]) -> list[list[Any]]:
    """The retention triangle as rows: month, size, then the share in each later month."""
    width = len(months) - 1
    return [[c.month, c.size, *c.retained, *([None] * (width - len(c.retained)))]
            for c in cohorts]


@router.get("/creators")
def creators_page(request: Request, session: DbSession, wired: ServicesDep,
                  principal: CommunityReader,
                  days: Annotated[int, Query(ge=1, le=365)] = 30,
                  page: Annotated[int, Query(ge=1, le=1_000_000)] = 1) -> HTMLResponse:
    """Creators (20 a page) with level, score and conversion against the platform average
    over ``days``; the ladder's criteria, core-creator retention and the fund rounds."""
    levels = community.list_levels(session, principal=principal)  # refuses partners first
    listing = content.list_creators(session, principal, limit=CREATORS_PAGE,
                                    offset=(page - 1) * CREATORS_PAGE)
    lines = creator_lines(session, wired.clock, principal, listing.items, days)
    retention = community.core_retention(session, wired.clock, months=RETENTION_MONTHS,
                                         zone=wired.settings.zone, principal=principal)
    return render(request, "creators.html", {
        **SHARED, "lines": lines, "total": listing.total, "page": page, "days": days,
        "windows": WINDOWS, "pages": max(1, -(-listing.total // CREATORS_PAGE)),
        "page_link": lambda n: "/console/creators?" + urlencode({"days": days, "page": n}),
        "platform": lines[0].dashboard.platform_average if lines else None,
        "levels": levels, "rounds": community.list_rounds(session, principal=principal),
        "round_state_names": ROUND_STATE_NAMES, "retention": retention,
        "retention_rows": retention_rows(retention.months, retention.cohorts),
        "ratio": ratio})


def comparison_option(board: DashboardOut, labels: dict[str, str]) -> dict[str, Any]:
    """The creator's figures as a percentage of the average posting creator's (100 = par)."""
    mine, average = board.creator, board.platform_average
    keys = ("posts", "mean_quality", "views", "orders", "conversion")
    values = []
    for key in keys:
        share = ratio(getattr(mine, key), getattr(average, key))
        values.append(None if share is None else round(100 * share, 1))
    return {
        "animation": False, "grid": {"left": 96, "right": 48, "top": 28, "bottom": 28},
        "tooltip": {"trigger": "axis", "axisPointer": {"type": "shadow"}},
        "xAxis": {"type": "value", "splitLine": {"lineStyle": {"color": "#eef1f6"}}},
        "yAxis": {"type": "category", "inverse": True, "data": [labels[k] for k in keys]},
        "series": [{
            "name": labels["index"], "type": "bar", "barMaxWidth": 18,
            "label": {"show": True, "position": "right", "formatter": "{c}"},
            "data": [{"value": v, "itemStyle": {"color": "#9aa3b5" if v is None or v < 100
                                                 else "#18a058"}} for v in values],
            "markLine": {"symbol": "none", "silent": True,
                         "lineStyle": {"color": "#e8453c", "type": "dashed"},
                         "label": {"formatter": labels["par"], "position": "start"},
                         "data": [{"xAxis": 100}]},
        }],
    }  # fmt: skip


def trend_option(posts: list[PostOut], platform_quality: float | None,
                 labels: dict[str, str]) -> dict[str, Any]:
    """Each scored post's quality at its publication time, oldest first, with the
    platform's mean quality as a line."""
    scored = sorted((p for p in posts if p.quality is not None), key=lambda p: p.created_at)
    series: dict[str, Any] = {
        "name": labels["quality"], "type": "line", "symbol": "circle", "symbolSize": 7,
        "lineStyle": {"width": 2, "color": "#2f6bff"}, "itemStyle": {"color": "#2f6bff"},
        "data": [[p.created_at.isoformat(), round(p.quality or 0.0, 1)] for p in scored]}
    if platform_quality is not None:
        series["markLine"] = {"symbol": "none", "silent": True,
                              "lineStyle": {"color": "#e8453c", "type": "dashed"},
                              "label": {"formatter": labels["platform"]},
                              "data": [{"yAxis": round(platform_quality, 1)}]}
    return {
        "animation": False, "grid": {"left": 48, "right": 60, "top": 24, "bottom": 36},
        "tooltip": {"trigger": "item"},
        "xAxis": {"type": "time"},
        "yAxis": {"type": "value", "min": 0, "max": 100,
                  "splitLine": {"lineStyle": {"color": "#eef1f6"}}},
        "series": [series],
    }  # fmt: skip


def _creator_posts(session: Session, principal: Principal, standing: StandingOut
                   ) -> list[PostOut]:
    keys = customers.customer_keys_by_id(session, [standing.customer_id])
    author = keys.get(standing.customer_id)
    if author is None:
        return []
    return content.list_posts(session, principal, author=author, sort=PostSort.NEW,
                              limit=CREATOR_POSTS).items


@router.get("/creators/{creator}")
def creator_page(request: Request, session: DbSession, wired: ServicesDep,
                 principal: CommunityReader, creator: str,
                 days: Annotated[int, Query(ge=1, le=365)] = 30) -> HTMLResponse:
    """A creator's dashboard: figures against the platform average, the quality of their
    posts over time, ladder progress with each criterion, academy progress, their posts."""
    board = community.dashboard(session, wired.clock, creator, days=days, principal=principal)
    standing = community.standing(session, wired.clock, creator, principal=principal)
    posts = _creator_posts(session, principal, standing)
    translate = load_translations(request_locale(request)).gettext
    labels = {key: translate(label) for key, label in CREATOR_LABELS.items()}
    levels = community.list_levels(session, principal=principal)
    checks: dict[str, list[Any]] = {}
    for check in standing.checks:
        checks.setdefault(check.level, []).append(check)
    return render(request, "creator.html", {
        **SHARED, "board": board, "standing": standing, "posts": posts, "days": days,
        "windows": WINDOWS, "levels": levels, "checks": checks, "ratio": ratio,
        "comparison_option": comparison_option(board, labels),
        "trend_option": trend_option(posts, board.platform_average.mean_quality, labels)
        if any(p.quality is not None for p in posts) else None,
        "task_kind_names": TASK_KIND_NAMES})


# --- hubs --------------------------------------------------------------------------------


@router.get("/hubs")
def hubs_page(request: Request, session: DbSession, principal: CommunityReader
              ) -> HTMLResponse:
    """Hubs the caller may see with their members per role."""
    hubs = community.list_hub_summaries(session, principal=principal)
    return render(request, "hubs.html", {**SHARED, "hubs": hubs, "roles": list(ROLE_NAMES)})


def weeks_option(metrics: HubMetrics, labels: dict[str, str],
                 zone_day: Callable[[date], str]) -> dict[str, Any]:
    """New members, posts and comments per week (bars)."""
    return {
        "animation": False, "legend": {"top": 0},
        "grid": {"left": 48, "right": 16, "top": 36, "bottom": 36},
        "tooltip": {"trigger": "axis"},
        "xAxis": {"type": "category", "data": [zone_day(w.week) for w in metrics.weeks]},
        "yAxis": {"type": "value", "minInterval": 1,
                  "splitLine": {"lineStyle": {"color": "#eef1f6"}}},
        "series": [{"name": labels[key], "type": "bar", "barMaxWidth": 16,
                    "itemStyle": {"color": colour},
                    "data": [getattr(w, key) for w in metrics.weeks]}
                   for key, colour in WEEK_COLOURS.items()],
    }  # fmt: skip


@router.get("/hubs/{hub}")
def hub_page(request: Request, session: DbSession, wired: ServicesDep,
             principal: CommunityReader, hub: str,
             role: Annotated[HubRole | None, Query()] = None,
             after: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
             order: Annotated[FeedOrder, Query()] = "newest",
             cursor: Annotated[str | None, Query(max_length=100)] = None) -> HTMLResponse:
    """A hub: members per role, new members, posts and comments per week, top creators,
    members (filtered by role, keyset-paged) and the feed (newest or best first)."""
    metrics = community.hub_metrics(session, wired.clock, hub, weeks=HUB_WEEKS,
                                    zone=wired.settings.zone, principal=principal)
    found = [h for h in community.list_hub_summaries(session, principal=principal)
             if h.external_id == hub]
    if not found:
        raise NotFound("hub_not_found", f"no hub {hub!r}", "hub")
    members = community.list_members(session, hub, role=role, after=after,
                                     limit=MEMBERS_PAGE, principal=principal)
    feed = community.hub_feed(session, hub, order=order, cursor=cursor, limit=FEED_PAGE,
                              principal=principal)
    translate = load_translations(request_locale(request)).gettext
    labels = {key: translate(label) for key, label in WEEK_LABELS.items()}
    short_day = Formats(request_locale(request), wired.settings.zone).short_day
    return render(request, "hub.html", {
        **SHARED, "hub": found[0], "metrics": metrics, "members": members, "feed": feed,
        "role": role, "after": after, "order": order, "cursor": cursor,
        "roles": list(ROLE_NAMES), "feed_order_names": FEED_ORDER_NAMES,
        "weeks_option": weeks_option(metrics, labels, short_day),
        "link": lambda **changes: hub_link(hub, {"role": role, "order": order}, changes)})


def hub_link(hub: str, kept: dict[str, Any], changes: dict[str, Any]) -> str:
    """The hub page's URL with ``kept`` query values replaced by ``changes``."""
    values = {**kept, **changes}
    query = urlencode({key: value for key, value in values.items() if value is not None})
    return f"{PREFIX}/hubs/{quote(hub)}" + (f"?{query}" if query else "")
