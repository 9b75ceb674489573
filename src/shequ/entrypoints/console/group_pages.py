"""Console pages of group buying (docs/group-buying.md): the offers with their figures, an
offer's page (tiers, figure cards, the groups with their states and countdowns, pause and
resume), the create-offer form with field errors, and a button that runs the expiry.

Everything is a call to ``campaigns.groups``; the routes parse forms into its schemas,
call it and render.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from shequ.core.errors import ShequError, ValidationFailed
from shequ.core.permissions import Principal
from shequ.core.web import DbSession, ServicesDep, require
from shequ.domains.campaigns import groups
from shequ.domains.campaigns.group_schemas import OfferIn, TierIn
from shequ.domains.catalog import service as catalog
from shequ.entrypoints.console.i18n import N_
from shequ.entrypoints.console.nav import PREFIX
from shequ.entrypoints.console.rendering import render

router = APIRouter(prefix=PREFIX, include_in_schema=False)
Reader = Annotated[Principal, require("campaigns:read")]
Writer = Annotated[Principal, require("campaigns:write")]
Code = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]

LIST_PATH = f"{PREFIX}/group-buying"
NEW_PATH = f"{PREFIX}/group-buying/new"
GROUPS_PAGE = 50
SKU_CHOICES = 500
FIELDS = ("code", "title", "sku", "tiers", "hours", "starts_at", "ends_at", "stock",
          "per_customer_limit")
STATUS_NAMES = {"scheduled": N_("Scheduled"), "running": N_("Running"),
                "paused": N_("Paused"), "ended": N_("Ended")}
STATUS_BADGES = {"scheduled": "badge-blue", "running": "badge-green", "paused": "badge-red",
                 "ended": "badge-grey"}
STATE_NAMES = {"open": N_("Forming"), "succeeded": N_("Succeeded"), "expired": N_("Expired"),
               "refunded": N_("Refunded")}
STATE_BADGES = {"open": "badge-blue", "succeeded": "badge-green", "expired": "badge-red",
                "refunded": "badge-grey"}
# The messages of the form's refusals the page explains itself (others show their detail).
FIELD_MESSAGES = {
    "code": N_("Use 1 to 64 letters, digits, dots, colons, dashes or underscores."),
    "title": N_("Give a title of 1 to 100 characters."),
    "sku": N_("Choose a product of the catalog."),
    "tiers": N_("Write tiers as size:percent, e.g. 2:10, 3:15, 5:25 — sizes from 2 up, "
                "discounts from 1 to 99 percent, both rising."),
    "hours": N_("Give a time limit of 1 to 720 hours."),
    "starts_at": N_("Give a start time."),
    "ends_at": N_("Give an end time after the start."),
    "stock": N_("Give a stock of 1 to 1,000,000 units."),
    "per_customer_limit": N_("Give a limit of 1 to 100 units."),
}
CODE_MESSAGES = {
    "offer_exists": N_("An offer with this code exists already."),
    "insufficient_stock": N_("The product does not have that many units in stock."),
    "product_not_found": N_("No product with this SKU."),
    "product_inactive": N_("This product is not on sale."),
    "tier_sizes_not_ascending": N_("Tier sizes must rise from one tier to the next."),
    "tier_discounts_not_ascending": N_("A larger group must get a larger discount."),
    "window_invalid": N_("The offer must end after it starts."),
}


def _local_input(value: datetime, zone: ZoneInfo) -> str:
    """A datetime as the value of a ``datetime-local`` input in the business zone."""
    return value.astimezone(zone).strftime("%Y-%m-%dT%H:%M")


def _parse_moment(raw: str, zone: ZoneInfo) -> datetime | None:
    try:
        local = datetime.strptime(raw.strip(), "%Y-%m-%dT%H:%M")
    except ValueError:
        return None
    return local.replace(tzinfo=zone).astimezone(UTC)


def parse_tiers(raw: str) -> list[dict[str, int]] | None:
    """``"2:10, 3:15"`` → ``[{"size": 2, "percent_off": 10}, …]``; None when unreadable."""
    found: list[dict[str, int]] = []
    for part in raw.replace("，", ",").replace("：", ":").split(","):
        if not part.strip():
            continue
        size, sep, percent = part.partition(":")
        if not sep or not size.strip().isdigit() or not percent.strip().rstrip("%").isdigit():
            return None
        found.append({"size": int(size), "percent_off": int(percent.strip().rstrip("%"))})
    return found or None


def _tiers_text(tiers: list[Any]) -> str:
    return ", ".join(f"{t.size}:{t.percent_off}" for t in tiers)


def _list_context(request: Request, session: Any, wired: Any,
                  principal: Principal) -> dict[str, Any]:
    offers = groups.list_offers(session, wired.clock, principal=principal)
    found = groups.all_figures(session, wired.clock, principal=principal)
    ran = {name: int(request.query_params[name]) for name in
           ("succeeded", "expired", "refunded", "settled_offers", "failed")
           if request.query_params.get(name, "").isdigit()}
    return {"offers": offers, "figures": found, "status_names": STATUS_NAMES,
            "status_badges": STATUS_BADGES, "tiers_text": _tiers_text,
            "ran": ran if "succeeded" in ran else None}


@router.get("/group-buying")
def offers_page(request: Request, session: DbSession, wired: ServicesDep,
                principal: Reader) -> Response:
    """Every offer with its status, tiers, stock and figures."""
    return render(request, "group_offers.html", _list_context(request, session, wired,
                                                              principal))


@router.post("/group-buying/expiry", response_model=None)
def run_expiry(wired: ServicesDep, principal: Writer) -> Response:
    """Close the groups past their deadline now (the worker does it on its schedule)."""
    report = groups.expire_groups(wired)
    return RedirectResponse(f"{LIST_PATH}?{urlencode(report)}", status_code=303)


def _form_context(session: Any, principal: Principal, form: dict[str, str],
                  field_errors: dict[str, str], error: ShequError | None) -> dict[str, Any]:
    products = catalog.list_products(session, principal, limit=SKU_CHOICES).items
    return {"form": form, "field_errors": field_errors, "form_error": error,
            "products": [p for p in products if p.is_active], "fields": FIELDS}


@router.get("/group-buying/new")
def new_offer_page(request: Request, session: DbSession, wired: ServicesDep,
                   principal: Writer) -> Response:
    """The create-offer form, prefilled with a week from now and the usual tiers."""
    zone = wired.settings.zone
    now = wired.clock.now().replace(second=0, microsecond=0)
    form = {"code": "", "title": "", "sku": "", "tiers": "2:10, 3:15, 5:25", "hours": "24",
            "starts_at": _local_input(now, zone),
            "ends_at": _local_input(now + timedelta(days=7), zone),
            "stock": "100", "per_customer_limit": "1"}
    return render(request, "group_offer_form.html",
                  _form_context(session, principal, form, {}, None))


@router.post("/group-buying/new", response_model=None)
def create_offer(request: Request, session: DbSession, wired: ServicesDep, principal: Writer,
                 code: Annotated[str, Form(max_length=200)] = "",
                 title: Annotated[str, Form(max_length=500)] = "",
                 sku: Annotated[str, Form(max_length=200)] = "",
                 tiers: Annotated[str, Form(max_length=500)] = "",
                 hours: Annotated[str, Form(max_length=20)] = "",
                 starts_at: Annotated[str, Form(max_length=40)] = "",
                 ends_at: Annotated[str, Form(max_length=40)] = "",
                 stock: Annotated[str, Form(max_length=20)] = "",
                 per_customer_limit: Annotated[str, Form(max_length=20)] = "") -> Response:
    """Create the offer and show its page; a refused form comes back with its errors."""
    zone = wired.settings.zone
    form = {"code": code, "title": title, "sku": sku, "tiers": tiers, "hours": hours,
            "starts_at": starts_at, "ends_at": ends_at, "stock": stock,
            "per_customer_limit": per_customer_limit}
    field_errors: dict[str, str] = {}
    parsed_tiers = parse_tiers(tiers)
    try:
        if parsed_tiers is None:
            raise ValidationFailed("tiers", FIELD_MESSAGES["tiers"], "tiers")
        groups.validate_tiers([TierIn.model_validate(t) for t in parsed_tiers])
    except ValidationError:
        field_errors["tiers"] = FIELD_MESSAGES["tiers"]
    except ShequError as exc:
        field_errors["tiers"] = CODE_MESSAGES.get(exc.code, FIELD_MESSAGES["tiers"])
    starts, ends = _parse_moment(starts_at, zone), _parse_moment(ends_at, zone)
    if starts is None:
        field_errors["starts_at"] = FIELD_MESSAGES["starts_at"]
    if ends is None:
        field_errors["ends_at"] = FIELD_MESSAGES["ends_at"]
    error: ShequError | None = None
    try:
        data = OfferIn.model_validate({
            "code": code.strip(), "title": title.strip(), "sku": sku.strip(),
            "tiers": parsed_tiers or [], "hours": hours.strip() or None,
            "starts_at": starts, "ends_at": ends, "stock": stock.strip() or None,
            "per_customer_limit": per_customer_limit.strip() or None})
    except ValidationError as exc:
        for problem in exc.errors():
            field = str(problem["loc"][0]) if problem["loc"] else ""
            if field in FIELD_MESSAGES:
                field_errors.setdefault(field, FIELD_MESSAGES[field])
    else:
        if not field_errors:
            try:
                with session.begin_nested():
                    made = groups.create_offer(session, wired.clock, data,
                                               principal=principal)
            except ShequError as exc:
                refused = exc.attr if exc.attr in FIELD_MESSAGES else None
                message = CODE_MESSAGES.get(exc.code)
                if refused is not None:
                    field_errors[refused] = message or FIELD_MESSAGES[refused]
                else:
                    error = exc
            else:
                return RedirectResponse(f"{LIST_PATH}/{made.code}", status_code=303)
    return render(request, "group_offer_form.html",
                  _form_context(session, principal, form, field_errors, error),
                  status_code=422)


@router.get("/group-buying/{code}")
def offer_page(request: Request, session: DbSession, wired: ServicesDep, principal: Reader,
               code: Code, state: Annotated[str | None, Query(max_length=16)] = None,
               page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Response:
    """An offer: its tiers, figure cards and groups (by state, newest first)."""
    offer = groups.get_offer(session, wired.clock, code, principal=principal)
    chosen = state if state in STATE_NAMES else None
    total, shown = groups.list_groups(session, wired.clock, code, state=chosen,
                                      limit=GROUPS_PAGE, offset=(page - 1) * GROUPS_PAGE,
                                      principal=principal)
    found = groups.figures(session, wired.clock, code, principal=principal)

    def link(**changes: Any) -> str:
        params = {"state": chosen, "page": page if page > 1 else None, **changes}
        query = urlencode({k: v for k, v in params.items() if v is not None})
        return f"{LIST_PATH}/{code}" + (f"?{query}" if query else "")

    return render(request, "group_offer.html", {
        "offer": offer, "groups": shown, "total": total, "figures": found, "state": chosen,
        "page": page, "pages": max(1, -(-total // GROUPS_PAGE)), "link": link,
        "state_names": STATE_NAMES, "state_badges": STATE_BADGES,
        "status_names": STATUS_NAMES, "status_badges": STATUS_BADGES,
        "now": wired.clock.now(),
    })


@router.post("/group-buying/{code}/pause", response_model=None)
def pause_offer(session: DbSession, wired: ServicesDep, principal: Writer,
                code: Code) -> Response:
    groups.set_paused(session, wired.clock, code, True, principal=principal)
    return RedirectResponse(f"{LIST_PATH}/{code}", status_code=303)


@router.post("/group-buying/{code}/resume", response_model=None)
def resume_offer(session: DbSession, wired: ServicesDep, principal: Writer,
                 code: Code) -> Response:
    groups.set_paused(session, wired.clock, code, False, principal=principal)
    return RedirectResponse(f"{LIST_PATH}/{code}", status_code=303)
