"""Console pages of campaigns and the shared calendar (docs/campaigns.md): the campaign
list with filters, a campaign's phases, products, channels, results per phase with KPI
bars and (ESG) impact card, the create and edit form with field errors, and the calendar
(month or week) with the campaigns' phases as coloured bars and the conflicts panel.

Everything is a call to ``campaigns.campaign_service`` or ``campaigns.calendar``; the
routes parse the forms into their schemas, call them and render.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from shequ.core.clock import parse_day
from shequ.core.errors import Conflict, ValidationFailed
from shequ.core.money import yuan_to_fen
from shequ.core.permissions import Principal
from shequ.core.web import DbSession, ServicesDep, require
from shequ.domains.campaigns import calendar
from shequ.domains.campaigns import campaign_service as campaigns
from shequ.domains.campaigns.campaign_schemas import (
    CampaignIn,
    CampaignOut,
    KpiIn,
    PhaseIn,
    ProductLineIn,
    SlotIn,
    View,
)
from shequ.domains.catalog import service as catalog
from shequ.entrypoints.console.formatting import Msg
from shequ.entrypoints.console.i18n import N_
from shequ.entrypoints.console.nav import PREFIX
from shequ.entrypoints.console.rendering import render

router = APIRouter(prefix=PREFIX, include_in_schema=False)
Reader = Annotated[Principal, require("campaigns:read")]
Writer = Annotated[Principal, require("campaigns:write")]
CampaignId = Annotated[int, Path(ge=1, le=2**31 - 1)]

LIST_PATH = f"{PREFIX}/campaigns"
CALENDAR_PATH = f"{PREFIX}/calendar"
PAGE = 50
PHASES = ("teaser", "seeding", "conversion", "word_of_mouth")
TIER_NAMES = {"brand_day": N_("Brand day"), "holiday": N_("Holiday"),
              "hot_topic": N_("Hot topic")}
KIND_NAMES = {"commercial": N_("Commercial"), "esg": N_("ESG / social value")}
STATUS_NAMES = {"draft": N_("Draft"), "scheduled": N_("Scheduled"), "live": N_("Live"),
                "ended": N_("Ended")}
STATUS_BADGES = {"draft": "badge-grey", "scheduled": "badge-blue", "live": "badge-green",
                 "ended": "badge-grey"}
PHASE_NAMES = {"teaser": N_("Teaser"), "seeding": N_("Seeding"),
               "conversion": N_("Limited-time conversion"),
               "word_of_mouth": N_("Word of mouth")}
CHANNEL_NAMES = {"app_home_banner": N_("App home banner"), "live_room": N_("Live room"),
                 "wechat_group": N_("WeChat group"), "xiaohongshu": N_("Xiaohongshu"),
                 "douyin": N_("Douyin"), "push_message": N_("Push message")}
CONFLICT_NAMES = {"product_overlap": N_("Same product"), "stock": N_("Stock"),
                  "budget": N_("Budget"), "channel": N_("Channel slot")}
KPI_NAMES = {"gmv_fen": N_("GMV"), "orders": N_("Orders"),
             "new_customers": N_("New customers"), "ugc_posts": N_("UGC (posts + reviews)")}
SHARED = {"tier_names": TIER_NAMES, "kind_names": KIND_NAMES, "status_names": STATUS_NAMES,
          "status_badges": STATUS_BADGES, "phase_names": PHASE_NAMES,
          "channel_names": CHANNEL_NAMES, "conflict_names": CONFLICT_NAMES,
          "kpi_names": KPI_NAMES, "phases": PHASES, "list_path": LIST_PATH,
          "calendar_path": CALENDAR_PATH}
SEPARATOR = re.compile(r"\s*[,，\t]\s*")
MINUTE_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M")


def _choice(value: str | None, allowed: Any) -> str | None:
    return value if value in allowed else None


# --- the list ------------------------------------------------------------------------


@router.get("/campaigns")
def campaigns_page(request: Request, session: DbSession, wired: ServicesDep,
                   principal: Reader) -> Response:
    """Campaigns newest first, filtered by tier, type, status and a text in name or code."""
    params = request.query_params
    filters = {"tier": _choice(params.get("tier"), TIER_NAMES),
               "kind": _choice(params.get("kind"), KIND_NAMES),
               "status": _choice(params.get("status"), STATUS_NAMES),
               "q": params.get("q", "").strip()[:100]}
    try:
        offset = max(0, min(int(params.get("offset", "0")), 10**6))
    except ValueError:
        offset = 0
    page = campaigns.list_campaigns(session, wired.clock, principal, zone=wired.settings.zone,
                                    tier=filters["tier"], kind=filters["kind"],
                                    status=filters["status"],  # type: ignore[arg-type]
                                    q=filters["q"] or None, limit=PAGE, offset=offset)
    kept = {k: v for k, v in filters.items() if v}
    return render(request, "campaigns.html", {
        **SHARED, "page": page, "filters": filters, "offset": offset, "page_size": PAGE,
        "kept": kept, "saved": params.get("deleted") == "1"})


# --- the form ------------------------------------------------------------------------


@dataclass
class Form:
    """The form's raw values and the errors by field name."""

    values: dict[str, str]
    errors: dict[str, tuple[int | None, str]] = field(default_factory=dict)
    """``field -> (line number or None, message)``; a ``Msg`` message is translated."""

    def fail(self, name: str, message: str, line: int | None = None) -> None:
        self.errors.setdefault(name, (line, message))


FIELDS = ("code", "name", "tier", "kind", "brand", "starts_on", "ends_on", "budget",
          "kpi_gmv", "kpi_orders", "kpi_new_customers", "kpi_ugc_posts", "donation",
          "products", "channels", *(f"phase_{k}_{end}" for k in PHASES
                                    for end in ("starts_on", "ends_on")))


def _blank_form() -> Form:
    values = dict.fromkeys(FIELDS, "")
    values.update(tier="holiday", kind="commercial", draft="")
    return Form(values)


def _yuan(text: str) -> str:
    return f"{Decimal(text) / 100:.2f}".rstrip("0").rstrip(".") if text else ""


def _form_of(campaign: CampaignOut, zone: Any) -> Form:
    form = _blank_form()
    v = form.values
    v.update(code=campaign.code, name=campaign.name, tier=campaign.tier, kind=campaign.kind,
             brand=campaign.brand or "", starts_on=campaign.starts_on.isoformat(),
             ends_on=campaign.ends_on.isoformat(), draft="on" if campaign.draft else "",
             budget=_yuan(str(campaign.budget_fen)),
             kpi_gmv=_yuan(str(campaign.kpi.gmv_fen)) if campaign.kpi.gmv_fen is not None
             else "",
             kpi_orders=_text(campaign.kpi.orders),
             kpi_new_customers=_text(campaign.kpi.new_customers),
             kpi_ugc_posts=_text(campaign.kpi.ugc_posts),
             donation=f"{Decimal(campaign.donation_bp) / 100:g}" if campaign.donation_bp else "")
    for phase in campaign.phases:
        v[f"phase_{phase.kind}_starts_on"] = phase.starts_on.isoformat()
        v[f"phase_{phase.kind}_ends_on"] = phase.ends_on.isoformat()
    v["products"] = "\n".join(", ".join(
        [line.sku, _text(line.allocation), line.impact_unit or "",
         f"{line.impact_per_unit:g}" if line.impact_per_unit is not None else ""]).rstrip(", ")
        for line in campaign.products)
    v["channels"] = "\n".join(
        f"{slot.channel}, {slot.starts_at.astimezone(zone):%Y-%m-%d %H:%M}, "
        f"{slot.ends_at.astimezone(zone):%Y-%m-%d %H:%M}" for slot in campaign.channels)
    return form


def _text(value: int | None) -> str:
    return "" if value is None else str(value)


def _whole(form: Form, name: str) -> int | None:
    text = form.values[name].replace(",", "").strip()
    if not text:
        return None
    if not text.isdigit():
        form.fail(name, Msg(N_("Enter a whole number of 0 or more.")))
        return None
    return int(text)


def _money(form: Form, name: str) -> int | None:
    text = form.values[name].replace(",", "").strip()
    if not text:
        return None
    try:
        fen = yuan_to_fen(text)
    except ValueError:
        form.fail(name, Msg(N_("Enter an amount in yuan, such as 1200 or 99.50.")))
        return None
    if fen < 0:
        form.fail(name, Msg(N_("Enter an amount of 0 or more.")))
        return None
    return fen


def _day(form: Form, name: str) -> date | None:
    text = form.values[name].strip()
    if not text:
        return None
    try:
        return parse_day(text, name)
    except ValidationFailed:
        form.fail(name, Msg(N_("Enter a date as YYYY-MM-DD.")))
        return None


def _product_lines(form: Form) -> list[dict[str, Any]]:
    found = []
    for number, raw in enumerate(form.values["products"].splitlines(), start=1):
        if not raw.strip():
            continue
        cells = [*SEPARATOR.split(raw.strip()), "", "", ""]
        line: dict[str, Any] = {"sku": cells[0]}
        if cells[1]:
            if not cells[1].isdigit():
                form.fail("products", Msg(N_("The allocation must be a whole number.")), number)
                continue
            line["allocation"] = int(cells[1])
        if cells[2]:
            line["impact_unit"] = cells[2]
        if cells[3]:
            try:
                line["impact_per_unit"] = Decimal(cells[3])
            except InvalidOperation:
                form.fail("products", Msg(N_("The impact per unit must be a number.")), number)
                continue
        found.append(line)
    return found


def _slot_lines(form: Form, zone: Any) -> list[dict[str, Any]]:
    found = []
    for number, raw in enumerate(form.values["channels"].splitlines(), start=1):
        if not raw.strip():
            continue
        cells = SEPARATOR.split(raw.strip())
        if len(cells) != 3:
            form.fail("channels", Msg(N_("Write channel, start, end.")), number)
            continue
        moments = []
        for text in cells[1:]:
            for pattern in MINUTE_FORMATS:
                try:
                    moments.append(datetime.strptime(text, pattern).replace(tzinfo=zone))
                    break
                except ValueError:
                    continue
        if len(moments) != 2:
            form.fail("channels", Msg(N_("Write times as YYYY-MM-DD HH:MM.")), number)
            continue
        found.append({"channel": cells[0], "starts_at": moments[0], "ends_at": moments[1]})
    return found


def _where(attr: str) -> tuple[str, int | None]:
    """The form field an error ``attr`` belongs to, and the line it names (if any)."""
    parts = attr.split(".")
    if parts[0] == "phases" and len(parts) >= 2:
        end = parts[2] if len(parts) > 2 and parts[2] in ("starts_on", "ends_on") \
            else "starts_on"
        return f"phase_{parts[1]}_{end}", None
    if parts[0] in ("products", "channels"):
        line = int(parts[1]) + 1 if len(parts) > 1 and parts[1].isdigit() else None
        return parts[0], line
    if parts[0] == "kpi" and len(parts) > 1:
        return {"gmv_fen": "kpi_gmv"}.get(parts[1], f"kpi_{parts[1]}"), None
    return {"budget_fen": "budget", "donation_bp": "donation"}.get(parts[0], parts[0]), None


def _parse(form: Form, zone: Any) -> CampaignIn | None:
    """The form as a ``CampaignIn``, or None with ``form.errors`` filled."""
    v = form.values
    phases: list[dict[str, Any]] = []
    for kind in PHASES:
        first, last = (_day(form, f"phase_{kind}_{end}") for end in ("starts_on", "ends_on"))
        if first is None and last is None:
            continue
        if first is None or last is None:
            missing = f"phase_{kind}_starts_on" if first is None else f"phase_{kind}_ends_on"
            form.fail(missing, Msg(N_("Give both days of the phase, or neither.")))
            continue
        phases.append({"kind": kind, "starts_on": first, "ends_on": last})
    if not phases and not form.errors:
        form.fail("phase_teaser_starts_on", Msg(N_("Give the days of at least one phase.")))
    donation_bp = 0
    if v["donation"].strip():
        try:
            donation_bp = int((Decimal(v["donation"].strip()) * 100).to_integral_value())
        except InvalidOperation:
            form.fail("donation", Msg(N_("Enter a percentage such as 5 or 2.5.")))
    products = _product_lines(form)
    channels = _slot_lines(form, zone)
    kpi = {"gmv_fen": _money(form, "kpi_gmv"), "orders": _whole(form, "kpi_orders"),
           "new_customers": _whole(form, "kpi_new_customers"),
           "ugc_posts": _whole(form, "kpi_ugc_posts")}
    starts_on, ends_on = _day(form, "starts_on"), _day(form, "ends_on")
    for name, given in (("starts_on", starts_on), ("ends_on", ends_on)):
        if given is None:
            form.fail(name, Msg(N_("Enter a date as YYYY-MM-DD.")))
    budget_fen = _money(form, "budget") or 0
    if form.errors:
        return None
    built: list[Any] = []
    try:
        for phase in phases:
            built.append(PhaseIn(**phase))
        for product in products:
            built.append(ProductLineIn(**product))
        for slot in channels:
            built.append(SlotIn(**slot))
        return CampaignIn(
            code=v["code"], name=v["name"], tier=v["tier"], kind=v["kind"],
            brand=v["brand"].strip() or None, draft=bool(v.get("draft")), starts_on=starts_on,
            ends_on=ends_on, phases=[b for b in built if isinstance(b, PhaseIn)],
            products=[b for b in built if isinstance(b, ProductLineIn)],
            channels=[b for b in built if isinstance(b, SlotIn)], kpi=KpiIn(**kpi),
            budget_fen=budget_fen, donation_bp=donation_bp)
    except ValidationError as exc:
        detail = exc.errors()[0]
        attr = ".".join(str(part) for part in detail["loc"])
        # The part that failed is the next one ``built`` did not reach.
        done = len(built)
        if exc.title == "PhaseIn":
            attr = f"phases.{phases[done]['kind']}.{attr}"
        elif exc.title == "ProductLineIn":
            attr = f"products.{done - len(phases)}.{attr}"
        elif exc.title == "SlotIn":
            attr = f"channels.{done - len(phases) - len(products)}.{attr}"
        elif exc.title == "KpiIn":
            attr = f"kpi.{attr}"
        name, line = _where(attr)
        form.fail(name, str(detail["msg"]), line)
        return None


def _form_page(request: Request, session: DbSession, principal: Principal, form: Form,
               campaign: CampaignOut | None, status_code: int = 200) -> Response:
    brands = catalog.list_brands(session, principal)
    return render(request, "campaign_form.html", {
        **SHARED, "form": form, "campaign": campaign, "brands": brands,
        "action": f"{LIST_PATH}/{campaign.id}/edit" if campaign else f"{LIST_PATH}/new"},
        status_code=status_code)


async def _read_form(request: Request) -> Form:
    submitted = await request.form()
    form = _blank_form()
    for name in (*FIELDS, "draft"):
        value = submitted.get(name, "")
        form.values[name] = value[:20_000] if isinstance(value, str) else ""
    return form


def _save(request: Request, session: DbSession, wired: ServicesDep, principal: Principal,
          form: Form, campaign: CampaignOut | None) -> Response:
    zone = wired.settings.zone
    data = _parse(form, zone)
    if data is not None:
        try:
            if campaign is None:
                saved = campaigns.create_campaign(session, wired.clock, principal, data,
                                                  zone=zone)
            else:
                saved = campaigns.update_campaign(session, wired.clock, principal, campaign.id,
                                                  data, zone=zone)
        except (ValidationFailed, Conflict) as exc:
            name, line = _where(exc.attr or "code")
            form.fail(name, exc.detail, line)
        else:
            return RedirectResponse(f"{LIST_PATH}/{saved.id}?saved=1", status_code=303)
    return _form_page(request, session, principal, form, campaign, status_code=422)


@router.get("/campaigns/new")
def new_campaign_page(request: Request, session: DbSession, principal: Writer) -> Response:
    """The empty campaign form."""
    return _form_page(request, session, principal, _blank_form(), None)


@router.post("/campaigns/new", response_model=None)
async def create_campaign(request: Request, session: DbSession, wired: ServicesDep,
                          principal: Writer) -> Response:
    """Save a new campaign; errors re-show the form with the faulty fields marked."""
    return _save(request, session, wired, principal, await _read_form(request), None)


@router.get("/campaigns/{campaign_id}/edit")
def edit_campaign_page(request: Request, session: DbSession, wired: ServicesDep,
                       principal: Writer, campaign_id: CampaignId) -> Response:
    campaign = campaigns.get_campaign(session, wired.clock, principal, campaign_id,
                                      zone=wired.settings.zone)
    return _form_page(request, session, principal, _form_of(campaign, wired.settings.zone),
                      campaign)


@router.post("/campaigns/{campaign_id}/edit", response_model=None)
async def update_campaign(request: Request, session: DbSession, wired: ServicesDep,
                          principal: Writer, campaign_id: CampaignId) -> Response:
    campaign = campaigns.get_campaign(session, wired.clock, principal, campaign_id,
                                      zone=wired.settings.zone)
    return _save(request, session, wired, principal, await _read_form(request), campaign)


@router.post("/campaigns/{campaign_id}/delete", response_model=None)
def delete_campaign(session: DbSession, principal: Writer, campaign_id: CampaignId) -> Response:
    campaigns.delete_campaign(session, principal, campaign_id)
    return RedirectResponse(f"{LIST_PATH}?deleted=1", status_code=303)


# --- one campaign ----------------------------------------------------------------------


def _timeline(campaign: CampaignOut) -> list[dict[str, Any]]:
    """Each phase's offset and width in % of the campaign's days."""
    days = (campaign.ends_on - campaign.starts_on).days + 1
    return [{"kind": p.kind, "starts_on": p.starts_on, "ends_on": p.ends_on,
             "left": round((p.starts_on - campaign.starts_on).days * 100 / days, 2),
             "width": round(((p.ends_on - p.starts_on).days + 1) * 100 / days, 2)}
            for p in campaign.phases]


@router.get("/campaigns/{campaign_id}")
def campaign_page(request: Request, session: DbSession, wired: ServicesDep,
                  principal: Reader, campaign_id: CampaignId) -> Response:
    """A campaign: phases timeline, products, channels, results, conflicts."""
    zone = wired.settings.zone
    campaign = campaigns.get_campaign(session, wired.clock, principal, campaign_id, zone=zone)
    results = campaigns.results(session, wired.clock, principal, campaign_id, zone=zone)
    warnings = calendar.conflicts(session, wired.clock, principal, zone=zone,
                                  involving=[campaign_id])
    return render(request, "campaign.html", {
        **SHARED, "campaign": campaign, "results": results, "warnings": warnings,
        "timeline": _timeline(campaign), "saved": request.query_params.get("saved") == "1"})


# --- the calendar ----------------------------------------------------------------------


@router.get("/calendar")
def calendar_page(request: Request, session: DbSession, wired: ServicesDep,
                  principal: Reader) -> Response:
    """The month (or week) of ``date`` with every campaign's phases and the conflicts."""
    zone = wired.settings.zone
    today = wired.clock.now().astimezone(zone).date()
    view: View = "week" if request.query_params.get("view") == "week" else "month"
    try:
        shown = date.fromisoformat(request.query_params.get("date", "")[:10])
    except ValueError:
        shown = today
    found = calendar.calendar_view(session, wired.clock, principal, view=view, day=shown,
                                   zone=zone)
    lead = [None] * found.starts_on.weekday()
    cells: list[Any] = [*lead, *found.days]
    cells += [None] * (-len(cells) % 7)
    weeks = [cells[i:i + 7] for i in range(0, len(cells), 7)]
    campaigns_shown = {e.campaign_id: e for d in found.days for e in d.entries}
    return render(request, "calendar.html", {
        **SHARED, "cal": found, "weeks": weeks, "view": view, "shown": shown, "today": today,
        "weekdays": [found.starts_on - timedelta(days=found.starts_on.weekday() - i)
                     for i in range(7)],
        "legend": list(campaigns_shown.values())})
