"""Alert HTTP routes: parse, call the service, return its schema."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from shequ.core.permissions import Principal
from shequ.core.web import DbSession, ServicesDep, require
from shequ.domains.alerts import service
from shequ.domains.alerts.schemas import (
    AlertDetail,
    AlertOut,
    AlertPage,
    Grain,
    Level,
    RuleIn,
    RuleOut,
    RulePatch,
    State,
    TransitionNote,
)

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])
Reader = Annotated[Principal, require("alerts:read")]
Writer = Annotated[Principal, require("alerts:write")]
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("/rules", response_model=list[RuleOut])
def list_rules(session: DbSession, principal: Reader,
               metric: Annotated[str | None, Query(max_length=64)] = None,
               grain: Grain | None = None, enabled: bool | None = None) -> list[RuleOut]:
    return service.list_rules(session, principal, metric=metric, grain=grain, enabled=enabled)


@router.post("/rules", response_model=RuleOut, status_code=201)
def create_rule(session: DbSession, wired: ServicesDep, principal: Writer,
                data: RuleIn) -> RuleOut:
    return service.create_rule(session, wired, principal, data)


@router.get("/rules/{rule_id}", response_model=RuleOut)
def get_rule(session: DbSession, principal: Reader, rule_id: Id) -> RuleOut:
    return service.get_rule(session, principal, rule_id)


@router.patch("/rules/{rule_id}", response_model=RuleOut)
def update_rule(session: DbSession, wired: ServicesDep, principal: Writer, rule_id: Id,
                data: RulePatch) -> RuleOut:
    return service.update_rule(session, wired, principal, rule_id, data)


@router.delete("/rules/{rule_id}", status_code=204, response_class=Response)
def delete_rule(session: DbSession, principal: Writer, rule_id: Id) -> Response:
    service.delete_rule(session, principal, rule_id)
    return Response(status_code=204)


@router.get("", response_model=AlertPage)
def list_alerts(
    session: DbSession, wired: ServicesDep, principal: Reader, state: State | None = None,
    level: Level | None = None, metric: Annotated[str | None, Query(max_length=64)] = None,
    rule_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    date_from: date | None = None, date_to: date | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> AlertPage:
    return service.list_alerts(session, principal, wired.settings.zone, state=state,
                               level=level, metric=metric, rule_id=rule_id,
                               date_from=date_from, date_to=date_to, limit=limit,
                               offset=offset)


@router.get("/{alert_id}", response_model=AlertDetail)
def get_alert(session: DbSession, principal: Reader, alert_id: Id) -> AlertDetail:
    return service.get_alert(session, principal, alert_id)


@router.post("/{alert_id}/acknowledge", response_model=AlertOut)
def acknowledge_alert(session: DbSession, wired: ServicesDep, principal: Writer,
                      alert_id: Id, data: TransitionNote | None = None) -> AlertOut:
    note = data.note if data is not None else None
    return service.acknowledge_alert(session, wired.clock, principal, alert_id, note)


@router.post("/{alert_id}/resolve", response_model=AlertOut)
def resolve_alert(session: DbSession, wired: ServicesDep, principal: Writer, alert_id: Id,
                  data: TransitionNote | None = None) -> AlertOut:
    note = data.note if data is not None else None
    return service.resolve_alert(session, wired.clock, principal, alert_id, note)
