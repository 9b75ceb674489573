"""Console pages of the points ledger (docs/points.md): the ledger overview with its
double-entry check and movements per month, a customer's statement with a manual
adjustment form, the rewards catalogue, a redemption with its store code as a QR image,
and the store-code verification desk.

Every figure is a call to ``loyalty.reports`` and every change a call to
``loyalty.service``; the routes parse the forms into the service's schemas and render.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from shequ.core.errors import ShequError
from shequ.core.permissions import Principal
from shequ.core.web import DbSession, Services, ServicesDep, require
from shequ.domains.loyalty import qr, reports
from shequ.domains.loyalty import service as loyalty
from shequ.domains.loyalty.schemas import AdjustIn, RewardIn, VerifyIn
from shequ.entrypoints.console.i18n import N_
from shequ.entrypoints.console.nav import PREFIX
from shequ.entrypoints.console.rendering import render

router = APIRouter(prefix=PREFIX, include_in_schema=False)
Reader = Annotated[Principal, require("loyalty:read")]
Writer = Annotated[Principal, require("loyalty:write")]
Key = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:\-]+$")]
Cursor = Annotated[int | None, Query(ge=1, le=2**62)]

POINTS_PATH = f"{PREFIX}/points"
REWARDS_PATH = f"{PREFIX}/points/rewards"
VERIFY_PATH = f"{PREFIX}/points/verify"
STATEMENT_PAGE = 20
MONTHS = 12
TOP_BALANCES = 10
RECENT_REDEMPTIONS = 15
STORE_SESSION_KEY = "points_store_id"

KIND_NAMES = {"earn": N_("Earned"), "redeem": N_("Redeemed"), "expire": N_("Expired"),
              "adjust": N_("Adjustment"), "refund": N_("Refund")}
REWARD_KIND_NAMES = {"goods": N_("Goods"), "service": N_("Service"),
                     "offline": N_("Offline benefit")}
STATE_NAMES = {"done": N_("Redeemed"), "refunded": N_("Refunded")}
CODE_STATE_NAMES = {"none": N_("No store code"), "unused": N_("Unused"), "used": N_("Used"),
                    "void": N_("Void"), "expired": N_("Expired")}
CODE_STATE_BADGES = {"none": "badge-grey", "unused": "badge-green", "used": "badge-blue",
                     "void": "badge-red", "expired": "badge-grey"}
# What each field of the forms asks for, shown under a refused field.
FIELD_ERRORS = {
    "points": N_("Enter a whole number of points other than 0: positive credits, "
                 "negative debits (at most 1,000,000,000)."),
    "reason": N_("Give a reason of 1 to 200 characters."),
    "code": N_("Use 1 to 64 letters, digits, dots, colons, dashes or underscores."),
    "name": N_("Give a name of 1 to 100 characters."),
    "kind": N_("Choose goods, service or offline benefit."),
    "cost_points": N_("Enter a cost of 1 to 1,000,000,000 points."),
    "stock": N_("Leave the stock empty for unlimited, or enter a whole number from 0."),
    "code_valid_days": N_("Codes stay valid for 1 to 366 days."),
    "store_id": N_("Name the store with 1 to 64 letters, digits, dots, colons, dashes or "
                   "underscores."),
    "store_code": N_("Paste or type the code the customer shows."),
    "customer": N_("Enter a customer's external id."),
}
# Refusals the pages explain in their own words (others show the service's detail).
REFUSALS = {
    "insufficient_points": N_("The customer does not hold that many points: a debit cannot "
                              "take the balance below zero."),
    "points_zero": N_("An adjustment moves at least one point."),
    "idempotency_key_used": N_("This form was already used for another adjustment. Reload "
                               "the page and try again."),
    "code_malformed": N_("Refused: this is not a store code. A store code starts with SQ1 "
                         "and has 53 characters."),
    "code_forged": N_("Refused: forged code. Its signature does not match: it was not "
                      "issued by this shop, or it was altered."),
    "code_not_found": N_("Refused: no redemption holds this code."),
    "code_used": N_("Refused: this code was already used."),
    "code_void": N_("Refused: the redemption of this code was refunded, so the code is void."),
    "code_expired": N_("Refused: this code has expired."),
    "customer_not_found": N_("There is no customer with this id."),
}
SHARED = {"kind_names": KIND_NAMES, "reward_kind_names": REWARD_KIND_NAMES,
          "state_names": STATE_NAMES, "code_state_names": CODE_STATE_NAMES,
          "code_state_badges": CODE_STATE_BADGES}


def _field_errors(exc: ValidationError) -> dict[str, str]:
    """The msgid to show under each field a schema refused."""
    found: dict[str, str] = {}
    for problem in exc.errors():
        field = str(problem["loc"][0]) if problem["loc"] else ""
        found.setdefault(field, FIELD_ERRORS.get(field, N_("This value is not valid.")))
    return found


def _refusal(exc: ShequError) -> dict[str, str]:
    """A service refusal as the pages show it: its code, the msgid that explains it ("" when
    the detail is shown as it is) and the detail."""
    return {"code": exc.code, "message": REFUSALS.get(exc.code, ""), "detail": exc.detail,
            "field": exc.attr or ""}


def statement_path(customer: str, **query: Any) -> str:
    values = {k: v for k, v in query.items() if v not in (None, "")}
    return (f"{POINTS_PATH}/customers/{quote(customer, safe='')}"
            + (f"?{urlencode(values)}" if values else ""))


# --- the overview --------------------------------------------------------------------------


@router.get("/points", response_model=None)
def overview_page(request: Request, session: DbSession, wired: ServicesDep,
                  principal: Reader,
                  customer: Annotated[str, Query(max_length=100)] = "") -> Response:
    """Ledger totals with the double-entry check, movements per month, rewards with their
    stock, the largest balances and the latest redemptions; ``customer`` opens a
    customer's statement (the lookup form)."""
    lookup_error = None
    wanted = customer.strip()
    if wanted:
        try:
            reports.statement(session, wanted, limit=1, principal=principal)
        except ShequError as exc:
            lookup_error = _refusal(exc)
        else:
            return RedirectResponse(statement_path(wanted), status_code=303)
    now = wired.clock.now()
    totals = reports.ledger_totals(session, principal=principal)
    return render(request, "points.html", {
        **SHARED, "totals": totals,
        "months": reports.monthly_movements(session, now, wired.settings.zone, months=MONTHS,
                                            principal=principal),
        "rewards": reports.reward_figures(session, principal=principal),
        "top": reports.top_balances(session, limit=TOP_BALANCES, principal=principal),
        "recent": reports.recent_redemptions(session, now, limit=RECENT_REDEMPTIONS,
                                             principal=principal).items,
        "lookup": wanted, "lookup_error": lookup_error,
        "statement_path": statement_path}, status_code=404 if lookup_error else 200)


# --- a customer's statement ------------------------------------------------------------------


def _statement_view(request: Request, session: Session, wired: Services, principal: Principal,
                    customer: str, *, before: int | None = None, after: int | None = None,
                    status_code: int = 200, **extra: Any) -> HTMLResponse:
    page = reports.statement(session, customer, before=before, after=after,
                             limit=STATEMENT_PAGE, principal=principal)
    held = loyalty.balance(session, customer, principal=principal)
    now = wired.clock.now()
    context: dict[str, Any] = {
        **SHARED, "customer": customer, "page": page, "lots": held.lots, "now": now,
        "next_expiry": sum(lot.remaining for lot in held.lots
                           if lot.expires_at == held.lots[0].expires_at) if held.lots else 0,
        "first_page": before is None and after is None,
        "older_link": statement_path(customer, before=page.older) if page.older else None,
        "newer_link": statement_path(customer, after=page.newer) if page.newer else None,
        "newest_link": statement_path(customer),
        "redemptions": reports.customer_redemptions(session, customer, now, limit=10,
                                                    principal=principal).items,
        "form": {"points": "", "reason": "",
                 "idempotency_key": f"console-adjust-{secrets.token_hex(10)}"},
        "field_errors": {}, "refusal": None, "refusal_detail": "", "adjusted": None,
    }
    context.update(extra)
    return render(request, "points_statement.html", context, status_code=status_code)


@router.get("/points/customers/{customer}")
def statement_page(request: Request, session: DbSession, wired: ServicesDep,
                   principal: Reader, customer: Key, before: Cursor = None,
                   after: Cursor = None,
                   adjusted: Annotated[int | None, Query(ge=-10**9, le=10**9)] = None
                   ) -> HTMLResponse:
    """Balance, lots with their expiry, entries with the running balance (paged), the
    customer's redemptions and the adjustment form."""
    return _statement_view(request, session, wired, principal, customer, before=before,
                           after=after if before is None else None, adjusted=adjusted)


@router.post("/points/customers/{customer}/adjust", response_model=None)
def adjust(request: Request, session: DbSession, wired: ServicesDep, principal: Writer,
           customer: Key, points: Annotated[str, Form(max_length=32)] = "",
           reason: Annotated[str, Form(max_length=1000)] = "",
           idempotency_key: Annotated[str, Form(max_length=200)] = "") -> Response:
    """Credit (points > 0) or debit (points < 0) the customer once per form: the form's
    idempotency key makes a double submit a replay. A refused form is shown again with
    its errors and the same key."""
    form = {"points": points, "reason": reason, "idempotency_key": idempotency_key}
    fresh_key = f"console-adjust-{secrets.token_hex(10)}"
    try:
        data = AdjustIn.model_validate({
            "customer_external_id": customer, "points": points.strip(), "reason": reason,
            "idempotency_key": idempotency_key})
        moved = loyalty.adjust(session, wired.clock, data, principal=principal)
    except ValidationError as exc:
        errors = _field_errors(exc)
        refusal: dict[str, str] | None = None
        if "idempotency_key" in errors:  # a form not made by this page: give it a key
            form["idempotency_key"] = fresh_key
            refusal = {"code": "idempotency_key", "field": "", "detail": "",
                       "message": REFUSALS["idempotency_key_used"]}
        return _statement_view(request, session, wired, principal, customer, status_code=422,
                               form=form, field_errors=errors, refusal=refusal)
    except ShequError as exc:
        if exc.code == "customer_not_found":
            raise
        errors = {}
        refusal = None
        if exc.attr == "points":
            errors["points"] = REFUSALS.get(exc.code, FIELD_ERRORS["points"])
        else:
            refusal = _refusal(exc)
        if exc.code == "idempotency_key_used":
            form["idempotency_key"] = fresh_key
        return _statement_view(request, session, wired, principal, customer,
                               status_code=exc.status, form=form, field_errors=errors,
                               refusal=refusal, refusal_detail=exc.detail)
    if moved.replayed and (moved.points, moved.reason) != (data.points, data.reason):
        # The form was sent before with other values (Back, edit, send): the key keeps
        # the first adjustment; say so instead of showing it as this one.
        form["idempotency_key"] = fresh_key
        return _statement_view(request, session, wired, principal, customer,
                               status_code=409, form=form, refusal={
                                   "code": "idempotency_key_used", "field": "", "detail": "",
                                   "message": REFUSALS["idempotency_key_used"]})
    return RedirectResponse(statement_path(customer, adjusted=moved.points), status_code=303)


# --- rewards ---------------------------------------------------------------------------------


def _rewards_view(request: Request, session: Session, principal: Principal, *,
                  status_code: int = 200, **extra: Any) -> HTMLResponse:
    rewards = reports.reward_figures(session, principal=principal)
    context: dict[str, Any] = {
        **SHARED, "rewards": sorted(rewards, key=lambda r: (not r.active, r.cost_points,
                                                             r.code)),
        "form": {"code": "", "name": "", "kind": "offline", "cost_points": "", "stock": "",
                 "active": True, "code_valid_days": "30"},
        "editing": False, "field_errors": {}, "refusal": None, "saved": None}
    context.update(extra)
    return render(request, "points_rewards.html", context, status_code=status_code)


@router.get("/points/rewards")
def rewards_page(request: Request, session: DbSession, principal: Reader,
                 edit: Annotated[str, Query(max_length=64)] = "",
                 saved: Annotated[str, Query(max_length=64)] = "") -> HTMLResponse:
    """The catalogue with stock and redemptions; the form creates a reward, or edits the
    one named by ``edit``."""
    extra: dict[str, Any] = {"saved": saved or None}
    if edit:
        found = next((r for r in reports.reward_figures(session, principal=principal)
                      if r.code == edit), None)
        if found is not None:
            extra.update(editing=True, form={
                "code": found.code, "name": found.name, "kind": found.kind,
                "cost_points": str(found.cost_points),
                "stock": "" if found.stock is None else str(found.stock),
                "active": found.active, "code_valid_days": str(found.code_valid_days)})
    return _rewards_view(request, session, principal, **extra)


@router.post("/points/rewards", response_model=None)
def save_reward(request: Request, session: DbSession, wired: ServicesDep, principal: Writer,
                code: Annotated[str, Form(max_length=200)] = "",
                name: Annotated[str, Form(max_length=1000)] = "",
                kind: Annotated[str, Form(max_length=32)] = "",
                cost_points: Annotated[str, Form(max_length=32)] = "",
                stock: Annotated[str, Form(max_length=32)] = "",
                active: Annotated[str, Form(max_length=8)] = "",
                code_valid_days: Annotated[str, Form(max_length=32)] = "",
                editing: Annotated[str, Form(max_length=1)] = "") -> Response:
    """Create a reward or replace its terms; a refused form is shown again with its
    errors."""
    form = {"code": code, "name": name, "kind": kind, "cost_points": cost_points,
            "stock": stock, "active": active == "1", "code_valid_days": code_valid_days}
    try:
        data = RewardIn.model_validate({
            "code": code, "name": name, "kind": kind, "cost_points": cost_points.strip() or None,
            "stock": stock.strip() or None, "active": active == "1",
            "code_valid_days": code_valid_days.strip() or None})
        loyalty.put_reward(session, wired.clock, data, principal=principal)
    except ValidationError as exc:
        return _rewards_view(request, session, principal, status_code=422, form=form,
                             editing=editing == "1", field_errors=_field_errors(exc))
    return RedirectResponse(f"{REWARDS_PATH}?saved={quote(data.code, safe='')}",
                            status_code=303)


# --- a redemption and its store code -------------------------------------------------------


@router.get("/points/redemptions/{key}")
def redemption_page(request: Request, session: DbSession, wired: ServicesDep,
                    principal: Reader, key: Key) -> HTMLResponse:
    """A redemption: the reward, the debit, the refund if any, and for an offline reward
    the store code as text and QR image with its state (unused, used, void, expired)."""
    found = loyalty.show_redemption(session, key, secret_key=wired.settings.secret_key,
                                    principal=principal)
    now = wired.clock.now()
    code = found.store_code
    if code is None:
        code_state = "none"
    elif code.used_at is not None:
        code_state = "used"
    elif code.voided:
        code_state = "void"
    else:
        code_state = "expired" if code.expires_at <= now else "unused"
    return render(request, "points_redemption.html", {
        **SHARED, "redemption": found, "key": key, "code_state": code_state,
        "qr_src": f"/api/v1/loyalty/redemptions/{quote(key, safe='')}/qr.svg",
        "png": None if code is None else qr.png_data_uri(code.code),
        "statement_path": statement_path})


# --- the verification desk -------------------------------------------------------------------


def _verify_view(request: Request, *, status_code: int = 200, **extra: Any) -> HTMLResponse:
    store = request.session.get(STORE_SESSION_KEY, "") if "session" in request.scope else ""
    context: dict[str, Any] = {
        **SHARED, "form": {"code": "", "store_id": store if isinstance(store, str) else ""},
        "field_errors": {}, "accepted": None, "refusal": None, "known": None}
    context.update(extra)
    return render(request, "points_verify.html", context, status_code=status_code)


@router.get("/points/verify")
def verify_page(request: Request, principal: Writer) -> HTMLResponse:
    """The form a store clerk pastes a customer's code into."""
    return _verify_view(request)


@router.post("/points/verify", response_model=None)
def verify(request: Request, session: DbSession, wired: ServicesDep, principal: Writer,
           code: Annotated[str, Form(max_length=500)] = "",
           store_id: Annotated[str, Form(max_length=200)] = "") -> HTMLResponse:
    """Accept a code once, or say plainly why it is refused (forged, already used with
    when and where, void, expired, unknown)."""
    form = {"code": code.strip(), "store_id": store_id.strip()}
    try:
        data = VerifyIn(code=code, store_id=store_id)
    except ValidationError as exc:
        errors = {("store_code" if f == "code" else f): (
            FIELD_ERRORS["store_code"] if f == "code" else message)
            for f, message in _field_errors(exc).items()}
        return _verify_view(request, status_code=422, form=form, field_errors=errors)
    request.session[STORE_SESSION_KEY] = data.store_id
    try:
        accepted = loyalty.verify_code(session, wired.clock, data,
                                       secret_key=wired.settings.secret_key,
                                       principal=principal)
    except ShequError as exc:
        known = reports.describe_code(session, data.code, wired.clock.now(),
                                      secret_key=wired.settings.secret_key,
                                      principal=principal)
        return _verify_view(request, status_code=exc.status, form=form,
                            refusal=_refusal(exc), known=known)
    return _verify_view(request, form={"code": "", "store_id": data.store_id},
                        accepted=accepted)
