"""Console pages of lifecycle stages (counts, daily series, transition matrix, LTV per
stage, per-stage strategies) and membership tiers (rules, benefits, per-tier figures)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from shequ.core.clock import parse_day
from shequ.core.errors import ValidationFailed
from shequ.core.permissions import Principal
from shequ.core.web import DbSession, Services, ServicesDep
from shequ.domains.insight import service as insight
from shequ.domains.lifecycle import service as lifecycle
from shequ.domains.lifecycle.schemas import StrategyIn
from shequ.domains.membership import service as membership
from shequ.entrypoints.console.analysis import Table
from shequ.entrypoints.console.customers import (
    MEMBER_TIER_NAMES,
    STAGE_NAMES,
    InsightReader,
    InsightWriter,
    MemberReader,
    csv_or_page,
    multiple,
    yuan,
)
from shequ.entrypoints.console.formatting import Msg, percent
from shequ.entrypoints.console.i18n import N_, load_translations
from shequ.entrypoints.console.nav import PREFIX
from shequ.entrypoints.console.rendering import request_locale

router = APIRouter(prefix=PREFIX, include_in_schema=False)
TRANSITION_DAYS = 30
SERIES_DAYS = 60
STAGE_COLOURS = {"new": "#5b8ff9", "active": "#5ad8a6", "paying": "#f6bd16",
                 "loyal": "#e8684a", "advocate": "#9270ca", "dormant": "#9aa3b5"}
ACTION_NAMES = {"coupon": N_("Coupon"), "push": N_("App push"),
                "wecom_message": N_("WeCom message"), "sms": N_("SMS"), "email": N_("E-mail"),
                "invite_to_hub": N_("Invite to the community hub"),
                "creator_invite": N_("Invite to the creator programme"),
                "none": N_("No outreach")}
BASIS_NAMES = {"spend": N_("Net spend"), "points": N_("Growth points")}




# --- lifecycle -------------------------------------------------------------------------------

def _last_day(services: Services) -> date:
    """The last day of the data (today when there is none yet)."""
    try:
        return lifecycle.data_window(services)[1]
    except ValidationFailed:
        return services.clock.now().astimezone(services.settings.zone).date()


def _lifecycle_days(services: Services, params: Mapping[str, str]) -> tuple[date, date]:
    raw_day = params.get("day", "").strip()
    day = parse_day(raw_day, "day") if raw_day else _last_day(services)
    raw_from = params.get("from", "").strip()
    since = parse_day(raw_from, "from") if raw_from else day - timedelta(days=TRANSITION_DAYS)
    if since > day:
        raise ValidationFailed("bad_range", "the first day is after the day shown", "from")
    return since, day


def series_option(points: Sequence[Any], stage_labels: dict[str, str]) -> dict[str, Any]:
    """One line per stage: its customers on each refreshed day."""
    return {
        "animation": False, "legend": {"top": 0},
        "grid": {"left": 56, "right": 24, "top": 36, "bottom": 36},
        "tooltip": {"trigger": "axis"},
        "xAxis": {"type": "category", "boundaryGap": False,
                  "data": [p.day.isoformat() for p in points]},
        "yAxis": {"type": "value", "minInterval": 1,
                  "splitLine": {"lineStyle": {"color": "#eef1f6"}}},
        "series": [{"name": label, "type": "line", "symbol": "none",
                    "data": [p.counts.get(stage, 0) for p in points],
                    "itemStyle": {"color": STAGE_COLOURS[stage]}}
                   for stage, label in stage_labels.items()],
    }  # fmt: skip


def lifecycle_context(session: Session, services: Services, principal: Principal,
                      params: Mapping[str, str], locale: str) -> tuple[dict[str, Any],
                                                                       list[Table]]:
    """Stage counts on a day, the daily series, transitions, LTV per stage, strategies."""
    lifecycle.refuse_partners(principal)
    since, day = _lifecycle_days(services, params)
    translate = load_translations(locale).gettext
    labels = {stage: translate(name) for stage, name in STAGE_NAMES.items()}
    snapshot = lifecycle.snapshot(session, day)
    points = lifecycle.series(session, day - timedelta(days=SERIES_DAYS - 1), day)
    moved = lifecycle.transitions(session, since, day)
    ltv = lifecycle.ltv_by_stage(session, day, insight.predicted_clv(session),
                                 zone=services.settings.zone)
    peak = max((v for row in moved.matrix for v in row), default=0)
    value_table = Table("ltv", [N_("Stage"), N_("Customer count"), N_("Average realised spend"),
                                N_("Average predicted CLV")])
    for value in ltv.stages:
        value_table.rows.append([Msg(STAGE_NAMES[value.stage]), value.customers,
                                 yuan(value.avg_realised_fen),
                                 yuan(value.avg_predicted_clv_fen)])
    flows = Table("transitions", [N_("From \\ to"), *(STAGE_NAMES[s] for s in moved.stages)])
    for stage, counts in zip(moved.stages, moved.matrix, strict=True):
        flows.rows.append([Msg(STAGE_NAMES[stage]), *counts])
    return {
        "day": day, "since": since, "snapshot": snapshot, "moved": moved, "peak": peak,
        "series_option": series_option(points, labels) if points else None,
        "strategies": lifecycle.strategies(session), "action_names": ACTION_NAMES,
        "error": None,
    }, [flows, value_table]  # fmt: skip


@router.get("/lifecycle")
def lifecycle_page(request: Request, session: DbSession, wired: ServicesDep,
                   principal: InsightReader) -> Response:
    """Lifecycle stages: counts, series, transition matrix, LTV, strategies."""
    params = dict(request.query_params)
    try:
        context, tables = lifecycle_context(session, wired, principal, params,
                                            request_locale(request))
    except ValidationFailed as exc:
        context, tables = lifecycle_context(session, wired, principal, {},
                                            request_locale(request))
        context["error"] = exc
        return csv_or_page(request, "lifecycle.html", "lifecycle", context, tables, 422)
    return csv_or_page(request, "lifecycle.html", "lifecycle", context, tables)


@router.post("/lifecycle/strategies/{stage}", response_model=None)
def update_strategy(request: Request, session: DbSession, wired: ServicesDep,
                    principal: InsightWriter, stage: str,
                    action: Annotated[str, Form(max_length=32)] = "none",
                    segment_key: Annotated[str, Form(max_length=200)] = "",
                    channel: Annotated[str, Form(max_length=200)] = "",
                    message: Annotated[str, Form(max_length=5000)] = "",
                    note: Annotated[str, Form(max_length=5000)] = "") -> Response:
    """Replace a stage's strategy; a bad one re-shows the page with the reason."""
    try:
        data = StrategyIn.model_validate({
            "action": action, "segment_key": segment_key.strip() or None,
            "channel": channel.strip() or None, "message": message.strip() or None,
            "note": note.strip() or None})
        with session.begin_nested():
            lifecycle.update_strategy(session, wired.clock, principal, stage, data)
    except ValidationError as exc:
        first = exc.errors()[0]
        error = ValidationFailed("invalid", str(first["msg"]),
                                 ".".join(str(part) for part in first["loc"]))
    except ValidationFailed as exc:
        error = exc
    else:
        return RedirectResponse(f"{PREFIX}/lifecycle#strategy-{stage}", status_code=303)
    context, tables = lifecycle_context(session, wired, principal, {}, request_locale(request))
    context["error"] = error
    return csv_or_page(request, "lifecycle.html", "lifecycle", context, tables, 422)


# --- membership ------------------------------------------------------------------------------

def spend_option(labels: list[str], multiples: list[float | None], name: str
                 ) -> dict[str, Any]:
    """Bars of each tier's average spend as a multiple of non-members'."""
    return {
        "animation": False, "grid": {"left": 48, "right": 16, "top": 24, "bottom": 32},
        "tooltip": {"trigger": "axis"},
        "xAxis": {"type": "category", "data": labels},
        "yAxis": {"type": "value", "splitLine": {"lineStyle": {"color": "#eef1f6"}}},
        "series": [{"name": name, "type": "bar", "data": multiples, "barMaxWidth": 36,
                    "itemStyle": {"color": "#2f6bff", "borderRadius": [4, 4, 0, 0]},
                    "label": {"show": True, "position": "top"}}],
    }  # fmt: skip


@router.get("/membership")
def membership_page(request: Request, session: DbSession, wired: ServicesDep,
                    principal: MemberReader) -> Response:
    """Tier rules (threshold, grace, benefits) and per-tier figures of the last
    evaluated day."""
    membership.refuse_partners(principal)
    rules = membership.list_rules(session)
    day = membership.last_evaluated_day(session)
    found = membership.figures(session, day, zone=wired.settings.zone, principal=principal) \
        if day is not None else None
    translate = load_translations(request_locale(request)).gettext
    table = Table("tiers", [N_("Tier"), N_("Customer count"), N_("Net spend"),
                            N_("Share of spend"), N_("Average spend"), N_("Spend multiple"),
                            N_("Repurchase rate")])
    for row in found.items if found else []:
        table.rows.append([Msg(MEMBER_TIER_NAMES[row.tier]), row.customers,
                           yuan(row.spend_fen), percent(row.spend_share),
                           yuan(row.average_spend_fen), multiple(row.spend_multiple),
                           percent(row.repurchase_rate)])
    option = spend_option(
        [translate(MEMBER_TIER_NAMES[row.tier]) for row in found.items],
        [None if row.spend_multiple is None else round(row.spend_multiple, 2)
         for row in found.items], translate("Spend multiple")) if found else None
    return csv_or_page(request, "membership.html", "membership", {
        "rules": rules, "day": day, "found": found, "basis_names": BASIS_NAMES,
        "spend_option": option, "yuan": yuan,
    }, [table])  # fmt: skip
