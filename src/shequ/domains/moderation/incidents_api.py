"""Crisis incident HTTP routes: parse, call the service, return its schema."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import PlainTextResponse

from shequ.core.permissions import Principal
from shequ.core.web import DbSession, ServicesDep, require
from shequ.domains.moderation import incidents as service
from shequ.domains.moderation.incident_schemas import (
    AdvanceIn,
    DetectIn,
    DetectionReport,
    IncidentDetail,
    IncidentPage,
    IncidentReport,
    IncidentState,
    NoteIn,
    OwnerIn,
    ReviewIn,
    ScopeKind,
)

router = APIRouter(prefix="/api/v1/moderation/incidents", tags=["moderation"])
Reader = Annotated[Principal, require("moderation:read")]
Writer = Annotated[Principal, require("moderation:write")]
Key = Annotated[str, Path(min_length=1, max_length=160, pattern=r"^[A-Za-z0-9_.:\-]+$")]


@router.get("", response_model=IncidentPage)
def list_incidents(session: DbSession, wired: ServicesDep, principal: Reader,
                   state: IncidentState | None = None, scope_kind: ScopeKind | None = None,
                   open_only: bool = False,
                   limit: Annotated[int, Query(ge=1, le=500)] = 50,
                   offset: Annotated[int, Query(ge=0, le=10**9)] = 0) -> IncidentPage:
    return service.list_incidents(session, wired.clock, principal=principal, state=state,
                                  scope_kind=scope_kind, open_only=open_only, limit=limit,
                                  offset=offset)


@router.post("/detect", response_model=DetectionReport)
def detect(session: DbSession, wired: ServicesDep, principal: Writer,
           data: DetectIn | None = None) -> DetectionReport:
    return service.detect_bursts(session, wired.clock, data, principal=principal)


@router.get("/{key}", response_model=IncidentDetail)
def get_incident(session: DbSession, wired: ServicesDep, principal: Reader,
                 key: Key) -> IncidentDetail:
    return service.get_incident(session, wired.clock, key, principal=principal)


@router.put("/{key}/owner", response_model=IncidentDetail)
def set_owner(session: DbSession, wired: ServicesDep, principal: Writer, key: Key,
              data: OwnerIn) -> IncidentDetail:
    return service.set_owner(session, wired.clock, key, data, principal=principal)


@router.post("/{key}/advance", response_model=IncidentDetail)
def advance(session: DbSession, wired: ServicesDep, principal: Writer, key: Key,
            data: AdvanceIn) -> IncidentDetail:
    return service.advance(session, wired.clock, key, data, principal=principal)


@router.post("/{key}/notes", response_model=IncidentDetail, status_code=201)
def add_note(session: DbSession, wired: ServicesDep, principal: Writer, key: Key,
             data: NoteIn) -> IncidentDetail:
    return service.add_note(session, wired.clock, key, data, principal=principal)


@router.get("/{key}/report", response_model=IncidentReport)
def get_report(session: DbSession, wired: ServicesDep, principal: Reader,
               key: Key) -> IncidentReport:
    return service.incident_report(session, wired.clock, key, principal=principal)


@router.put("/{key}/report", response_model=IncidentReport)
def write_review(session: DbSession, wired: ServicesDep, principal: Writer, key: Key,
                 data: ReviewIn) -> IncidentReport:
    return service.write_review(session, wired.clock, key, data, principal=principal)


@router.get("/{key}/report.md", response_class=PlainTextResponse)
def get_report_markdown(session: DbSession, wired: ServicesDep, principal: Reader,
                        key: Key) -> PlainTextResponse:
    report = service.incident_report(session, wired.clock, key, principal=principal)
    return PlainTextResponse(service.report_markdown(report),
                             media_type="text/markdown; charset=utf-8")
