"""Monitoring pages: the board of the 18 core metrics coloured by alert state, and the
alert history with acknowledge and resolve."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from shequ.analytics.metrics import FAMILIES, METRICS, MetricDef
from shequ.core.errors import NotFound, ValidationFailed
from shequ.core.permissions import Principal
from shequ.core.web import DbSession, Services, ServicesDep, require
from shequ.domains.alerts import service as alerts
from shequ.domains.alerts.schemas import AlertOut
from shequ.domains.events import service as events
from shequ.entrypoints.console.analysis import Analysis, Filters, Table, analysis_page
from shequ.entrypoints.console.formatting import Msg, percent, seconds
from shequ.entrypoints.console.i18n import N_
from shequ.entrypoints.console.nav import PREFIX
from shequ.entrypoints.console.rendering import request_locale

router = APIRouter(prefix=PREFIX, include_in_schema=False)
LEVELS = ("yellow", "orange", "red")
LEVEL_NAMES = {"yellow": N_("Yellow"), "orange": N_("Orange"), "red": N_("Red")}
STATE_NAMES = {"open": N_("Open"), "acknowledged": N_("Acknowledged"),
               "resolved": N_("Resolved")}
BOARD_DAYS = 28
ALERT_ROWS = 50


def metric_label(metric: MetricDef, locale: str) -> str:
    """The metric's name in the console's language."""
    return metric.label_zh if locale == "zh_CN" else metric.label_en


def shown_value(metric: MetricDef, value: float | None) -> str:
    """A metric value as the board shows it."""
    if value is None:
        return "–"
    if metric.unit == "rate":
        return percent(value)
    if metric.unit == "seconds":
        return seconds(value)
    if metric.unit == "fen":
        return f"¥{value / 100:,.0f}"
    if metric.unit == "ratio":
        return f"{value:.2f}"
    return f"{value:,.0f}"


@dataclass(frozen=True)
class MetricCard:
    """One metric on the board: its last value, its series, its worst live alert."""

    name: str
    label: str
    description: str
    last: str
    level: str
    alert_days: list[str]
    option: dict[str, Any]


def _worst(levels: list[str]) -> str:
    ranked = [level for level in LEVELS if level in levels]
    return ranked[-1] if ranked else "none"


def _spark(days: list[date], values: list[float | None], alert_days: dict[date, str]
           ) -> dict[str, Any]:
    marks = [{"coord": [day.isoformat(), values[i]], "itemStyle": {"color": _COLOURS[level]}}
             for i, day in enumerate(days) if (level := alert_days.get(day)) and
             values[i] is not None]  # fmt: skip
    return {
        "animation": False,
        "grid": {"left": 2, "right": 2, "top": 6, "bottom": 2},
        "tooltip": {"trigger": "axis"},
        "xAxis": {"type": "category", "data": [d.isoformat() for d in days], "show": False},
        "yAxis": {"type": "value", "show": False, "scale": True},
        "series": [{"type": "line", "data": values, "symbol": "none", "connectNulls": False,
                    "lineStyle": {"width": 1.5, "color": "#2f6bff"},
                    "markPoint": {"symbol": "circle", "symbolSize": 7, "data": marks,
                                  "label": {"show": False}}}],
    }  # fmt: skip


_COLOURS = {"yellow": "#d4a106", "orange": "#e8710a", "red": "#e8453c"}


def board(session: Session, services: Services, principal: Principal, filters: Filters,
          params: Mapping[str, str], locale: str) -> Analysis:
    """Daily values of the 18 metrics over the range, each card coloured by the most
    severe alert of the range that is not resolved."""
    values = events.stored_metrics(services, principal, "day", filters.date_from,
                                   filters.date_to)
    zone = services.settings.zone
    days = [filters.date_from + timedelta(days=i)
            for i in range((filters.date_to - filters.date_from).days + 1)]
    series: dict[str, dict[date, float | None]] = {name: {} for name in METRICS}
    for value in values:
        series[value.metric][value.bucket_start.astimezone(zone).date()] = value.value
    raised = alerts.list_alerts(session, principal, zone, date_from=filters.date_from,
                                date_to=filters.date_to, limit=1000)
    live: dict[str, dict[date, str]] = {name: {} for name in METRICS}
    for alert in raised.items:
        if alert.state != "resolved" and alert.grain == "day":
            day = alert.bucket_start.astimezone(zone).date()
            live[alert.metric][day] = _worst([live[alert.metric].get(day, ""), alert.level])
    cards: dict[str, list[MetricCard]] = {family: [] for family in FAMILIES}
    table = Table("daily", [N_("Metric"), *(d.isoformat() for d in days)])
    for name, metric in METRICS.items():
        points = [series[name].get(day) for day in days]
        known = [p for p in points if p is not None]
        cards[metric.family].append(MetricCard(
            name=name, label=metric_label(metric, locale), description=metric.description,
            last=shown_value(metric, known[-1] if known else None),
            level=_worst(list(live[name].values())),
            alert_days=sorted(d.isoformat() for d in live[name]),
            option=_spark(days, points, live[name]),
        ))  # fmt: skip
        table.rows.append([metric_label(metric, locale), *(
            "" if p is None else round(p, 4) for p in points)])
    families = [(family, family.label_zh if locale == "zh_CN" else family.label_en,
                 cards[family.id]) for family in FAMILIES.values()]  # fmt: skip
    stored = bool(values)
    return Analysis({"families": families, "stored": stored, "level_names": LEVEL_NAMES},
                    [table])


@router.get("/metrics")
def metrics_page(request: Request, session: DbSession, wired: ServicesDep,
                 principal: Annotated[Principal, require("analytics:read")]) -> Response:
    locale = request_locale(request)
    return analysis_page(request, wired, "metrics.html", "metrics",
                         lambda f, p: board(session, wired, principal, f, p, locale),
                         default_days=BOARD_DAYS)


def _alert_filters(params: Mapping[str, str]) -> dict[str, Any]:
    state = params.get("state") or None
    level = params.get("level") or None
    metric = params.get("metric") or None
    if state is not None and state not in STATE_NAMES:
        raise ValidationFailed("unknown_state", f"unknown state {state!r}", "state")
    if level is not None and level not in LEVELS:
        raise ValidationFailed("unknown_level", f"unknown level {level!r}", "level")
    if metric is not None and metric not in METRICS:
        raise ValidationFailed("unknown_metric", f"unknown metric {metric!r}", "metric")
    return {"state": state, "level": level, "metric": metric}


def alert_history(session: Session, services: Services, principal: Principal,
                  filters: Filters, params: Mapping[str, str], locale: str) -> Analysis:
    """Alerts of the range, newest first, with what raised them."""
    chosen = _alert_filters(params)
    page = alerts.list_alerts(session, principal, services.settings.zone,
                              date_from=filters.date_from, date_to=filters.date_to,
                              limit=ALERT_ROWS, **chosen)
    table = Table("alerts", [N_("Bucket"), N_("Metric"), N_("Level"), N_("Value"),
                             N_("Baseline"), N_("Score"), N_("State"), N_("Rule")])
    for alert in page.items:
        metric = METRICS[alert.metric]
        table.rows.append([
            _bucket(alert, services), metric_label(metric, locale),
            Msg(LEVEL_NAMES[alert.level]),
            shown_value(metric, alert.value), shown_value(metric, alert.baseline),
            "–" if alert.score is None else f"{alert.score:.1f}", Msg(STATE_NAMES[alert.state]),
            alert.rule_name,
        ])  # fmt: skip
    context = {"alerts": page.items, "total": page.total, "chosen": chosen,
               "states": STATE_NAMES, "level_names": LEVEL_NAMES,
               "metric_names": {n: metric_label(m, locale) for n, m in METRICS.items()},
               "shown": lambda alert: shown_value(METRICS[alert.metric], alert.value),
               "shown_baseline": lambda alert: shown_value(METRICS[alert.metric],
                                                           alert.baseline),
               "bucket": lambda alert: _bucket(alert, services)}
    return Analysis(context, [table])


def _bucket(alert: AlertOut, services: Services) -> str:
    local: datetime = alert.bucket_start.astimezone(services.settings.zone)
    return local.date().isoformat() if alert.grain == "day" else local.strftime("%Y-%m-%d %H:00")


@router.get("/alerts")
def alerts_page(request: Request, session: DbSession, wired: ServicesDep,
                principal: Annotated[Principal, require("alerts:read")]) -> Response:
    locale = request_locale(request)
    return analysis_page(request, wired, "alerts.html", "alerts",
                         lambda f, p: alert_history(session, wired, principal, f, p, locale),
                         default_days=90)


@router.post("/alerts/{alert_id}/{action}", response_model=None)
def change_alert(session: DbSession, wired: ServicesDep, alert_id: int, action: str,
                 principal: Annotated[Principal, require("alerts:write")],
                 note: Annotated[str, Form(max_length=500)] = "",
                 back: Annotated[str, Form(max_length=500)] = "") -> Response:
    """Acknowledge or resolve an alert, then go back to the list it was shown in (an
    illegal move is answered by the console's error page with the reason)."""
    if action not in ("acknowledge", "resolve"):
        raise NotFound("unknown_action", f"no action {action!r}")
    change = alerts.acknowledge_alert if action == "acknowledge" else alerts.resolve_alert
    change(session, wired.clock, principal, alert_id, note or None)
    target = back if back.startswith(f"{PREFIX}/alerts") and "//" not in back \
        else f"{PREFIX}/alerts"
    return RedirectResponse(target, status_code=303)
