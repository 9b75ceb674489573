"""Invite-task and referral routes for the shop app and staff: parse, call the service,
return its schema (docs/referrals.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from shequ.core.permissions import Principal
from shequ.core.web import DbSession, ServicesDep, require
from shequ.domains.campaigns import invites, referrals
from shequ.domains.campaigns.referral_schemas import (
    AttributionOut,
    ClickIn,
    InviteeOut,
    InviteIn,
    InviteTaskIn,
    InviteTaskOut,
    LinkOut,
    ProgressOut,
    PromoterIn,
    PromoterRow,
    RuleIn,
    RuleOut,
    SettleReport,
    StatementOut,
    TaskBoard,
    TreeOut,
)

router = APIRouter(prefix="/api/v1/referrals", tags=["referrals"])
Reader = Annotated[Principal, require("campaigns:read")]
Writer = Annotated[Principal, require("campaigns:write")]
Key = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]


def _created(response: Response, created: bool) -> None:
    response.status_code = 201 if created else 200


# --- invite tasks -----------------------------------------------------------------------


@router.get("/tasks", response_model=list[InviteTaskOut])
def list_tasks(session: DbSession, principal: Reader) -> list[InviteTaskOut]:
    return invites.list_tasks(session, principal=principal)


@router.post("/tasks", response_model=InviteTaskOut, status_code=201)
def create_task(session: DbSession, wired: ServicesDep, principal: Writer, data: InviteTaskIn,
                response: Response) -> InviteTaskOut:
    task, created = invites.create_task(session, wired.clock, data, principal=principal)
    _created(response, created)
    return task


@router.get("/tasks/{task}", response_model=TaskBoard)
def task_board(session: DbSession, principal: Reader, task: Key) -> TaskBoard:
    return invites.board(session, task, principal=principal)


@router.post("/tasks/{task}/invites", response_model=InviteeOut, status_code=201)
def record_invite(session: DbSession, wired: ServicesDep, principal: Writer, task: Key,
                  data: InviteIn, response: Response) -> InviteeOut:
    done = invites.record_invite(session, wired.clock, task, data, principal=principal)
    _created(response, not done.replayed)
    return done


@router.get("/tasks/{task}/progress/{customer}", response_model=ProgressOut)
def my_progress(session: DbSession, principal: Reader, task: Key, customer: Key
                ) -> ProgressOut:
    return invites.progress(session, task, customer, principal=principal)


# --- referrals --------------------------------------------------------------------------


@router.get("/rules", response_model=RuleOut)
def get_rule(session: DbSession, principal: Reader) -> RuleOut:
    return referrals.current_rule(session, principal=principal)


@router.put("/rules", response_model=RuleOut)
def put_rule(session: DbSession, wired: ServicesDep, principal: Writer, data: RuleIn
             ) -> RuleOut:
    return referrals.put_rule(session, wired.clock, data, principal=principal)


@router.get("/promoters", response_model=list[PromoterRow])
def list_promoters(session: DbSession, principal: Reader) -> list[PromoterRow]:
    return referrals.list_promoters(session, principal=principal)


@router.post("/promoters", response_model=LinkOut, status_code=201)
def make_promoter(session: DbSession, wired: ServicesDep, principal: Writer, data: PromoterIn,
                  response: Response) -> LinkOut:
    made = referrals.make_promoter(session, wired.clock, data, principal=principal)
    _created(response, made.created)
    return made


@router.get("/promoters/{customer}/link", response_model=LinkOut)
def my_link(session: DbSession, principal: Reader, customer: Key) -> LinkOut:
    return referrals.link(session, customer, principal=principal)


@router.get("/promoters/{customer}/tree", response_model=TreeOut)
def get_tree(session: DbSession, principal: Reader, customer: Key) -> TreeOut:
    return referrals.tree(session, customer, principal=principal)


@router.get("/promoters/{customer}/statement", response_model=StatementOut)
def get_statement(session: DbSession, principal: Reader, customer: Key) -> StatementOut:
    return referrals.statement(session, customer, principal=principal)


@router.post("/clicks", response_model=AttributionOut, status_code=201)
def record_click(session: DbSession, wired: ServicesDep, principal: Writer, data: ClickIn
                 ) -> AttributionOut:
    return referrals.click(session, wired.clock, data, principal=principal)


@router.post("/settle", response_model=SettleReport)
def settle(wired: ServicesDep, principal: Writer) -> SettleReport:
    principal.refuse_if_partner("platform_wide_referrals", "referrals span every brand; "
                                "partners cannot read or change them")
    return SettleReport.model_validate(referrals.settle_commissions(wired))
