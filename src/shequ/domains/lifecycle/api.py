"""Lifecycle HTTP routes: parse, call the service, return its schema (docs/lifecycle.md)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Path, Query

from shequ.core.permissions import Principal
from shequ.core.web import DbSession, ServicesDep, require
from shequ.domains.customers import service as customers
from shequ.domains.lifecycle import service
from shequ.domains.lifecycle.schemas import (
    CustomerLifecycle,
    LtvByStage,
    RefreshReport,
    SeriesPoint,
    Snapshot,
    StrategyIn,
    StrategyOut,
    TransitionMatrix,
)

router = APIRouter(prefix="/api/v1/lifecycle", tags=["lifecycle"])
Reader = Annotated[Principal, require("insight:read")]
Writer = Annotated[Principal, require("insight:write")]
From = Annotated[date, Query(alias="from")]
To = Annotated[date, Query(alias="to")]


def _today(wired: ServicesDep) -> date:
    return wired.clock.now().astimezone(wired.settings.zone).date()


@router.get("/snapshot", response_model=Snapshot)
def get_snapshot(session: DbSession, wired: ServicesDep, principal: Reader,
                 day: date | None = None) -> Snapshot:
    service.refuse_partners(principal)
    return service.snapshot(session, day or _today(wired))


@router.get("/transitions", response_model=TransitionMatrix)
def get_transitions(session: DbSession, principal: Reader, first: From,
                    last: To) -> TransitionMatrix:
    service.refuse_partners(principal)
    return service.transitions(session, first, last)


@router.get("/transitions/series", response_model=list[TransitionMatrix])
def get_transition_series(session: DbSession, principal: Reader, first: From, last: To,
                          step_days: Annotated[int, Query(ge=1, le=92)] = 7
                          ) -> list[TransitionMatrix]:
    service.refuse_partners(principal)
    return service.transition_series(session, first, last, step_days)


@router.get("/series", response_model=list[SeriesPoint])
def get_series(session: DbSession, principal: Reader, first: From,
               last: To) -> list[SeriesPoint]:
    service.refuse_partners(principal)
    return service.series(session, first, last)


@router.get("/ltv", response_model=LtvByStage)
def get_ltv(session: DbSession, wired: ServicesDep, principal: Reader,
            day: date | None = None) -> LtvByStage:
    service.refuse_partners(principal)
    return service.ltv_by_stage(session, day or _today(wired), zone=wired.settings.zone)


@router.get("/strategies", response_model=list[StrategyOut])
def get_strategies(session: DbSession, principal: Reader) -> list[StrategyOut]:
    service.refuse_partners(principal)
    return service.strategies(session)


@router.put("/strategies/{stage}", response_model=StrategyOut)
def put_strategy(session: DbSession, wired: ServicesDep, principal: Writer,
                 stage: Annotated[str, Path(max_length=16)], data: StrategyIn) -> StrategyOut:
    return service.update_strategy(session, wired.clock, principal, stage, data)


@router.get("/customers/{external_id}", response_model=CustomerLifecycle)
def get_customer_lifecycle(session: DbSession, principal: Reader,
                           external_id: Annotated[str, Path(max_length=64)]
                           ) -> CustomerLifecycle:
    service.refuse_partners(principal)
    customer = customers.get_customer(session, external_id)
    return service.customer_lifecycle(session, customer.id)


@router.post("/refresh", response_model=RefreshReport)
def post_refresh(wired: ServicesDep, principal: Writer, first: From,
                 last: To) -> RefreshReport:
    service.refuse_partners(principal)
    return service.refresh(wired, first, last)
