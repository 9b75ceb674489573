"""Behaviour-analytics pages: funnel, paths (Sankey), click heatmap, dwell time, retention.

Each page reads its query from the URL (so a page can be bookmarked and shared), runs the
runner through ``events.analyse`` (the API's use case) and exports its tables as CSV.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from shequ.analytics.dwell import DwellQuery, DwellRunner
from shequ.analytics.funnels import FunnelQuery, FunnelResult, FunnelRunner, diagnose
from shequ.analytics.heatmaps import HeatmapQuery, HeatmapRunner
from shequ.analytics.paths import PathsQuery, PathsResult, PathsRunner
from shequ.analytics.retention import RetentionQuery, RetentionRunner
from shequ.analytics.trends import TrendsQuery, TrendsRunner
from shequ.core.errors import ValidationFailed
from shequ.core.permissions import Principal
from shequ.core.web import Services, ServicesDep, require
from shequ.domains.events import service as events
from shequ.entrypoints.console.analysis import (
    Analysis,
    Filters,
    Table,
    analysis_page,
    sequence_option,
    split_list,
)
from shequ.entrypoints.console.formatting import Msg, percent, seconds
from shequ.entrypoints.console.i18n import N_
from shequ.entrypoints.console.nav import PREFIX

router = APIRouter(prefix=PREFIX, include_in_schema=False)
Reader = Annotated[Principal, require("analytics:read")]

DEFAULT_STEPS = "product_view, add_to_cart, checkout, payment"
WINDOW_HOURS = (1, 6, 24, 72, 168)
BREAKDOWNS = {"": N_("None"), "channel": N_("Channel"), "device": N_("Device"),
              "brand": N_("Brand"), "segment": N_("Segment")}
ORDERS = {"ordered": N_("In order"), "strict": N_("Strict order"), "any_order": N_("Any order")}


def _choice(params: Mapping[str, str], key: str, allowed: Mapping[str, str] | tuple[Any, ...],
            default: str) -> str:
    value = params.get(key, default) or default
    if value not in allowed:
        raise ValidationFailed(f"unknown_{key}", f"{value!r} is not a valid {key}", key)
    return value


def _int(params: Mapping[str, str], key: str, default: int, low: int, high: int) -> int:
    raw = params.get(key, "") or str(default)
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValidationFailed(f"bad_{key}", f"{key} must be a whole number {low}–{high}", key)
    return int(raw)


def funnel_analysis(services: Services, principal: Principal,
                    filters: Filters, params: Mapping[str, str]) -> Analysis:
    """The funnel of the period, its diagnosis against the period before, its breakdown."""
    steps = split_list(params.get("steps", DEFAULT_STEPS), 10)
    hours = _int(params, "window", 24, 1, 2160)
    order = _choice(params, "order", ORDERS, "ordered")
    breakdown = _choice(params, "breakdown", BREAKDOWNS, "")
    fields = {"steps": steps, "window": timedelta(hours=hours), "order": order,
              "breakdown": breakdown or None}
    result = events.analyse(services, principal, FunnelRunner(
        FunnelQuery(**filters.query_fields(), **fields)))
    before = events.analyse(services, principal, FunnelRunner(
        FunnelQuery(**filters.previous().query_fields(), **fields)))
    diagnosis = diagnose(result, before) if before.steps[0].count else None
    table = Table("steps", [N_("Step"), N_("Event"), N_("People"), N_("From previous"),
                            N_("From first"), N_("Dropped"), N_("Median time")])
    for step in result.steps:
        table.rows.append([step.order + 1, step.name, step.count,
                           percent(step.conversion_from_previous),
                           percent(step.conversion_from_first), step.dropped_from_previous,
                           seconds(step.median_seconds_from_previous)])
    split = Table("breakdown", [N_("Value"), *(s.name for s in result.steps), N_("Conversion")])
    for series in result.breakdown:
        split.rows.append([series.breakdown_value or "–", *(s.count for s in series.steps),
                           percent(series.steps[-1].conversion_from_first)])
    context = {
        "steps_text": ", ".join(steps), "window": hours, "window_hours": WINDOW_HOURS,
        "order": order, "orders": ORDERS, "breakdown": breakdown, "breakdowns": BREAKDOWNS,
        "result": result, "before": before, "diagnosis": diagnosis,
        "chart_option": sequence_option([s.name for s in result.steps],
                                 [s.count for s in result.steps], "people"),
        "overall": _overall(result),
    }  # fmt: skip
    return Analysis(context, [table, split])


def _overall(result: FunnelResult) -> float | None:
    first = result.steps[0].count
    return result.steps[-1].count / first if first else None


@router.get("/funnel")
def funnel_page(request: Request, wired: ServicesDep, principal: Reader) -> Response:
    return analysis_page(request, wired, "funnel.html", "funnel",
                         lambda f, p: funnel_analysis(wired, principal, f, p))


PATH_DEPTHS = (3, 4, 5, 6, 8)


def paths_analysis(services: Services, principal: Principal,
                   filters: Filters, params: Mapping[str, str]) -> Analysis:
    """Top paths and their Sankey, from a start page, into an end page, or from entry."""
    anchor = _choice(params, "anchor", ("start", "end"), "start")
    page = params.get("page", "").strip()[:200] or None
    depth = _int(params, "depth", 5, 2, 10)
    fields = {"start_page": page if anchor == "start" else None,
              "end_page": page if anchor == "end" else None, "depth": depth, "limit": 20}
    result = events.analyse(services, principal, PathsRunner(
        PathsQuery(**filters.query_fields(), **fields)))
    top = Table("paths", [N_("Path"), N_("Sessions"), N_("Share")])
    for item in result.paths:
        top.rows.append([" → ".join(item.pages), item.count, percent(item.share)])
    near = Table("neighbours", [N_("Direction"), N_("Page"), N_("Sessions"), N_("Share")])
    for label, pages in ((Msg(N_("Next page")), result.next_pages),
                         (Msg(N_("Previous page")), result.previous_pages)):
        near.rows.extend([label, p.page, p.count, percent(p.share)] for p in pages)
    context = {"anchor": anchor, "page": page or "", "depth": depth, "depths": PATH_DEPTHS,
               "result": result, "sankey": _sankey(result)}
    return Analysis(context, [top, near])


def _sankey(result: PathsResult) -> dict[str, Any]:
    """An ECharts Sankey option: one column per step (node names carry the step, since a
    page may appear at several steps)."""
    return {
        "animation": False,
        "tooltip": {"trigger": "item"},
        "series": [{
            "type": "sankey", "left": 8, "right": 140, "top": 10, "bottom": 10,
            "nodeAlign": "left", "layoutIterations": 0, "draggable": False,
            "emphasis": {"focus": "adjacency"},
            "lineStyle": {"color": "gradient", "opacity": 0.35},
            "label": {"fontSize": 11},
            "data": [{"name": node.id, "value": node.count, "depth": node.step
                      - min((n.step for n in result.nodes), default=0)}
                     for node in result.nodes],
            "links": [{"source": link.source, "target": link.target, "value": link.value}
                      for link in result.links],
        }],
    }  # fmt: skip


@router.get("/paths")
def paths_page(request: Request, wired: ServicesDep, principal: Reader) -> Response:
    return analysis_page(request, wired, "paths.html", "paths",
                         lambda f, p: paths_analysis(wired, principal, f, p))


HEATMAP_PAGES = ("/home", "/product/*", "/post/*", "/category/*", "/cart", "/search")


def heatmap_analysis(services: Services, principal: Principal,
                     filters: Filters, params: Mapping[str, str]) -> Analysis:
    """Clicks of one page (or page template) in a grid laid over the page's wireframe."""
    page = params.get("page", "").strip()[:200] or "/home"
    bins = _int(params, "bins", 20, 4, 100)
    result = events.analyse(services, principal, HeatmapRunner(
        HeatmapQuery(**filters.query_fields(), page=page, bins=bins)))
    cells = Table("cells", [N_("Column"), N_("Row"), N_("Clicks")],
                  [[c.x_bin, c.y_bin, c.clicks] for c in result.cells])
    elements = Table("elements", [N_("Element"), N_("Clicks"), N_("Share")],
                     [[e.element, e.clicks, percent(e.clicks / result.clicks)]
                      for e in result.elements])  # fmt: skip
    option = {
        "animation": False,
        "tooltip": {"position": "top"},
        "grid": {"left": 0, "right": 0, "top": 0, "bottom": 0},
        "xAxis": {"type": "category", "data": list(range(bins)), "show": False},
        "yAxis": {"type": "category", "data": list(range(bins)), "show": False,
                  "inverse": True},
        "visualMap": {"min": 0, "max": max(result.max_cell, 1), "show": False,
                      "inRange": {"color": ["rgba(47,107,255,0.05)", "rgba(255,196,0,0.6)",
                                            "rgba(232,69,60,0.85)"]}},
        "series": [{"type": "heatmap", "name": page,
                    "data": [[c.x_bin, c.y_bin, c.clicks] for c in result.cells]}],
    }  # fmt: skip
    context = {"page": page, "pages": HEATMAP_PAGES, "bins": bins, "result": result,
               "heat_option": option}
    return Analysis(context, [elements, cells])


@router.get("/heatmap")
def heatmap_page(request: Request, wired: ServicesDep, principal: Reader) -> Response:
    return analysis_page(request, wired, "heatmap.html", "heatmap",
                         lambda f, p: heatmap_analysis(wired, principal, f, p))


DWELL_BY = {"page": N_("Page"), "content_type": N_("Content type")}


def dwell_analysis(services: Services, principal: Principal,
                   filters: Filters, params: Mapping[str, str]) -> Analysis:
    """Dwell-time spread per page (template) or content type, and the histogram of one."""
    by = _choice(params, "by", DWELL_BY, "page")
    result = events.analyse(services, principal, DwellRunner(
        DwellQuery(**filters.query_fields(), by=by, limit=20)))
    table = Table("groups", [N_("Group"), N_("Views"), N_("With dwell"), N_("Median"),
                             N_("P75"), N_("P90"), N_("Mean")])
    for g in result.groups:
        table.rows.append([g.group, g.views, g.with_dwell, seconds(g.median_seconds),
                           seconds(g.p75_seconds), seconds(g.p90_seconds),
                           seconds(g.mean_seconds)])
    shown = params.get("group") or (result.groups[0].group if result.groups else "")
    chosen = next((g for g in result.groups if g.group == shown), None)
    histogram = Table("histogram", [N_("Dwell"), N_("Views")])
    option = None
    if chosen is not None:
        histogram.rows = [[b.label, b.views] for b in chosen.histogram]
        option = {
            "animation": False, "tooltip": {"trigger": "axis"},
            "grid": {"left": 56, "right": 20, "top": 20, "bottom": 36},
            "xAxis": {"type": "category", "data": [b.label for b in chosen.histogram]},
            "yAxis": {"type": "value", "minInterval": 1},
            "series": [{"type": "bar", "name": chosen.group, "barMaxWidth": 48,
                        "itemStyle": {"color": "#2f6bff"},
                        "data": [b.views for b in chosen.histogram]}],
        }  # fmt: skip
    kept = {k: v for k, v in params.items() if k not in ("group", "format", "table")}
    links = [(g.group, "?" + urlencode({**kept, "group": g.group})) for g in result.groups[:8]]
    context = {"by": by, "by_options": DWELL_BY, "result": result, "chosen": chosen,
               "dwell_option": option, "group_links": links}
    return Analysis(context, [table, histogram])


@router.get("/dwell")
def dwell_page(request: Request, wired: ServicesDep, principal: Reader) -> Response:
    return analysis_page(request, wired, "dwell.html", "dwell",
                         lambda f, p: dwell_analysis(wired, principal, f, p))


PERIODS = {"day": N_("Days"), "week": N_("Weeks")}


def retention_analysis(services: Services, principal: Principal,
                       filters: Filters, params: Mapping[str, str]) -> Analysis:
    """The retention triangle: cohorts by first day or week, share back in each period."""
    period = _choice(params, "period", PERIODS, "week")
    start_event = params.get("start_event", "").strip() or None
    return_event = params.get("return_event", "").strip() or None
    periods = 31 if period == "day" else 8
    result = events.analyse(services, principal, RetentionRunner(RetentionQuery(
        **filters.query_fields(), period=period, periods=periods, start_event=start_event,
        return_event=return_event)))
    width = max((len(c.rates) for c in result.cohorts), default=0)
    table = Table("cohorts", [N_("Cohort"), N_("People"),
                              *(f"{'D' if period == 'day' else 'W'}{k}" for k in range(width))])
    for cohort in result.cohorts:
        table.rows.append([cohort.cohort_start.isoformat(), cohort.size,
                           *(percent(rate) for rate in cohort.rates)])
    context = {"period": period, "period_options": PERIODS, "result": result,
               "start_event": start_event or "", "return_event": return_event or "",
               "width": width}
    return Analysis(context, [table])


@router.get("/retention")
def retention_page(request: Request, wired: ServicesDep, principal: Reader) -> Response:
    return analysis_page(request, wired, "retention.html", "retention",
                         lambda f, p: retention_analysis(wired, principal, f, p),
                         default_days=56)


MEASURES = {"count": N_("Events"), "unique_persons": N_("Unique people"),
            "sum": N_("Sum of a property")}
INTERVALS = {"hour": N_("Hour"), "day": N_("Day"), "week": N_("Week")}
TREND_EVENTS = ("page_view", "product_view", "add_to_cart", "checkout", "payment",
                "post_view", "like", "comment", "share", "search", "click", "login", "signup")


def trends_analysis(services: Services, principal: Principal,
                    filters: Filters, params: Mapping[str, str]) -> Analysis:
    """One event over time: count, unique people or a property's sum per hour/day/week."""
    event = params.get("event", "").strip() or "payment"
    measure = _choice(params, "measure", MEASURES, "count")
    interval = _choice(params, "interval", INTERVALS, "day")
    prop = params.get("property", "").strip() or None
    if measure == "sum" and prop is None:
        prop = "amount_fen"
    split = params.get("breakdown") == "channel"
    result = events.analyse(services, principal, TrendsRunner(TrendsQuery(
        **filters.query_fields(), event=event, measure=measure,
        property=prop if measure == "sum" else None, interval=interval,
        breakdown="channel" if split else None)))
    zone = services.settings.zone
    fmt = "%Y-%m-%d %H:00" if interval == "hour" else "%Y-%m-%d"
    labels = [p.start.astimezone(zone).strftime(fmt) for p in result.series[0].points] \
        if result.series else []
    table = Table("trend", [N_("Series"), N_("Total"), *labels])
    for series in result.series:
        table.rows.append([series.breakdown_value or "–", series.total,
                           *(p.value for p in series.points)])
    option = {
        "animation": False, "tooltip": {"trigger": "axis"},
        "legend": {"show": split, "top": 0},
        "grid": {"left": 64, "right": 24, "top": 32 if split else 16, "bottom": 36},
        "xAxis": {"type": "category", "data": labels, "boundaryGap": False},
        "yAxis": {"type": "value"},
        "series": [{"type": "line", "name": s.breakdown_value or event, "showSymbol": False,
                    "data": [p.value for p in s.points]} for s in result.series],
    }  # fmt: skip
    context = {"event": event, "events_list": TREND_EVENTS, "measure": measure,
               "measures": MEASURES, "interval": interval, "intervals": INTERVALS,
               "property": prop or "", "split": split, "result": result,
               "trend_option": option}
    return Analysis(context, [table])


@router.get("/trends")
def trends_page(request: Request, wired: ServicesDep, principal: Reader) -> Response:
    return analysis_page(request, wired, "trends.html", "trends",
                         lambda f, p: trends_analysis(wired, principal, f, p), default_days=30)
