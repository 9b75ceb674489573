"""Campaign and calendar routes: campaigns (create and replace return the conflicts they
take part in as ``warnings``), their results, the shared calendar, its conflicts and the
brands' monthly budgets."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from shequ.core.permissions import Principal
from shequ.core.web import DbSession, ServicesDep, require
from shequ.domains.campaigns import calendar
from shequ.domains.campaigns import campaign_service as service
from shequ.domains.campaigns.campaign_schemas import (
    BudgetIn,
    BudgetOut,
    CalendarOut,
    CampaignIn,
    CampaignOut,
    CampaignPage,
    ConflictOut,
    Kind,
    ResultsOut,
    Status,
    Tier,
    View,
)

router = APIRouter(prefix="/api/v1/campaigns", tags=["campaigns"])
Reader = Annotated[Principal, require("campaigns:read")]
Writer = Annotated[Principal, require("campaigns:write")]
CampaignId = Annotated[int, Path(ge=1, le=2**31 - 1)]
BrandKey = Annotated[str | None, Query(min_length=1, max_length=64,
                                       pattern=r"^[A-Za-z0-9_.:\-]+$")]


@router.get("", response_model=CampaignPage)
def list_campaigns(session: DbSession, wired: ServicesDep, principal: Reader,
                   tier: Tier | None = None, kind: Kind | None = None,
                   status: Status | None = None, brand: BrandKey = None,
                   q: Annotated[str | None, Query(max_length=100)] = None,
                   limit: Annotated[int, Query(ge=1, le=500)] = 50,
                   offset: Annotated[int, Query(ge=0, le=10**6)] = 0) -> CampaignPage:
    return service.list_campaigns(session, wired.clock, principal, zone=wired.settings.zone,
                                  tier=tier, kind=kind, status=status, brand=brand, q=q,
                                  limit=limit, offset=offset)


@router.post("", response_model=CampaignOut, status_code=201)
def create_campaign(session: DbSession, wired: ServicesDep, principal: Writer,
                    data: CampaignIn) -> CampaignOut:
    return service.create_campaign(session, wired.clock, principal, data,
                                   zone=wired.settings.zone)


@router.get("/calendar", response_model=CalendarOut)
def get_calendar(session: DbSession, wired: ServicesDep, principal: Reader,
                 view: View = "month", day: Annotated[date | None, Query(alias="date")] = None
                 ) -> CalendarOut:
    zone = wired.settings.zone
    shown = day or wired.clock.now().astimezone(zone).date()
    return calendar.calendar_view(session, wired.clock, principal, view=view, day=shown,
                                  zone=zone)


@router.get("/conflicts", response_model=list[ConflictOut])
def get_conflicts(session: DbSession, wired: ServicesDep, principal: Reader
                  ) -> list[ConflictOut]:
    return calendar.conflicts(session, wired.clock, principal, zone=wired.settings.zone)


@router.get("/budgets", response_model=list[BudgetOut])
def list_budgets(session: DbSession, principal: Reader) -> list[BudgetOut]:
    return service.list_budgets(session, principal)


@router.put("/budgets", response_model=BudgetOut)
def put_budget(session: DbSession, wired: ServicesDep, principal: Writer,
               data: BudgetIn) -> BudgetOut:
    return service.put_budget(session, wired.clock, principal, data)


@router.get("/{campaign_id}", response_model=CampaignOut)
def get_campaign(session: DbSession, wired: ServicesDep, principal: Reader,
                 campaign_id: CampaignId) -> CampaignOut:
    return service.get_campaign(session, wired.clock, principal, campaign_id,
                                zone=wired.settings.zone)


@router.put("/{campaign_id}", response_model=CampaignOut)
def update_campaign(session: DbSession, wired: ServicesDep, principal: Writer,
                    campaign_id: CampaignId, data: CampaignIn) -> CampaignOut:
    return service.update_campaign(session, wired.clock, principal, campaign_id, data,
                                   zone=wired.settings.zone)


@router.delete("/{campaign_id}", status_code=204)
def delete_campaign(session: DbSession, principal: Writer,
                    campaign_id: CampaignId) -> Response:
    service.delete_campaign(session, principal, campaign_id)
    return Response(status_code=204)


@router.get("/{campaign_id}/results", response_model=ResultsOut)
def get_results(session: DbSession, wired: ServicesDep, principal: Reader,
                campaign_id: CampaignId) -> ResultsOut:
    return service.results(session, wired.clock, principal, campaign_id,
                           zone=wired.settings.zone)
