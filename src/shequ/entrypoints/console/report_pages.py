"""Console page of the quarterly Needs White Paper (docs/needs.md): the report's figures
with charts and a quarter picker, and the white paper itself for download as HTML or PDF
(rendered by ``entrypoints.reports.needs``).

Figures come from ``content.needs``; the routes parse, call and render. A partner sees the
report over its brands' reviews and posts.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from shequ.core.errors import NotFound
from shequ.core.permissions import Principal
from shequ.core.web import DbSession, ServicesDep, require
from shequ.domains.content import needs
from shequ.domains.content.needs_schemas import NeedsReport
from shequ.entrypoints.console.i18n import N_, Formats, load_translations
from shequ.entrypoints.console.nav import PREFIX
from shequ.entrypoints.console.rendering import PAGE_HEADERS, render, request_locale
from shequ.entrypoints.reports.needs import render_html, sentiment_colour, write_pdf

router = APIRouter(prefix=PREFIX, include_in_schema=False)
ContentReader = Annotated[Principal, require("content:read")]
QuarterParam = Annotated[str, Query(max_length=16)]

PICKER_QUARTERS = 8
LINE_TOPICS = 6
HEAT_LABELS = {"high": N_("Positive"), "low": N_("Negative"), "sentiment": N_("Sentiment")}
PALETTE = ("#2f6bff", "#e8684a", "#5ad8a6", "#f6bd16", "#9270ca", "#5b8c2a")


def quarter_choices(latest: str, chosen: str) -> list[str]:
    """The latest quarter with content and the seven before it, newest first (plus the
    chosen one when it is older)."""
    quarter = needs.parse_quarter(latest)
    labels = []
    for _ in range(PICKER_QUARTERS):
        labels.append(quarter.label)
        quarter = quarter.previous()
    return labels if chosen in labels else [*labels, chosen]


def _report(session: Session, principal: Principal, zone: Any, quarter: str
            ) -> tuple[NeedsReport | None, str | None]:
    """The report of ``quarter`` (default: the latest with content) and that latest one;
    ``(None, None)`` when there is no content at all."""
    try:
        latest = needs.default_quarter(session, principal, zone=zone)
    except NotFound:
        return None, None
    chosen = needs.parse_quarter(quarter).label if quarter else latest
    return needs.needs_report(session, principal, chosen, zone=zone), latest


def needs_option(report: NeedsReport, labels: dict[str, str]) -> dict[str, Any]:
    """Share of texts mentioning each aspect, this quarter (coloured by sentiment) and the
    previous one."""
    mentioned = [n for n in report.top_needs if n.texts > 0]
    return {
        "animation": False, "legend": {"top": 0},
        "grid": {"left": 90, "right": 48, "top": 32, "bottom": 24},
        "tooltip": {"trigger": "axis", "axisPointer": {"type": "shadow"}},
        "xAxis": {"type": "value", "axisLabel": {"formatter": "{value}%"},
                  "splitLine": {"lineStyle": {"color": "#eef1f6"}}},
        "yAxis": {"type": "category", "inverse": True, "data": [n.name for n in mentioned]},
        "series": [
            {"name": labels["current"], "type": "bar", "barMaxWidth": 16,
             "label": {"show": True, "position": "right", "formatter": "{c}%"},
             "data": [{"value": round(100 * n.share, 1),
                       "itemStyle": {"color": "#9aa5b1" if n.sentiment is None
                                     else sentiment_colour(n.sentiment)}}
                      for n in mentioned]},
            {"name": labels["previous"], "type": "bar", "barMaxWidth": 16,
             "itemStyle": {"color": "#d5dbe6"},
             "data": [None if n.previous_share is None else round(100 * n.previous_share, 1)
                      for n in mentioned]},
        ],
    }  # fmt: skip


def weekly_option(report: NeedsReport, day: Any) -> dict[str, Any]:
    """Weekly share of the texts mentioning each of the most mentioned aspects."""
    series = {s.topic: s for s in report.weekly.series}
    top = [n.aspect for n in report.top_needs if n.texts > 0 and n.aspect in series]
    return {
        "animation": False, "legend": {"top": 0}, "color": list(PALETTE),
        "grid": {"left": 48, "right": 24, "top": 40, "bottom": 36},
        "tooltip": {"trigger": "axis"},
        "xAxis": {"type": "category", "boundaryGap": False,
                  "data": [day(w) for w in report.weekly.weeks]},
        "yAxis": {"type": "value", "axisLabel": {"formatter": "{value}%"},
                  "splitLine": {"lineStyle": {"color": "#eef1f6"}}},
        "series": [{"name": series[key].name, "type": "line", "symbol": "circle",
                    "symbolSize": 5, "data": [round(100 * v, 1) for v in series[key].shares]}
                   for key in top[:LINE_TOPICS]],
    }  # fmt: skip


def heat_option(report: NeedsReport, names: dict[str, str],
                labels: dict[str, str]) -> dict[str, Any]:
    """Mean sentiment of each category × aspect (red negative, green positive)."""
    grid = report.category_sentiment
    return {
        "animation": False, "tooltip": {"position": "top"},
        "grid": {"left": 90, "right": 24, "top": 16, "bottom": 80},
        "xAxis": {"type": "category", "data": [names.get(a, a) for a in grid.aspects],
                  "splitArea": {"show": True}},
        "yAxis": {"type": "category", "data": grid.categories, "splitArea": {"show": True}},
        "visualMap": {"min": 0, "max": 1, "calculable": False, "orient": "horizontal",
                      "left": "center", "bottom": 0, "text": [labels["high"], labels["low"]],
                      "inRange": {"color": ["#d64541", "#faf0c8", "#2ea05a"]}},
        "series": [{"name": labels["sentiment"], "type": "heatmap",
                    "label": {"show": True},
                    "data": [[grid.aspects.index(c.aspect), grid.categories.index(c.category),
                              round(c.sentiment, 2)] for c in grid.cells]}],
    }  # fmt: skip


@router.get("/reports/needs")
def needs_page(request: Request, session: DbSession, wired: ServicesDep,
               principal: ContentReader, quarter: QuarterParam = "") -> HTMLResponse:
    """The Needs White Paper of ``quarter`` (default: the latest with content) on a page:
    counts, top needs, weekly shares, rising topics, sentiment by category, quotes."""
    zone = wired.settings.zone
    report, latest = _report(session, principal, zone, quarter)
    if report is None or latest is None:
        return render(request, "report_needs.html", {"report": None})
    translate = load_translations(request_locale(request)).gettext
    day = Formats(request_locale(request), zone).short_day
    names = {n.aspect: n.name for n in report.top_needs}
    labels = {"current": report.quarter, "previous": report.previous_quarter,
              **{key: translate(label) for key, label in HEAT_LABELS.items()}}
    return render(request, "report_needs.html", {
        "report": report, "quarters": quarter_choices(latest, report.quarter),
        "names": names,
        "needs_option": needs_option(report, labels),
        "weekly_option": weekly_option(report, day) if report.weekly.weeks else None,
        "heat_option": heat_option(report, names, labels)
        if report.category_sentiment.cells else None})


def _download(content: bytes, media_type: str, filename: str) -> Response:
    return Response(content, media_type=media_type, headers={
        **PAGE_HEADERS, "Content-Disposition": f'attachment; filename="{filename}"'})


@router.get("/reports/needs.html")
def needs_html(session: DbSession, wired: ServicesDep, principal: ContentReader,
               quarter: QuarterParam = "") -> Response:
    """The white paper of ``quarter`` as one self-contained HTML file."""
    report, _ = _report(session, principal, wired.settings.zone, quarter)
    if report is None:
        raise NotFound("no_content", "no reviews or posts yet, so no quarter to report",
                       "quarter")
    return _download(render_html(report).encode(), "text/html; charset=utf-8",
                     f"needs-{report.quarter}.html")


@router.get("/reports/needs.pdf")
def needs_pdf(session: DbSession, wired: ServicesDep, principal: ContentReader,
              quarter: QuarterParam = "") -> Response:
    """The white paper of ``quarter`` as a PDF (A4)."""
    report, _ = _report(session, principal, wired.settings.zone, quarter)
    if report is None:
        raise NotFound("no_content", "no reviews or posts yet, so no quarter to report",
                       "quarter")
    with tempfile.TemporaryDirectory() as folder:
        path = write_pdf(render_html(report), Path(folder) / "needs.pdf")
        data = path.read_bytes()
    return _download(data, "application/pdf", f"needs-{report.quarter}.pdf")
