"""Customer-intelligence pages: the customer list, the 360° view with its growth trajectory,
the value matrix, saved segments, lifecycle stages and membership tiers.

Figures come from the insight, customers, segments, lifecycle and membership services;
the routes parse, call and render. Customer insight spans every brand, so the services
refuse brand partners and the sidebar hides these pages from them (docs/console.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from shequ.core.errors import ValidationFailed
from shequ.core.permissions import Principal
from shequ.core.web import DbSession, ServicesDep, require
from shequ.domains.customers import service as customers
from shequ.domains.customers.schemas import CustomerOut
from shequ.domains.insight import service as insight
from shequ.domains.insight import view
from shequ.domains.insight.schemas import Customer360, GroupFiguresOut
from shequ.domains.lifecycle import service as lifecycle
from shequ.domains.membership import service as membership
from shequ.entrypoints.console.analysis import CHANNEL_NAMES, Table, csv_response
from shequ.entrypoints.console.formatting import percent
from shequ.entrypoints.console.i18n import N_, load_translations
from shequ.entrypoints.console.nav import PREFIX
from shequ.entrypoints.console.rendering import render, request_locale
from shequ.stats.rfm import GROUPS
from shequ.stats.value_tiers import TIER_NAMES

router = APIRouter(prefix=PREFIX, include_in_schema=False)
CustomerReader = Annotated[Principal, require("customers:read")]
InsightReader = Annotated[Principal, require("insight:read")]
InsightWriter = Annotated[Principal, require("insight:write")]
SegmentReader = Annotated[Principal, require("segments:read")]
SegmentWriter = Annotated[Principal, require("segments:write")]
MemberReader = Annotated[Principal, require("membership:read")]

PAGE_SIZE = 50
STAGE_NAMES = {"new": N_("New"), "active": N_("Active customer"), "paying": N_("Paying"),
               "loyal": N_("Loyal"), "advocate": N_("Advocate"), "dormant": N_("Dormant")}
MEMBER_TIER_NAMES = {"none": N_("Not a member"), "silver": N_("Silver"), "gold": N_("Gold"),
                     "black_gold": N_("Black gold")}
MILESTONE_NAMES = {"first_visit": N_("First visit"), "registered": N_("Registered"),
                   "first_order": N_("First order"), "repeat_purchase": N_("Repeat purchase"),
                   "tier_change": N_("Membership"), "stage_change": N_("Lifecycle"),
                   "first_review": N_("First review"), "first_post": N_("First post"),
                   "creator": N_("Creator")}
TAG_KIND_NAMES = {"category_affinity": N_("Category affinity"),
                  "brand_affinity": N_("Brand affinity"),
                  "price_sensitivity": N_("Price sensitivity"),
                  "preferred_channel": N_("Preferred channel"),
                  "preferred_hour": N_("Preferred hour"),
                  "preferred_daypart": N_("Preferred time of day")}
ORDER_STATUS_NAMES = {"created": N_("Awaiting payment"), "paid": N_("Paid"),
                      "shipped": N_("Shipped"), "completed": N_("Completed"),
                      "cancelled": N_("Cancelled"), "refunded": N_("Refunded")}
# The trajectory's rows, top to bottom: the order a customer's story usually follows.
STORY_ORDER = ("first_visit", "registered", "first_order", "repeat_purchase", "first_review",
               "first_post", "creator", "tier_change", "stage_change")
MILESTONE_COLOURS = {"tier_change": "#e8684a", "stage_change": "#9aa3b5"}
MODEL_NAMES = {"bgnbd": "BG/NBD", "gamma_gamma": "Gamma-Gamma"}
GROUP_NAMES = {group.code: (group.label_zh, group.label_en) for group in GROUPS}
SHARED = {"stage_names": STAGE_NAMES, "member_tier_names": MEMBER_TIER_NAMES,
          "channel_names": CHANNEL_NAMES}


def yuan(fen: float | None) -> str:
    """Fen as a table shows money: ``¥12,999.00``; None → ``–``."""
    return "–" if fen is None else f"¥{fen / 100:,.2f}"


def multiple(value: float | None) -> str:
    """``2.5`` → ``2.50×``; None → ``–``."""
    return "–" if value is None else f"{value:.2f}×"


def tier_name(code: str, locale: str) -> str:
    """A value tier (t1..t5) in the console's language."""
    zh, en = TIER_NAMES[code]
    return zh if locale == "zh_CN" else en


def group_name(code: str, locale: str) -> str:
    """An RFM group in the console's language."""
    zh, en = GROUP_NAMES[code]
    return zh if locale == "zh_CN" else en


def _when(value: Any) -> datetime | None:
    """A JSON-dumped instant of the 360° view back as a datetime."""
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def csv_or_page(request: Request, template: str, stem: str, context: dict[str, Any],
                 tables: Sequence[Table], status_code: int = 200) -> Response:
    """Answer ``?format=csv&table=name`` with that table, else the page."""
    params = dict(request.query_params)
    if params.get("format") == "csv":
        wanted = params.get("table") or (tables[0].name if tables else "")
        for table in tables:
            if table.name == wanted:
                translate = load_translations(request_locale(request)).gettext
                return csv_response(table, translate, stem)
        raise ValidationFailed("unknown_table", f"this page has no table {wanted!r}", "table")
    link = {key: value for key, value in params.items() if key not in ("format", "table")}
    return render(request, template, {
        **SHARED, "tables": {table.name: table for table in tables},
        "csv_link": lambda name: f"{request.url.path}?"
        + urlencode({**link, "format": "csv", "table": name}),
        **context}, status_code=status_code)  # fmt: skip


# --- customers -------------------------------------------------------------------------------

def _customer_rows(session: Session, principal: Principal, found: Sequence[CustomerOut],
                   locale: str) -> list[dict[str, Any]]:
    """The listed customers with their value tier, RFM group, stage and member tier (three
    queries for the page, whatever its length)."""
    ids = [customer.id for customer in found]
    insight_known = principal.can("insight:read")
    values = insight.value_labels(session, principal, ids) if insight_known else {}
    stages = lifecycle.current_stages(session, customer_ids=ids) if insight_known else {}
    tiers = membership.current_tiers(session, customer_ids=ids) \
        if principal.can("membership:read") else {}
    rows = []
    for customer in found:
        value = values.get(customer.id)
        rows.append({
            "customer": customer,
            "value_tier": tier_name(value[0], locale) if value else None,
            "rfm_group": group_name(value[1], locale) if value else None,
            "stage": stages.get(customer.id),
            "member_tier": tiers.get(customer.id),
        })  # fmt: skip
    return rows


@router.get("/customers")
def customers_page(request: Request, session: DbSession, principal: CustomerReader) -> Response:
    """Customers newest first, by exact id or filtered by city and channel, 50 a page."""
    params = request.query_params
    query = params.get("q", "").strip()[:64]
    city = params.get("city", "").strip()[:64]
    channel = params.get("channel", "").strip()[:64]
    raw_page = params.get("page", "1")
    page = int(raw_page) if raw_page.isdigit() and int(raw_page) >= 1 else 1
    found: list[CustomerOut]
    if query:
        exists = customers.customer_ids_by_key(session, [query])
        found = [customers.get_customer(session, query)] if query in exists else []
        total = len(found)
    else:
        listed = customers.list_customers(session, city=city or None, channel=channel or None,
                                          limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        found, total = list(listed.items), listed.total
    keep = {key: value for key, value in (("city", city), ("channel", channel)) if value}
    pages = max(1, -(-total // PAGE_SIZE))
    return render(request, "customers.html", {
        **SHARED, "rows": _customer_rows(session, principal, found, request_locale(request)),
        "total": total, "query": query, "city": city, "channel": channel, "page": page,
        "pages": pages, "page_link": lambda n: "?" + urlencode({**keep, "page": n}),
    })  # fmt: skip


def trajectory_option(found: Customer360, locale: str) -> dict[str, Any]:
    """The growth trajectory: milestones on a time axis, one row per kind of step, joined
    in time order so the customer's story reads left to right."""
    translate = load_translations(locale).gettext
    present = {step.kind for step in found.trajectory}
    kinds = [kind for kind in STORY_ORDER if kind in present] + sorted(
        present.difference(STORY_ORDER))
    names = [translate(MILESTONE_NAMES.get(kind, kind)) for kind in kinds]
    points = [{"name": step.title + (f" · {step.detail}" if step.detail else ""),
               "value": [step.at.isoformat(), names[kinds.index(step.kind)]],
               "itemStyle": {"color": MILESTONE_COLOURS.get(step.kind, "#2f6bff")},
               "label": {"show": step.kind != "stage_change"}}
              for step in found.trajectory]  # fmt: skip
    return {
        "animation": False,
        "grid": {"left": 110, "right": 40, "top": 24, "bottom": 40},
        "tooltip": {"trigger": "item", "formatter": "{b}"},
        "xAxis": {"type": "time", "splitLine": {"lineStyle": {"color": "#eef1f6"}}},
        "yAxis": {"type": "category", "data": names, "inverse": True,
                  "splitLine": {"show": True, "lineStyle": {"color": "#f3f5f9"}}},
        "series": [
            {"name": "path", "type": "line", "data": [p["value"] for p in points],
             "symbol": "none", "lineStyle": {"color": "#c9d1de", "width": 1.5, "type": "dashed"},
             "tooltip": {"show": False}, "z": 1},
            {"name": "milestones", "type": "scatter", "data": points, "symbolSize": 14,
             "z": 2, "labelLayout": {"hideOverlap": True},
             "label": {"show": True, "position": "top", "formatter": "{b}", "fontSize": 11,
                       "color": "#3a4254"}},
        ],
    }  # fmt: skip


@router.get("/customers/{external_id}")
def customer_page(request: Request, session: DbSession, wired: ServicesDep,
                  principal: InsightReader, external_id: str) -> Response:
    """Everything about one customer and the growth trajectory chart."""
    found = view.customer_360(wired, session, principal, external_id[:64])
    locale = request_locale(request)
    profile = found.profile
    tags: dict[str, list[Any]] = {}
    for tag in found.tags:
        tags.setdefault(tag.kind, []).append(tag)
    member = found.member_tier or {}
    return render(request, "customer_360.html", {
        **SHARED, "found": found, "customer": found.customer, "profile": profile,
        "registered_at": _when(found.customer.get("registered_at")),
        "value_tier": tier_name(profile.value_tier, locale) if profile else None,
        "rfm_group": group_name(profile.rfm_group, locale) if profile else None,
        "member_tier": member.get("tier", "none"), "member": member,
        "tags": tags, "tag_kind_names": TAG_KIND_NAMES,
        "orders": [{**order, "created": _when(order["created_at"])} for order in found.orders],
        "reviews": [{**review, "created": _when(review["created_at"])}
                    for review in found.reviews],
        "posts": [{**post, "created": _when(post["created_at"])} for post in found.posts],
        "trajectory_option": trajectory_option(found, locale) if found.trajectory else None,
        "milestone_names": MILESTONE_NAMES, "order_status_names": ORDER_STATUS_NAMES,
        "yuan": yuan,
    })  # fmt: skip


# --- value matrix ----------------------------------------------------------------------------

def _figures_table(name: str, label: str, figures: list[GroupFiguresOut],
                   naming: Any) -> Table:
    table = Table(name, [label, N_("Customer count"), N_("Share of customers"), N_("GMV"),
                         N_("GMV share"), N_("Average spend"), N_("Spend multiple"),
                         N_("Repurchase rate")])
    for row in figures:
        table.rows.append([naming(row.code), row.customers, percent(row.share_of_customers),
                           yuan(row.gmv_fen), percent(row.gmv_share),
                           yuan(row.average_spend_fen), multiple(row.spend_multiple),
                           percent(row.repurchase_rate)])
    return table


def share_option(labels: list[str], customers_share: list[float],
                 gmv_share: list[float | None], names: tuple[str, str]) -> dict[str, Any]:
    """Bars of the share of customers against the share of GMV per group (in %)."""
    def pct(values: Sequence[float | None]) -> list[float | None]:
        return [None if v is None else round(v * 100, 1) for v in values]
    return {
        "animation": False,
        "legend": {"top": 0},
        "grid": {"left": 48, "right": 16, "top": 36, "bottom": 60},
        "tooltip": {"trigger": "axis"},
        "xAxis": {"type": "category", "data": labels,
                  "axisLabel": {"interval": 0, "rotate": 20 if len(labels) > 5 else 0}},
        "yAxis": {"type": "value", "axisLabel": {"formatter": "{value}%"},
                  "splitLine": {"lineStyle": {"color": "#eef1f6"}}},
        "series": [
            {"name": names[0], "type": "bar", "data": pct(customers_share),
             "itemStyle": {"color": "#9aa3b5"}, "barMaxWidth": 28},
            {"name": names[1], "type": "bar", "data": pct(gmv_share),
             "itemStyle": {"color": "#2f6bff"}, "barMaxWidth": 28},
        ],
    }  # fmt: skip


@router.get("/value-matrix")
def value_matrix_page(request: Request, session: DbSession,
                      principal: InsightReader) -> Response:
    """The five value tiers and the eight RFM groups with their figures and the models."""
    matrix = insight.value_matrix(session, principal)
    locale = request_locale(request)
    translate = load_translations(locale).gettext
    tiers = _figures_table("tiers", N_("Value tier"), matrix.tiers,
                           lambda code: tier_name(code, locale))
    groups = _figures_table("rfm_groups", N_("RFM group"), matrix.rfm_groups,
                            lambda code: group_name(code, locale))
    models = Table("models", [N_("Model"), N_("Parameter"), N_("Value")])
    for model, params in matrix.models.items():
        for key, value in (params.items() if isinstance(params, dict) else [("", params)]):
            shown = round(value, 4) if isinstance(value, float) else value
            models.rows.append([MODEL_NAMES.get(model, model), key, shown])
    legend = (translate("Share of customers"), translate("GMV share"))

    def option(rows: list[GroupFiguresOut], naming: Any) -> dict[str, Any]:
        return share_option([naming(r.code) for r in rows],
                            [r.share_of_customers for r in rows], [r.gmv_share for r in rows],
                            legend)
    return csv_or_page(request, "value_matrix.html", "value-matrix", {
        "matrix": matrix, "base_name": tier_name(matrix.base, locale),
        "tier_option": option(matrix.tiers, lambda c: tier_name(c, locale)),
        "group_option": option(matrix.rfm_groups, lambda c: group_name(c, locale)),
    }, [tiers, groups, models])  # fmt: skip
