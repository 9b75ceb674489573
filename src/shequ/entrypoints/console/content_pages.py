"""Console pages of the content library: posts filtered by content type, sentiment, least
quality score and hub (htmx swaps the table), dwell per content type, and a post with its
explained quality score, nearest sources and comments (docs/content-quality.md).

Figures come from ``content.service``; the routes parse, call and render.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from shequ.core.errors import NotFound, Unavailable, ValidationFailed
from shequ.core.permissions import Principal
from shequ.core.web import DbSession, ServicesDep, require
from shequ.domains.content import scoring
from shequ.domains.content import service as content
from shequ.domains.content.schemas import (
    ContentType,
    DwellByType,
    PostScoreOut,
    PostSort,
    SentimentBand,
)
from shequ.entrypoints.console.i18n import N_, load_translations
from shequ.entrypoints.console.nav import PREFIX
from shequ.entrypoints.console.rendering import is_htmx, render, request_locale

router = APIRouter(prefix=PREFIX, include_in_schema=False)
ContentReader = Annotated[Principal, require("content:read")]

E = TypeVar("E", bound=StrEnum)
PAGE_SIZE = 20
DWELL_DAYS = 30
MIN_SCORES = (20, 40, 60, 80)
TYPE_NAMES = {"knowledge": N_("Knowledge"), "scenario": N_("Scenario seeding"),
              "review": N_("Product review"), "story": N_("User story"),
              scoring.UNCLASSIFIED: N_("Unclassified")}
SENTIMENT_NAMES = {"pos": N_("Positive"), "neutral": N_("Neutral"), "neg": N_("Negative")}
SORT_NAMES = {"new": N_("Newest first"), "score": N_("Best score first")}
STATUS_NAMES = {"published": N_("Published"), "held": N_("Held"), "blocked": N_("Blocked")}
COMPONENT_NAMES = {"originality": N_("Originality"), "reach": N_("Reach"),
                   "conversion": N_("Conversion")}
INPUT_NAMES = {
    "max_similarity": N_("Highest similarity to an earlier post"),
    "sources": N_("Near-duplicate sources"), "views": N_("Views"), "likes": N_("Likes"),
    "shares": N_("Shares"), "comments": N_("Comments"), "days_live": N_("Days live"),
    "views_per_day": N_("Views per day"), "engagement_per_view": N_("Engagement per view"),
    "views_per_day_percentile": N_("Views per day, percentile within the type"),
    "engagement_percentile": N_("Engagement, percentile within the type"),
    "unique_viewers": N_("Unique viewers"), "attributed_orders": N_("Attributed orders"),
    "attributed_gmv_fen": N_("Attributed GMV (fen)"),
    "orders_per_viewer": N_("Orders per viewer"), "gmv_fen_per_viewer": N_("GMV per viewer (fen)"),
    "orders_percentile": N_("Orders, percentile within the type"),
    "gmv_percentile": N_("GMV, percentile within the type"),
}
COMPONENT_COLOURS = {"originality": "#5b8ff9", "reach": "#5ad8a6", "conversion": "#f6bd16"}
SENTIMENT_BADGES = {"pos": "badge-green", "neutral": "badge-grey", "neg": "badge-red"}
DWELL_LABELS = {"median": N_("Median"), "p75": "P75", "p90": "P90", "seconds": N_("Seconds")}
SCORE_LABELS = {"contribution": N_("Contribution"), "most": N_("Most possible")}


def _choice(kind: type[E], raw: str, attr: str) -> E | None:
    """An enum value from a filter field ("" means any)."""
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        raise ValidationFailed("bad_filter", f"{raw!r} is not a valid {attr}", attr) from None


def _least_score(raw: str) -> int | None:
    """The least quality score of the filter ("" means any)."""
    if not raw:
        return None
    if not raw.isdigit() or int(raw) > 100:
        raise ValidationFailed("bad_filter", f"{raw!r} is not a score from 0 to 100",
                               "min_score")
    return int(raw)


def sentiment_of(score: float | None) -> str | None:
    """The sentiment band (``pos`` / ``neutral`` / ``neg``) a P(positive) falls in."""
    if score is None:
        return None
    for band in SentimentBand:
        low, high = scoring.sentiment_band(band)
        if (low is None or score >= low) and (high is None or score < high):
            return band.value
    return None


@dataclass(frozen=True)
class LibraryFilters:
    """The library's filters as the URL carries them."""

    content_type: str
    sentiment: str
    min_score: int | None
    hub: str
    sort: str
    page: int

    def query(self, page: int | None = None) -> str:
        """The URL query of these filters (on ``page``)."""
        values = {"type": self.content_type, "sentiment": self.sentiment,
                  "min_score": "" if self.min_score is None else str(self.min_score),
                  "hub": self.hub, "sort": self.sort, "page": str(page or self.page)}
        return urlencode({key: value for key, value in values.items() if value})


def dwell_option(dwell: DwellByType, names: dict[str, str],
                 labels: dict[str, str]) -> dict[str, Any]:
    """Median, p75 and p90 dwell seconds per content type (bars)."""
    groups = dwell.groups
    series = [{"name": labels[key], "type": "bar", "barMaxWidth": 22,
               "data": [None if getattr(g, f"{key}_seconds") is None
                        else round(getattr(g, f"{key}_seconds"), 1) for g in groups]}
              for key in ("median", "p75", "p90")]
    return {
        "animation": False, "legend": {"top": 0}, "color": ["#2f6bff", "#5ad8a6", "#f6bd16"],
        "grid": {"left": 48, "right": 16, "top": 36, "bottom": 36},
        "tooltip": {"trigger": "axis"},
        "xAxis": {"type": "category", "data": [names.get(g.group, g.group) for g in groups]},
        "yAxis": {"type": "value", "name": labels["seconds"],
                  "splitLine": {"lineStyle": {"color": "#eef1f6"}}},
        "series": series,
    }  # fmt: skip


def _dwell(session: DbSession, wired: ServicesDep, principal: Principal
           ) -> DwellByType | None:
    until = wired.clock.now()
    try:
        return content.dwell_by_type(session, wired, principal,
                                     until - timedelta(days=DWELL_DAYS), until)
    except Unavailable:
        return None  # the event store is held by an import: the library still shows


@router.get("/content")
def content_page(request: Request, session: DbSession, wired: ServicesDep,
                 principal: ContentReader,
                 content_type: Annotated[str, Query(alias="type", max_length=32)] = "",
                 sentiment: Annotated[str, Query(max_length=16)] = "",
                 min_score: Annotated[str, Query(max_length=3)] = "",
                 hub: Annotated[str, Query(max_length=64)] = "",
                 sort: Annotated[str, Query(max_length=16)] = "new",
                 page: Annotated[int, Query(ge=1, le=1_000_000)] = 1) -> HTMLResponse:
    """Posts filtered by type, sentiment band, least score and hub, 20 a page; the dwell
    of post views per content type over the last 30 days."""
    chosen_sort = _choice(PostSort, sort, "sort") or PostSort.NEW
    least = _least_score(min_score)
    listing = content.list_posts(
        session, principal, hub=hub or None,
        content_type=_choice(ContentType, content_type, "type"),
        sentiment=_choice(SentimentBand, sentiment, "sentiment"),
        min_quality=None if least is None else float(least), sort=chosen_sort,
        limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    filters = LibraryFilters(content_type, sentiment, least, hub, chosen_sort.value, page)
    hubs = content.list_hubs(session, principal)
    context: dict[str, Any] = {
        "posts": listing.items, "total": listing.total, "page": page,
        "pages": max(1, -(-listing.total // PAGE_SIZE)), "filters": filters,
        "hub_names": {h.external_id: h.name for h in hubs}, "type_names": TYPE_NAMES,
        "sentiment_names": SENTIMENT_NAMES, "sentiment_badges": SENTIMENT_BADGES,
        "sentiment_of": sentiment_of, "status_names": STATUS_NAMES}
    if is_htmx(request):
        return render(request, "_content_table.html", context)
    translate = load_translations(request_locale(request)).gettext
    dwell = _dwell(session, wired, principal)
    names = {key: translate(label) for key, label in TYPE_NAMES.items()}
    labels = {key: translate(label) for key, label in DWELL_LABELS.items()}
    context.update(
        hubs=hubs, sort_names=SORT_NAMES, min_scores=MIN_SCORES, dwell=dwell,
        dwell_days=DWELL_DAYS,
        dwell_option=dwell_option(dwell, names, labels) if dwell and dwell.groups else None)
    return render(request, "content.html", context)


def components_option(score: PostScoreOut, names: dict[str, str],
                      labels: dict[str, str]) -> dict[str, Any]:
    """Each component's contribution to the score against its most (100 × weight)."""
    parts = list((score.components or {}).items())
    keys = [key for key, _ in parts]
    return {
        "animation": False, "legend": {"top": 0},
        "grid": {"left": 90, "right": 48, "top": 40, "bottom": 24},
        "tooltip": {"trigger": "axis", "axisPointer": {"type": "shadow"}},
        "xAxis": {"type": "value", "max": 100 if not parts else None,
                  "splitLine": {"lineStyle": {"color": "#eef1f6"}}},
        "yAxis": {"type": "category", "inverse": True,
                  "data": [names.get(key, key) for key in keys]},
        "series": [
            {"name": labels["contribution"], "type": "bar", "barGap": "-100%", "z": 3,
             "barMaxWidth": 18, "label": {"show": True, "position": "right"},
             "data": [{"value": round(c.contribution, 1),
                       "itemStyle": {"color": COMPONENT_COLOURS.get(key, "#2f6bff")}}
                      for key, c in parts]},
            {"name": labels["most"], "type": "bar", "barGap": "-100%", "barMaxWidth": 18,
             "z": 2, "itemStyle": {"color": "#eef1f6"},
             "data": [round(100 * c.weight, 1) for _, c in parts]},
        ],
    }  # fmt: skip


@router.get("/content/{external_id}")
def post_page(request: Request, session: DbSession, principal: ContentReader,
              external_id: str) -> HTMLResponse:
    """A post: text, type, sentiment, the explained quality score with its component bars,
    originality with the nearest earlier sources, and the comments."""
    post = content.get_post(session, principal, external_id)
    try:
        score: PostScoreOut | None = content.get_post_score(session, principal, external_id)
    except NotFound:
        score = None
    translate = load_translations(request_locale(request)).gettext
    option = None
    if score is not None and score.components:
        option = components_option(
            score, {key: translate(label) for key, label in COMPONENT_NAMES.items()},
            {key: translate(label) for key, label in SCORE_LABELS.items()})
    return render(request, "post.html", {
        "post": post, "score": score, "components_option": option,
        "type_names": TYPE_NAMES, "status_names": STATUS_NAMES,
        "sentiment_names": SENTIMENT_NAMES, "sentiment_badges": SENTIMENT_BADGES,
        "sentiment_band": sentiment_of(post.sentiment), "component_names": COMPONENT_NAMES,
        "input_names": INPUT_NAMES})
