"""Console pages of social fission (docs/referrals.md): invite tasks (the list, the create
form, a task's progress table with why each invitee did or did not count) and referrals
(promoters, the commission rule, settlement, a promoter's two-level tree and statement).

Everything is a call to ``campaigns.invites`` or ``campaigns.referrals``; the routes parse
the forms into the services' schemas, call them and render.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from shequ.core.clock import parse_day
from shequ.core.errors import ShequError
from shequ.core.permissions import Principal
from shequ.core.web import DbSession, ServicesDep, require
from shequ.domains.campaigns import invites, referrals
from shequ.domains.campaigns.referral_schemas import (
    InviteTaskIn,
    PromoterIn,
    RuleIn,
)
from shequ.entrypoints.console.i18n import N_
from shequ.entrypoints.console.nav import PREFIX
from shequ.entrypoints.console.rendering import render

router = APIRouter(prefix=PREFIX, include_in_schema=False)
Reader = Annotated[Principal, require("campaigns:read")]
Writer = Annotated[Principal, require("campaigns:write")]
Key = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]

TASKS_PATH = f"{PREFIX}/invite-tasks"
REFERRALS_PATH = f"{PREFIX}/referrals"
COUNTS_NAMES = {"registered": N_("Friend signs up"),
                "first_paid_order": N_("Friend pays a first order")}
STATE_NAMES = {"pending": N_("Waiting"), "counted": N_("Counted"), "rejected": N_("Not counted")}
STATE_BADGES = {"pending": "badge-grey", "counted": "badge-green", "rejected": "badge-red"}
REASON_NAMES = {
    "self_invite": N_("Invited themselves"),
    "existing_customer": N_("Already a customer before the invite"),
    "shared_device": N_("Same device as the inviter"),
    "shared_address": N_("Same shipping address as the inviter"),
    "shared_payment": N_("Same payment account as the inviter"),
    "outside_window": N_("Paid after the task ended"),
}
COMMISSION_NAMES = {"pending": N_("Pending"), "settled": N_("Settled"),
                    "clawed_back": N_("Clawed back")}
COMMISSION_BADGES = {"pending": "badge-blue", "settled": "badge-green",
                     "clawed_back": "badge-red"}
ENTRY_NAMES = {"settle": N_("Settlement"), "clawback": N_("Clawback after settlement")}
ORDER_NAMES = {"created": N_("Created"), "paid": N_("Paid"), "shipped": N_("Shipped"),
               "completed": N_("Completed"), "cancelled": N_("Cancelled"),
               "refunded": N_("Refunded")}
INVALID = N_("This value is not valid.")
FIELD_MESSAGES = {
    "code": N_("Use 1 to 64 letters, digits or . _ : -"),
    "name": N_("Give a name of 1 to 100 characters."),
    "goal": N_("Choose a goal of 1 to 100 friends."),
    "reward_points": N_("Give 1 to 1,000,000 points."),
    "starts_on": N_("Enter a date (YYYY-MM-DD)."),
    "ends_on": N_("Enter a date (YYYY-MM-DD) on or after the start."),
    "level1_bp": N_("Give a rate of 0 to 3,000 basis points (30 %%)."),
    "level2_bp": N_("Give a rate of 0 to 3,000 basis points, at most the level-1 rate."),
    "attribution_days": N_("Give 1 to 90 days."),
    "return_days": N_("Give 0 to 90 days."),
    "customer": N_("Enter the external id of an existing customer."),
}
SHARED = {"counts_names": COUNTS_NAMES, "state_names": STATE_NAMES,
          "state_badges": STATE_BADGES, "reason_names": REASON_NAMES,
          "commission_names": COMMISSION_NAMES, "commission_badges": COMMISSION_BADGES,
          "entry_names": ENTRY_NAMES, "order_names": ORDER_NAMES}


def _field_errors(exc: ValidationError, renames: dict[str, str] | None = None
                  ) -> dict[str, str]:
    found: dict[str, str] = {}
    for problem in exc.errors():
        field = str(problem["loc"][0]) if problem["loc"] else ""
        field = (renames or {}).get(field, field)
        found.setdefault(field, FIELD_MESSAGES.get(field, INVALID))
    return found


def _shequ_errors(exc: ShequError, renames: dict[str, str] | None = None) -> dict[str, str]:
    field = (renames or {}).get(exc.attr or "", exc.attr or "")
    return {field or "form": exc.detail}


# --- invite tasks -----------------------------------------------------------------------


def _tasks_context(session: Any, principal: Principal, form: dict[str, Any],
                   errors: dict[str, str]) -> dict[str, Any]:
    return {**SHARED, "tasks": invites.list_tasks(session, principal=principal),
            "form": form, "errors": errors}


def _blank_task_form(today: str, until: str) -> dict[str, Any]:
    return {"code": "", "name": "", "goal": "3", "counts": "registered",
            "starts_on": today, "ends_on": until, "reward_points": "500"}


@router.get(TASKS_PATH.removeprefix(PREFIX))
def tasks_page(request: Request, session: DbSession, wired: ServicesDep,
               principal: Reader) -> HTMLResponse:
    """Every invite task with its totals; the create form for staff who may write."""
    today = wired.clock.now().astimezone(wired.settings.zone).date()
    form = _blank_task_form(today.isoformat(), (today + timedelta(days=13)).isoformat())
    return render(request, "invite_tasks.html", _tasks_context(session, principal, form, {}))


def _local_start(day: str, field: str, zone: Any) -> datetime:
    return datetime.combine(parse_day(day, field), time(0), tzinfo=zone)


@router.post(TASKS_PATH.removeprefix(PREFIX), response_model=None)
def create_task(request: Request, session: DbSession, wired: ServicesDep, principal: Writer,
                code: Annotated[str, Form(max_length=200)] = "",
                name: Annotated[str, Form(max_length=500)] = "",
                goal: Annotated[str, Form(max_length=20)] = "",
                counts: Annotated[str, Form(max_length=40)] = "registered",
                starts_on: Annotated[str, Form(max_length=20)] = "",
                ends_on: Annotated[str, Form(max_length=20)] = "",
                reward_points: Annotated[str, Form(max_length=20)] = "") -> Response:
    """File a task (``ends_on`` is the last day, inclusive, in the console's time zone);
    a refused field re-shows the form with the reason under it."""
    form = {"code": code, "name": name, "goal": goal, "counts": counts,
            "starts_on": starts_on, "ends_on": ends_on, "reward_points": reward_points}
    renames = {"starts_at": "starts_on", "ends_at": "ends_on"}
    errors: dict[str, str] = {}
    zone = wired.settings.zone
    try:
        starts = _local_start(starts_on, "starts_on", zone)
        ends = _local_start(ends_on, "ends_on", zone) + timedelta(days=1)
        data = InviteTaskIn.model_validate({
            "code": code, "name": name, "goal": goal, "counts": counts,
            "starts_at": starts, "ends_at": ends, "reward_points": reward_points})
        task, _created = invites.create_task(session, wired.clock, data, principal=principal)
    except ValidationError as exc:
        errors = _field_errors(exc, renames)
    except ShequError as exc:
        errors = _shequ_errors(exc, renames)
    else:
        return RedirectResponse(f"{TASKS_PATH}/{task.code}", status_code=303)
    session.rollback()
    return render(request, "invite_tasks.html",
                  _tasks_context(session, principal, form, errors), status_code=422)


@router.get(TASKS_PATH.removeprefix(PREFIX) + "/{code}")
def task_page(request: Request, session: DbSession, principal: Reader, code: Key
              ) -> HTMLResponse:
    """A task's progress: every inviter with counted / goal and each invitee's outcome."""
    shown = invites.board(session, code, principal=principal)
    states: dict[str, int] = {"pending": 0, "counted": 0, "rejected": 0}
    reasons: dict[str, int] = {}
    for inviter in shown.inviters:
        for invitee in inviter.invitees:
            states[invitee.state] += 1
            if invitee.reason:
                reasons[invitee.reason] = reasons.get(invitee.reason, 0) + 1
    return render(request, "invite_task.html", {
        **SHARED, "board": shown, "states": states,
        "reasons": sorted(reasons.items(), key=lambda item: -item[1])})


# --- referrals --------------------------------------------------------------------------


def _referrals_context(session: Any, principal: Principal, rule_form: dict[str, Any],
                       errors: dict[str, str], promoter_form: dict[str, Any]
                       ) -> dict[str, Any]:
    return {**SHARED, "promoters": referrals.list_promoters(session, principal=principal),
            "rule": referrals.current_rule(session, principal=principal),
            "rule_form": rule_form, "promoter_form": promoter_form, "errors": errors,
            "settled": None, "settled_fen": "0"}


def _rule_form(session: Any, principal: Principal) -> dict[str, Any]:
    rule = referrals.current_rule(session, principal=principal)
    return {k: str(v) for k, v in rule.model_dump(
        include={"level1_bp", "level2_bp", "attribution_days", "return_days"}).items()}


@router.get(REFERRALS_PATH.removeprefix(PREFIX))
def referrals_page(request: Request, session: DbSession, principal: Reader) -> HTMLResponse:
    """Promoters with balance and pending commission, the rule in force, settlement."""
    settled = request.query_params.get("settled", "")[:12]
    context = _referrals_context(session, principal, _rule_form(session, principal), {},
                                 {"customer": "", "code": ""})
    context["settled"] = settled if settled.isdigit() else None
    context["settled_fen"] = request.query_params.get("fen", "0")[:14]
    return render(request, "referrals.html", context)


@router.post(REFERRALS_PATH.removeprefix(PREFIX) + "/rules", response_model=None)
def put_rule(request: Request, session: DbSession, wired: ServicesDep, principal: Writer,
             level1_bp: Annotated[str, Form(max_length=20)] = "",
             level2_bp: Annotated[str, Form(max_length=20)] = "",
             attribution_days: Annotated[str, Form(max_length=20)] = "",
             return_days: Annotated[str, Form(max_length=20)] = "") -> Response:
    """New commission terms from now on."""
    form = {"level1_bp": level1_bp, "level2_bp": level2_bp,
            "attribution_days": attribution_days, "return_days": return_days}
    try:
        referrals.put_rule(session, wired.clock, RuleIn.model_validate(form),
                           principal=principal)
    except ValidationError as exc:
        errors = _field_errors(exc)
    except ShequError as exc:
        errors = _shequ_errors(exc)
    else:
        return RedirectResponse(f"{REFERRALS_PATH}#rule-card", status_code=303)
    session.rollback()
    return render(request, "referrals.html", _referrals_context(
        session, principal, form, errors, {"customer": "", "code": ""}), status_code=422)


@router.post(REFERRALS_PATH.removeprefix(PREFIX) + "/promoters", response_model=None)
def make_promoter(request: Request, session: DbSession, wired: ServicesDep, principal: Writer,
                  customer: Annotated[str, Form(max_length=200)] = "",
                  code: Annotated[str, Form(max_length=200)] = "") -> Response:
    """Make a customer a promoter (a code is chosen when left empty)."""
    form = {"customer": customer, "code": code}
    try:
        made = referrals.make_promoter(session, wired.clock, PromoterIn.model_validate(
            {"customer": customer, "code": code.strip() or None}), principal=principal)
    except ValidationError as exc:
        errors = {f"promoter_{k}": v for k, v in _field_errors(exc).items()}
    except ShequError as exc:
        errors = {f"promoter_{k}": v for k, v in _shequ_errors(exc).items()}
    else:
        return RedirectResponse(f"{REFERRALS_PATH}/{made.customer}", status_code=303)
    session.rollback()
    return render(request, "referrals.html", _referrals_context(
        session, principal, _rule_form(session, principal), errors, form), status_code=422)


@router.post(REFERRALS_PATH.removeprefix(PREFIX) + "/settle", response_model=None)
def settle(wired: ServicesDep, principal: Writer) -> Response:
    """Run the settlement job now, then show how much it settled."""
    principal.refuse_if_partner("platform_wide_referrals", "referrals span every brand")
    report = referrals.settle_commissions(wired)
    return RedirectResponse(f"{REFERRALS_PATH}?settled={report['settled']}"
                            f"&fen={report['settled_fen']}", status_code=303)


@router.get(REFERRALS_PATH.removeprefix(PREFIX) + "/{customer}")
def tree_page(request: Request, session: DbSession, principal: Reader, customer: Key
              ) -> HTMLResponse:
    """A promoter's two-level tree with each customer's orders and commission."""
    shown = referrals.tree(session, customer, principal=principal)
    link = referrals.link(session, customer, principal=principal)
    return render(request, "referral_tree.html", {**SHARED, "tree": shown, "link": link})


@router.get(REFERRALS_PATH.removeprefix(PREFIX) + "/{customer}/statement")
def statement_page(request: Request, session: DbSession, principal: Reader, customer: Key
                   ) -> HTMLResponse:
    """A promoter's balance, ledger entries and commissions."""
    shown = referrals.statement(session, customer, principal=principal)
    return render(request, "referral_statement.html", {**SHARED, "statement": shown})
