"""Console pages of coupons (docs/coupons.md): the templates with their figures, the
create form with an error under each faulty field, and a template's page with its terms,
figures, the issuance form (a saved segment or pasted customer ids), the issue batches
and the redemptions.

Everything is a call to ``campaigns.coupons``; the routes parse the forms (amounts in
yuan, days in the business time zone) into its schemas, call it and render.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from shequ.core.errors import NotFound, ShequError, ValidationFailed
from shequ.core.money import yuan_to_fen
from shequ.core.permissions import CLI_PRINCIPAL, Principal
from shequ.core.web import DbSession, Services, ServicesDep, require
from shequ.domains.campaigns import coupons
from shequ.domains.campaigns.coupon_schemas import IssueIn, TemplateIn
from shequ.domains.catalog import service as catalog
from shequ.domains.segments import service as segments
from shequ.entrypoints.console.i18n import N_
from shequ.entrypoints.console.nav import PREFIX
from shequ.entrypoints.console.rendering import render

router = APIRouter(prefix=PREFIX, include_in_schema=False)
Reader = Annotated[Principal, require("campaigns:read")]
Writer = Annotated[Principal, require("campaigns:write")]
TemplateCode = Annotated[str, Path(min_length=1, max_length=64,
                                   pattern=r"^[A-Za-z0-9_.:\-]+$")]

LIST_PATH = f"{PREFIX}/coupons"
KIND_NAMES = {"fixed": N_("Fixed amount off"), "percent": N_("Percent off"),
              "threshold": N_("Spend threshold (满减)")}
SCOPE_NAMES = {"all": N_("All products"), "brand": N_("One brand"), "skus": N_("Listed SKUs")}
SKIP_NAMES = {"unknown_customer": N_("Unknown customer"),
              "already_issued": N_("Already issued in this batch"),
              "limit_reached": N_("Per-customer limit reached"),
              "sold_out": N_("Total quantity used up")}
STATE_NAMES = {"active": N_("In force"), "released": N_("Released (order cancelled)")}
MONEY_FIELDS = {"amount_off": "amount_off_fen", "max_off": "max_off_fen",
                "min_subtotal": "min_subtotal_fen", "budget": "budget_fen"}
# Schema attribute -> the form field that shows its error.
ATTR_FIELDS = {**{attr: name for name, attr in MONEY_FIELDS.items()},
               "starts_at": "starts_on", "ends_at": "ends_on"}
FORM_FIELDS = ("code", "name", "description", "kind", "amount_off", "percent_off", "max_off",
               "min_subtotal", "starts_on", "ends_on", "scope", "brand_external_id", "skus",
               "per_customer_limit", "total_quantity", "budget")
_SEPARATORS = re.compile(r"[\s,，;；]+")


def _ids(text: str) -> list[str]:
    return [part for part in _SEPARATORS.split(text) if part]


# --- the list and the create form ---------------------------------------------------------


def _blank_form(services: Services) -> dict[str, str]:
    today = services.clock.now().astimezone(services.settings.zone).date()
    return {"code": "", "name": "", "description": "", "kind": "fixed", "amount_off": "",
            "percent_off": "", "max_off": "", "min_subtotal": "",
            "starts_on": today.isoformat(), "ends_on": (today + timedelta(days=30)).isoformat(),
            "scope": "all", "brand_external_id": "", "skus": "", "per_customer_limit": "1",
            "total_quantity": "1000", "budget": ""}


def _list_context(session: Session) -> dict[str, Any]:
    return {"rows": coupons.list_figures(session), "kind_names": KIND_NAMES,
            "scope_names": SCOPE_NAMES}


@router.get("/coupons")
def coupons_page(request: Request, session: DbSession, _principal: Reader) -> Response:
    """Every template with issued, redeemed, redemption rate, budget use, GMV and new
    customers."""
    return render(request, "coupons.html", _list_context(session))


def _form_context(session: Session, services: Services, form: dict[str, str],
                  errors: dict[str, str]) -> dict[str, Any]:
    return {"form": form, "errors": errors, "kind_names": KIND_NAMES,
            "scope_names": SCOPE_NAMES,
            "brands": catalog.list_brands(session, CLI_PRINCIPAL)}


@router.get("/coupons/new")
def new_template_page(request: Request, session: DbSession, wired: ServicesDep,
                      _principal: Writer) -> Response:
    """The create form, filled with a 30-day window starting today."""
    return render(request, "coupon_new.html", _form_context(session, wired,
                                                            _blank_form(wired), {}))


def _day_start(raw: str, zone: Any) -> datetime:
    return datetime.combine(date.fromisoformat(raw), time(0), tzinfo=zone)


def _parse_form(form: dict[str, str], zone: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The schema's values from the form (yuan to fen, local days to instants: the
    window runs from the start day's 00:00 to the end day's 24:00), and the fields that
    could not even be read."""
    values: dict[str, Any] = {"code": form["code"], "name": form["name"],
                              "description": form["description"] or None,
                              "kind": form["kind"], "scope": form["scope"],
                              "brand_external_id": form["brand_external_id"] or None,
                              "skus": _ids(form["skus"])}
    errors: dict[str, str] = {}
    for name, attr in MONEY_FIELDS.items():
        raw = form[name].strip()
        if raw:
            try:
                values[attr] = yuan_to_fen(raw)
            except ValueError:
                errors[name] = N_("Enter an amount in yuan with at most two decimals.")
    for name in ("percent_off", "per_customer_limit", "total_quantity"):
        raw = form[name].strip()
        if raw:
            if not raw.isdigit():
                errors[name] = N_("Enter a whole number.")
            else:
                values[name] = int(raw)
    for name, attr, shift in (("starts_on", "starts_at", 0), ("ends_on", "ends_at", 1)):
        try:
            values[attr] = _day_start(form[name].strip(), zone) + timedelta(days=shift)
        except ValueError:
            errors[name] = N_("Choose a day.")
    return values, errors


def _pydantic_errors(exc: ValidationError) -> dict[str, str]:
    found: dict[str, str] = {}
    for error in exc.errors():
        attr = str(error["loc"][0]) if error["loc"] else "code"
        found.setdefault(ATTR_FIELDS.get(attr, attr), str(error["msg"]))
    return found


@router.post("/coupons", response_model=None)
def create_template(request: Request, session: DbSession, wired: ServicesDep,
                    principal: Writer,
                    code: Annotated[str, Form(max_length=200)] = "",
                    name: Annotated[str, Form(max_length=500)] = "",
                    description: Annotated[str, Form(max_length=2000)] = "",
                    kind: Annotated[str, Form(max_length=32)] = "",
                    amount_off: Annotated[str, Form(max_length=32)] = "",
                    percent_off: Annotated[str, Form(max_length=32)] = "",
                    max_off: Annotated[str, Form(max_length=32)] = "",
                    min_subtotal: Annotated[str, Form(max_length=32)] = "",
                    starts_on: Annotated[str, Form(max_length=32)] = "",
                    ends_on: Annotated[str, Form(max_length=32)] = "",
                    scope: Annotated[str, Form(max_length=32)] = "all",
                    brand_external_id: Annotated[str, Form(max_length=200)] = "",
                    skus: Annotated[str, Form(max_length=20_000)] = "",
                    per_customer_limit: Annotated[str, Form(max_length=32)] = "",
                    total_quantity: Annotated[str, Form(max_length=32)] = "",
                    budget: Annotated[str, Form(max_length=32)] = "") -> Response:
    """Save a template; a faulty form comes back with an error under each field."""
    form = {"code": code.strip(), "name": name.strip(), "description": description.strip(),
            "kind": kind, "amount_off": amount_off, "percent_off": percent_off,
            "max_off": max_off, "min_subtotal": min_subtotal, "starts_on": starts_on,
            "ends_on": ends_on, "scope": scope, "brand_external_id": brand_external_id,
            "skus": skus, "per_customer_limit": per_customer_limit,
            "total_quantity": total_quantity, "budget": budget}
    values, errors = _parse_form(form, wired.settings.zone)
    if not errors:
        try:
            data = TemplateIn.model_validate(values)
        except ValidationError as exc:
            errors = _pydantic_errors(exc)
        else:
            for error in coupons.template_errors(session, wired.clock, data):
                field = ATTR_FIELDS.get(error.attr or "code", error.attr or "code")
                errors.setdefault(field, error.detail)
            if not errors:
                coupons.create_template(session, wired.clock, data, principal=principal)
                return RedirectResponse(f"{LIST_PATH}/{data.code}?created=1", status_code=303)
    return render(request, "coupon_new.html", _form_context(session, wired, form, errors),
                  status_code=422)


# --- one template ------------------------------------------------------------------------


def _template_context(session: Session, services: Services, principal: Principal,
                      code: str) -> dict[str, Any]:
    detail = coupons.template_detail(session, code)
    now = services.clock.now()
    can_list = principal.can("segments:read") and principal.brand_ids is None
    stamp = now.astimezone(services.settings.zone).strftime("%Y%m%d-%H%M")
    return {
        "t": detail.template, "fig": detail.figures,
        "batches": coupons.batches(session, code),
        "redemptions": coupons.redemptions(session, code),
        "segments": segments.list_segments(services, principal) if can_list else [],
        "ended": now >= detail.template.ends_at,
        "issue_form": {"batch_key": f"console-{stamp}", "source": "segment",
                       "segment_id": "", "customer_ids": ""},
        "issue_error": None, "issued": None, "created": False,
        "kind_names": KIND_NAMES, "scope_names": SCOPE_NAMES, "skip_names": SKIP_NAMES,
        "state_names": STATE_NAMES,
    }


@router.get("/coupons/{code}")
def template_page(request: Request, session: DbSession, wired: ServicesDep,
                  principal: Reader, code: TemplateCode) -> Response:
    """A template: terms, figures, issuance form, batches and redemptions."""
    context = _template_context(session, wired, principal, code)
    params = request.query_params
    if params.get("issued", "").isdigit():
        skipped = {reason: int(params[reason]) for reason in SKIP_NAMES
                   if params.get(reason, "").isdigit()}
        context["issued"] = {"count": int(params["issued"]), "skipped": skipped,
                             "batch": params.get("batch", "")[:100]}
    context["created"] = params.get("created") == "1"
    return render(request, "coupon.html", context)


@router.post("/coupons/{code}/issue", response_model=None)
def issue(request: Request, session: DbSession, wired: ServicesDep, principal: Writer,
          code: TemplateCode,
          batch_key: Annotated[str, Form(max_length=200)] = "",
          source: Annotated[str, Form(max_length=16)] = "segment",
          segment_id: Annotated[str, Form(max_length=16)] = "",
          customer_ids: Annotated[str, Form(max_length=2_000_000)] = "") -> Response:
    """Issue to the chosen segment or the pasted ids, then show the outcome."""
    form = {"batch_key": batch_key.strip(), "source": source, "segment_id": segment_id,
            "customer_ids": customer_ids}
    coupons.get_template(session, code)  # 404 first
    error: ShequError
    try:
        if source == "segment":
            if not segment_id.isdigit():
                raise ValidationFailed("segment_required", "choose a segment", "segment_id")
            data = IssueIn(batch_key=form["batch_key"], segment_id=int(segment_id))
        else:
            data = IssueIn(batch_key=form["batch_key"],
                           customer_external_ids=_ids(customer_ids))
        origin, keys = coupons.recipients(wired, principal, data)
        with session.begin_nested():
            done = coupons.issue(session, wired.clock, code, data.batch_key, keys,
                                 source=origin, principal=principal)
    except ValidationError as exc:
        first = exc.errors()[0]
        attr = str(first["loc"][0]) if first["loc"] else "batch_key"
        error = ValidationFailed("invalid", str(first["msg"]),
                                 "customer_ids" if attr == "customer_external_ids" else attr)
    except (ShequError, NotFound) as exc:
        error = exc
    else:
        shown: dict[str, str | int] = {"issued": len(done.issued), "batch": done.batch_key}
        shown.update(Counter(s.reason for s in done.skipped))
        query = urlencode(shown)
        return RedirectResponse(f"{LIST_PATH}/{code}?{query}#issue-card", status_code=303)
    context = _template_context(session, wired, principal, code)
    context.update(issue_form=form, issue_error=error)
    return render(request, "coupon.html", context, status_code=422)
