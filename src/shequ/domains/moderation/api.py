"""Moderation HTTP routes: parse, call the service, return its schema."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from shequ.core.permissions import Principal
from shequ.core.web import DbSession, ServicesDep, require
from shequ.domains.moderation import service
from shequ.domains.moderation.incidents_api import router as incidents_router
from shequ.domains.moderation.schemas import (
    AppealIn,
    AssignIn,
    BatchIn,
    BatchOut,
    CaseDetail,
    CaseOut,
    CasePage,
    CaseState,
    ClaimIn,
    DecideIn,
    EscalateIn,
    ImportReport,
    Label,
    LexiconOut,
    QueueFigures,
    SubjectKind,
    TermIn,
    TermOut,
    VerdictOut,
)
from shequ.domains.moderation.schemas import (
    CheckIn as CheckBody,
)

api = APIRouter(prefix="/api/v1/moderation", tags=["moderation"])
Reader = Annotated[Principal, require("moderation:read")]
Writer = Annotated[Principal, require("moderation:write")]
CaseId = Annotated[int, Path(ge=1, le=2**31 - 1)]
SubjectId = Annotated[str, Path(min_length=1, max_length=64)]


@api.post("/check", response_model=VerdictOut)
def check(wired: ServicesDep, principal: Reader, data: CheckBody) -> VerdictOut:
    """The verdict on one text, synchronously; nothing is stored."""
    return service.check_live(wired.sessions, [data.text])[0]


@api.post("/check/batch", response_model=BatchOut)
def check_batch(wired: ServicesDep, principal: Reader, data: BatchIn) -> BatchOut:
    """Verdicts on up to 500 texts, in order; nothing is stored."""
    return BatchOut(verdicts=service.check_live(wired.sessions, data.texts))


@api.get("/cases", response_model=CasePage)
def list_cases(session: DbSession, wired: ServicesDep, principal: Reader,
               state: Annotated[CaseState | None, Query()] = None,
               waiting: Annotated[bool, Query(description="queued or appealed")] = False,
               level: Annotated[int | None, Query(ge=1, le=3)] = None,
               label: Annotated[Label | None, Query()] = None,
               kind: Annotated[SubjectKind | None, Query()] = None,
               assignee: Annotated[str | None, Query(max_length=64)] = None,
               overdue: Annotated[bool | None, Query()] = None,
               limit: Annotated[int, Query(ge=1, le=500)] = 50,
               offset: Annotated[int, Query(ge=0, le=10**7)] = 0) -> CasePage:
    return service.list_cases(session, wired.clock, principal,
                              state="waiting" if waiting else state, level=level,
                              label=label, kind=kind, assignee=assignee, overdue=overdue,
                              limit=limit, offset=offset)


@api.get("/cases/{case_id}", response_model=CaseDetail)
def get_case(session: DbSession, wired: ServicesDep, principal: Reader,
             case_id: CaseId) -> CaseDetail:
    return service.get_case(session, wired.clock, principal, case_id)


@api.get("/subjects/{kind}/{subject_id}", response_model=CaseDetail)
def case_of(session: DbSession, wired: ServicesDep, principal: Reader, kind: SubjectKind,
            subject_id: SubjectId) -> CaseDetail:
    """The case of one post, review or comment."""
    return service.case_of(session, wired.clock, principal, kind, subject_id)


@api.post("/queue/claim", response_model=CaseOut,
             responses={204: {"description": "nothing is waiting"}})
def claim(session: DbSession, wired: ServicesDep, principal: Writer, data: ClaimIn,
          response: Response) -> CaseOut | Response:
    """Take the next waiting case (the one that falls due first)."""
    found = service.claim_next(session, wired.clock, principal, data.level, data.skip)
    if found is None:
        return Response(status_code=204)
    return found


@api.post("/cases/{case_id}/assign", response_model=CaseOut)
def assign(session: DbSession, wired: ServicesDep, principal: Writer, case_id: CaseId,
           data: AssignIn) -> CaseOut:
    return service.assign(session, wired.clock, principal, case_id, data.assignee)


@api.post("/cases/{case_id}/release", response_model=CaseOut)
def release(session: DbSession, wired: ServicesDep, principal: Writer,
            case_id: CaseId) -> CaseOut:
    return service.release(session, wired.clock, principal, case_id)


@api.post("/cases/{case_id}/decide", response_model=CaseOut)
def decide(session: DbSession, wired: ServicesDep, principal: Writer, case_id: CaseId,
           data: DecideIn) -> CaseOut:
    return service.decide(session, wired.clock, principal, case_id, data.label, data.reason)


@api.post("/cases/{case_id}/escalate", response_model=CaseOut)
def escalate(session: DbSession, wired: ServicesDep, principal: Writer, case_id: CaseId,
             data: EscalateIn) -> CaseOut:
    return service.escalate(session, wired.clock, principal, case_id, data.reason)


@api.post("/cases/{case_id}/appeal", response_model=CaseOut)
def appeal(session: DbSession, wired: ServicesDep, principal: Writer, case_id: CaseId,
           data: AppealIn) -> CaseOut:
    return service.appeal(session, wired.clock, principal, case_id, data.reason)


@api.get("/figures", response_model=QueueFigures)
def figures(session: DbSession, wired: ServicesDep, principal: Reader,
            since: Annotated[datetime | None, Query(description="default: 7 days ago")] = None,
            until: Annotated[datetime | None, Query(description="default: now")] = None
            ) -> QueueFigures:
    end = until or wired.clock.now()
    return service.figures(session, wired.clock, principal, since or end - timedelta(days=7),
                           end)


@api.get("/lexicon", response_model=LexiconOut)
def lexicon(session: DbSession, principal: Reader) -> LexiconOut:
    return service.lexicon_summary(session, principal)


@api.post("/lexicon/terms", response_model=TermOut, status_code=201)
def add_term(session: DbSession, wired: ServicesDep, principal: Writer,
             data: TermIn) -> TermOut:
    return service.add_term(session, wired.clock, principal, data)


@api.post("/lexicon/import", response_model=ImportReport)
def import_terms(session: DbSession, wired: ServicesDep, principal: Writer,
                 data: list[TermIn]) -> ImportReport:
    return service.import_terms(session, wired.clock, principal, data)


@api.delete("/lexicon/terms/{term_id}", status_code=204)
def delete_term(session: DbSession, wired: ServicesDep, principal: Writer,
                term_id: CaseId) -> Response:
    service.delete_term(session, wired.clock, principal, term_id)
    return Response(status_code=204)


# The domain's routes: the queue's and the lexicon's above, crisis incidents in
# ``incidents_api`` (its own prefix, /api/v1/moderation/incidents).
router = APIRouter()
router.include_router(api)
router.include_router(incidents_router)
