"""Content HTTP routes: parse, call the service, return its schema."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Query
from pydantic import AwareDatetime

from shequ.core.permissions import Principal
from shequ.core.web import DbSession, ServicesDep, require
from shequ.domains.content import service
from shequ.domains.content.needs_api import router as needs_router
from shequ.domains.content.schemas import (
    CommentIn,
    CommentOut,
    ContentType,
    CreatorIn,
    CreatorLevel,
    CreatorOut,
    CreatorPage,
    DwellByType,
    HubIn,
    HubOut,
    PostDetail,
    PostIn,
    PostOut,
    PostPage,
    PostScoreOut,
    PostSort,
    PostStatus,
    ReviewIn,
    ReviewOut,
    ReviewPage,
    ScoreRefreshIn,
    ScoreRefreshReport,
    SentimentBand,
)

router = APIRouter(prefix="/api/v1", tags=["content"])
Reader = Annotated[Principal, require("content:read")]
Writer = Annotated[Principal, require("content:write")]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0)]
DWELL_DEFAULT_DAYS = 30


@router.get("/hubs", response_model=list[HubOut])
def list_hubs(session: DbSession, principal: Reader) -> list[HubOut]:
    return service.list_hubs(session, principal)


@router.post("/hubs", response_model=HubOut, status_code=201)
def create_hub(session: DbSession, _principal: Writer, data: HubIn) -> HubOut:
    return service.create_hub(session, data)


@router.get("/creators", response_model=CreatorPage)
def list_creators(session: DbSession, principal: Reader, hub: str | None = None,
                  level: CreatorLevel | None = None, limit: Limit = 50,
                  offset: Offset = 0) -> CreatorPage:
    return service.list_creators(session, principal, hub=hub, level=level, limit=limit,
                                 offset=offset)


@router.post("/creators", response_model=CreatorOut, status_code=201)
def create_creator(session: DbSession, wired: ServicesDep, principal: Writer,
                   data: CreatorIn) -> CreatorOut:
    return service.create_creator(session, wired.clock, principal, data)


@router.get("/posts", response_model=PostPage)
def list_posts(session: DbSession, principal: Reader, hub: str | None = None,
               content_type: ContentType | None = None, product: str | None = None,
               status: PostStatus | None = None, sentiment: SentimentBand | None = None,
               min_quality: Annotated[float | None, Query(ge=0, le=100)] = None,
               sort: PostSort = PostSort.NEW, limit: Limit = 50,
               offset: Offset = 0) -> PostPage:
    return service.list_posts(session, principal, hub=hub, content_type=content_type,
                              product=product, status=status, sentiment=sentiment,
                              min_quality=min_quality, sort=sort, limit=limit, offset=offset)


@router.post("/posts", response_model=PostOut, status_code=201)
def create_post(session: DbSession, wired: ServicesDep, principal: Writer,
                data: PostIn) -> PostOut:
    return service.create_post(session, wired.clock, principal, data)


@router.get("/posts/{external_id}", response_model=PostDetail)
def get_post(session: DbSession, principal: Reader, external_id: str) -> PostDetail:
    return service.get_post(session, principal, external_id)


@router.post("/posts/{external_id}/comments", response_model=CommentOut, status_code=201)
def add_comment(session: DbSession, wired: ServicesDep, principal: Writer, external_id: str,
                data: CommentIn) -> CommentOut:
    return service.add_comment(session, wired.clock, principal, external_id, data)


@router.get("/reviews", response_model=ReviewPage)
def list_reviews(session: DbSession, principal: Reader, sku: str | None = None,
                 rating: Annotated[int | None, Query(ge=1, le=5)] = None,
                 sentiment: SentimentBand | None = None, limit: Limit = 50,
                 offset: Offset = 0) -> ReviewPage:
    return service.list_reviews(session, principal, sku=sku, rating=rating,
                                sentiment=sentiment, limit=limit, offset=offset)


@router.post("/reviews", response_model=ReviewOut, status_code=201)
def create_review(session: DbSession, wired: ServicesDep, principal: Writer,
                  data: ReviewIn) -> ReviewOut:
    return service.create_review(session, wired.clock, principal, data)


router.include_router(needs_router)



@router.get("/content/posts/{external_id}/score", response_model=PostScoreOut)
def get_post_score(session: DbSession, principal: Reader, external_id: str) -> PostScoreOut:
    return service.get_post_score(session, principal, external_id)


@router.post("/content/scores/refresh", response_model=ScoreRefreshReport)
def refresh_scores(wired: ServicesDep, principal: Writer,
                   data: Annotated[ScoreRefreshIn | None, Body()] = None
                   ) -> ScoreRefreshReport:
    return service.refresh_scores(wired, principal, data)


@router.get("/content/dwell-by-type", response_model=DwellByType)
def dwell_by_type(session: DbSession, wired: ServicesDep, principal: Reader,
                  since: AwareDatetime | None = None,
                  until: AwareDatetime | None = None) -> DwellByType:
    end: datetime = until or wired.clock.now()
    start: datetime = since or end - timedelta(days=DWELL_DEFAULT_DAYS)
    return service.dwell_by_type(session, wired, principal, start, end)
