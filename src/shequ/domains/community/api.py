"""Community HTTP routes: parse, call the service, return its schema."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from shequ.core.permissions import Principal
from shequ.core.web import DbSession, ServicesDep, require
from shequ.domains.community import service
from shequ.domains.community.schemas import (
    AcademyProgress,
    CloseIn,
    CompletionIn,
    CompletionOut,
    DashboardOut,
    FeedOrder,
    FeedPage,
    HubMetrics,
    HubRole,
    HubSummary,
    JoinIn,
    LadderReport,
    LevelChangePage,
    LevelCode,
    LevelIn,
    LevelOut,
    MemberOut,
    MemberPage,
    RetentionOut,
    RoleIn,
    RoundIn,
    RoundOut,
    StandingOut,
    TaskIn,
    TaskOut,
)

router = APIRouter(prefix="/api/v1/community", tags=["community"])
Reader = Annotated[Principal, require("community:read")]
Writer = Annotated[Principal, require("community:write")]
Key = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
TaskCode = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[a-z0-9_]+$")]


# --- ladder ------------------------------------------------------------------------------


@router.get("/ladder/levels", response_model=list[LevelOut])
def list_levels(session: DbSession, principal: Reader) -> list[LevelOut]:
    return service.list_levels(session, principal=principal)


@router.put("/ladder/levels/{code}", response_model=LevelOut)
def put_level(session: DbSession, wired: ServicesDep, principal: Writer, code: LevelCode,
              data: LevelIn) -> LevelOut:
    return service.put_level(session, wired.clock, code, data, principal=principal)


@router.post("/ladder/evaluate", response_model=LadderReport)
def evaluate(session: DbSession, wired: ServicesDep, principal: Writer,
             as_of: Annotated[datetime | None, Query(description="default: now")] = None
             ) -> LadderReport:
    return service.evaluate_ladder(session, wired.clock, as_of, principal=principal)


@router.get("/ladder/creators/{creator}", response_model=StandingOut)
def get_standing(session: DbSession, wired: ServicesDep, principal: Reader,
                 creator: Key) -> StandingOut:
    return service.standing(session, wired.clock, creator, principal=principal)


@router.get("/ladder/changes", response_model=LevelChangePage)
def list_changes(session: DbSession, principal: Reader,
                 after: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
                 limit: Annotated[int, Query(ge=1, le=500)] = 50) -> LevelChangePage:
    return service.list_changes(session, after=after, limit=limit, principal=principal)


# --- academy -----------------------------------------------------------------------------


@router.get("/academy/tasks", response_model=list[TaskOut])
def list_tasks(session: DbSession, principal: Reader) -> list[TaskOut]:
    return service.list_tasks(session, principal=principal)


@router.put("/academy/tasks/{code}", response_model=TaskOut)
def put_task(session: DbSession, wired: ServicesDep, principal: Writer, code: TaskCode,
             data: TaskIn) -> TaskOut:
    return service.put_task(session, wired.clock, code, data, principal=principal)


@router.post("/academy/tasks/{code}/completions", response_model=CompletionOut,
             status_code=201)
def complete_task(session: DbSession, wired: ServicesDep, principal: Writer, code: TaskCode,
                  data: CompletionIn, response: Response) -> CompletionOut:
    done = service.complete_task(session, wired.clock, code, data, principal=principal)
    if not done.created:
        response.status_code = 200
    return done


@router.get("/academy/creators/{creator}", response_model=AcademyProgress)
def get_progress(session: DbSession, principal: Reader, creator: Key) -> AcademyProgress:
    return service.progress(session, creator, principal=principal)


# --- dashboard and retention -------------------------------------------------------------


@router.get("/creators/{creator}/dashboard", response_model=DashboardOut)
def get_dashboard(session: DbSession, wired: ServicesDep, principal: Reader, creator: Key,
                  days: Annotated[int, Query(ge=1, le=365)] = 30) -> DashboardOut:
    return service.dashboard(session, wired.clock, creator, days=days, principal=principal)


@router.get("/retention", response_model=RetentionOut)
def get_retention(session: DbSession, wired: ServicesDep, principal: Reader,
                  months: Annotated[int, Query(ge=1, le=36)] = 6) -> RetentionOut:
    return service.core_retention(session, wired.clock, months=months,
                                  zone=wired.settings.zone, principal=principal)


# --- fund --------------------------------------------------------------------------------


@router.get("/fund/rounds", response_model=list[RoundOut])
def list_rounds(session: DbSession, principal: Reader) -> list[RoundOut]:
    return service.list_rounds(session, principal=principal)


@router.post("/fund/rounds", response_model=RoundOut, status_code=201)
def create_round(session: DbSession, wired: ServicesDep, principal: Writer, data: RoundIn,
                 response: Response) -> RoundOut:
    created = service.create_round(session, wired.clock, data, principal=principal)
    if created.replayed:
        response.status_code = 200
    return created


@router.get("/fund/rounds/{key}", response_model=RoundOut)
def get_round(session: DbSession, principal: Reader, key: Key) -> RoundOut:
    return service.show_round(session, key, principal=principal)


@router.post("/fund/rounds/{key}/close", response_model=RoundOut)
def close_round(session: DbSession, wired: ServicesDep, principal: Writer, key: Key,
                data: CloseIn) -> RoundOut:
    return service.close_round(session, wired.clock, key, data, principal=principal)


# --- hubs --------------------------------------------------------------------------------


@router.get("/hubs", response_model=list[HubSummary])
def list_hubs(session: DbSession, principal: Reader) -> list[HubSummary]:
    return service.list_hub_summaries(session, principal=principal)


@router.post("/hubs/{hub}/members", response_model=MemberOut, status_code=201)
def join_hub(session: DbSession, wired: ServicesDep, principal: Writer, hub: Key,
             data: JoinIn, response: Response) -> MemberOut:
    joined = service.join_hub(session, wired.clock, hub, data, principal=principal)
    if not joined.created:
        response.status_code = 200
    return joined


@router.put("/hubs/{hub}/members/{customer}/role", response_model=MemberOut)
def set_role(session: DbSession, wired: ServicesDep, principal: Writer, hub: Key,
             customer: Key, data: RoleIn) -> MemberOut:
    return service.set_role(session, wired.clock, hub, customer, data, principal=principal)


@router.get("/hubs/{hub}/members", response_model=MemberPage)
def list_members(session: DbSession, principal: Reader, hub: Key,
                 role: HubRole | None = None,
                 after: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
                 limit: Annotated[int, Query(ge=1, le=500)] = 50) -> MemberPage:
    return service.list_members(session, hub, role=role, after=after, limit=limit,
                                principal=principal)


@router.get("/hubs/{hub}/feed", response_model=FeedPage)
def get_feed(session: DbSession, principal: Reader, hub: Key, order: FeedOrder = "newest",
             cursor: Annotated[str | None, Query(max_length=100)] = None,
             limit: Annotated[int, Query(ge=1, le=100)] = 20) -> FeedPage:
    return service.hub_feed(session, hub, order=order, cursor=cursor, limit=limit,
                            principal=principal)


@router.get("/hubs/{hub}/metrics", response_model=HubMetrics)
def get_metrics(session: DbSession, wired: ServicesDep, principal: Reader, hub: Key,
                weeks: Annotated[int, Query(ge=1, le=104)] = 8) -> HubMetrics:
    return service.hub_metrics(session, wired.clock, hub, weeks=weeks,
                               zone=wired.settings.zone, principal=principal)
