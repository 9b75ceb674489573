"""Membership HTTP routes: parse, call the service, return its schema."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Path, Query

from shequ.core.permissions import Principal
from shequ.core.web import DbSession, ServicesDep, require
from shequ.domains.membership import service
from shequ.domains.membership.schemas import (
    EvaluationReport,
    FiguresOut,
    MemberOut,
    TierChangePage,
    TierCode,
    TierRuleIn,
    TierRuleOut,
    TierRulesIn,
)

router = APIRouter(prefix="/api/v1/membership", tags=["membership"])
Reader = Annotated[Principal, require("membership:read")]
Writer = Annotated[Principal, require("membership:write")]
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("/rules", response_model=list[TierRuleOut])
def list_rules(session: DbSession, principal: Reader) -> list[TierRuleOut]:
    return service.list_rules(session, principal=principal)


@router.put("/rules", response_model=list[TierRuleOut])
def put_rules(session: DbSession, wired: ServicesDep, principal: Writer,
              data: TierRulesIn) -> list[TierRuleOut]:
    return service.put_rules(session, wired.clock, data, principal=principal)


@router.put("/rules/{tier}", response_model=TierRuleOut)
def put_rule(session: DbSession, wired: ServicesDep, principal: Writer, tier: TierCode,
             data: TierRuleIn) -> TierRuleOut:
    return service.put_rule(session, wired.clock, tier, data, principal=principal)


@router.post("/evaluate", response_model=EvaluationReport)
def evaluate(wired: ServicesDep, principal: Writer,
             day: Annotated[date | None, Query(description="default: yesterday")] = None
             ) -> EvaluationReport:
    return service.evaluate(wired, day or service.due_day(wired), principal=principal)


@router.get("/figures", response_model=FiguresOut)
def figures(session: DbSession, wired: ServicesDep, principal: Reader,
            day: Annotated[date | None, Query(description="default: yesterday")] = None
            ) -> FiguresOut:
    return service.figures(session, day or service.due_day(wired),
                           zone=wired.settings.zone, principal=principal)


@router.get("/members/{customer_id}", response_model=MemberOut)
def get_member(session: DbSession, principal: Reader, customer_id: Id) -> MemberOut:
    return service.member(session, customer_id, principal=principal)


@router.get("/changes", response_model=TierChangePage)
def list_changes(session: DbSession, principal: Reader, day: date | None = None,
                 after: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
                 limit: Annotated[int, Query(ge=1, le=500)] = 50) -> TierChangePage:
    return service.list_changes(session, day=day, after=after, limit=limit,
                                principal=principal)
