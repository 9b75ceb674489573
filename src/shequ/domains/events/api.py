"""``POST /api/v1/events``: batches of up to 5,000 events from the shop's apps."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from shequ.analytics.dwell import DwellQuery, DwellResult, DwellRunner
from shequ.analytics.funnels import FunnelQuery, FunnelResult
from shequ.analytics.heatmaps import HeatmapQuery, HeatmapResult, HeatmapRunner
from shequ.analytics.paths import PathsQuery, PathsResult, PathsRunner
from shequ.analytics.retention import RetentionQuery, RetentionResult, RetentionRunner
from shequ.analytics.sessions import SessionsQuery, SessionsResult, SessionsRunner
from shequ.analytics.trends import TrendsQuery, TrendsResult, TrendsRunner
from shequ.core.errors import PayloadTooLarge
from shequ.core.permissions import Principal
from shequ.core.web import ServicesDep, require
from shequ.domains.events import service

router = APIRouter(prefix="/api/v1", tags=["events"])


class Rejected(BaseModel):
    index: int
    field: str
    reason: str


class IngestAnswer(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[Rejected]


_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["event_id", "name", "timestamp"],
    "properties": {
        "event_id": {"type": "string", "minLength": 1, "maxLength": 64},
        "name": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,63}$"},
        "timestamp": {"type": "string", "format": "date-time"},
        "customer_id": {"type": "string", "maxLength": 128},
        "anonymous_id": {"type": "string", "maxLength": 128},
        "session_id": {"type": "string"}, "device_id": {"type": "string"},
        "page": {"type": "string"}, "referrer": {"type": "string"},
        "channel": {"type": "string"}, "properties": {"type": "object"},
        "x": {"type": "number", "minimum": 0, "maximum": 1},
        "y": {"type": "number", "minimum": 0, "maximum": 1},
        "dwell_ms": {"type": "integer", "minimum": 0},
    },
}

_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {
            "type": "array", "maxItems": 5000, "items": _EVENT_SCHEMA}}},
    }
}


async def _read_capped(request: Request) -> bytes:
    """The request body, refusing to buffer more than the batch limit allows."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > service.MAX_BODY_BYTES:
        raise PayloadTooLarge("body_too_large", "a batch may hold at most 16 MiB")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > service.MAX_BODY_BYTES:
            raise PayloadTooLarge("body_too_large", "a batch may hold at most 16 MiB")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/events", response_model=IngestAnswer, openapi_extra=_BODY,
             summary="Ingest a batch of events (gzip allowed)")
async def ingest_events(request: Request, wired: ServicesDep,
                        _principal: Annotated[Principal, require("events:write")]) -> Response:
    body = await _read_capped(request)
    answer = await run_in_threadpool(service.ingest, wired, body,
                                     request.headers.get("content-encoding"))
    return Response(orjson.dumps(answer), media_type="application/json")


@router.post("/analytics/funnels", response_model=FunnelResult,
             summary="Run a funnel over the events (ordered, strict or any order)")
def run_funnel(wired: ServicesDep, principal: Annotated[Principal, require("analytics:read")],
               query: FunnelQuery) -> FunnelResult:
    return service.run_funnel(wired, principal, query)


@router.post("/analytics/sessions", response_model=SessionsResult,
             summary="Sessions (30-minute split): count, median duration, bounce rate; "
                     "items lists the first `limit` sessions by start")
def run_sessions(wired: ServicesDep, principal: Annotated[Principal, require("analytics:read")],
                 query: SessionsQuery,
                 limit: Annotated[int, Query(ge=0, le=1000)] = 100) -> SessionsResult:
    result = service.analyse(wired, principal, SessionsRunner(query))
    return result.model_copy(update={"items": result.items[:limit]})


@router.post("/analytics/trends", response_model=TrendsResult,
             summary="Count, unique people or a property's sum per hour, day or week")
def run_trends(wired: ServicesDep, principal: Annotated[Principal, require("analytics:read")],
               query: TrendsQuery) -> TrendsResult:
    return service.analyse(wired, principal, TrendsRunner(query))


@router.post("/analytics/paths", response_model=PathsResult,
             summary="Top page paths of sessions, as a list and as Sankey nodes and links")
def run_paths(wired: ServicesDep, principal: Annotated[Principal, require("analytics:read")],
              query: PathsQuery) -> PathsResult:
    return service.analyse(wired, principal, PathsRunner(query))


@router.post("/analytics/retention", response_model=RetentionResult,
             summary="Retention cohorts by first day or week, D1/D7/D30")
def run_retention(wired: ServicesDep,
                  principal: Annotated[Principal, require("analytics:read")],
                  query: RetentionQuery) -> RetentionResult:
    return service.analyse(wired, principal, RetentionRunner(query))


@router.post("/analytics/dwell", response_model=DwellResult,
             summary="Dwell-time distribution per page or content type")
def run_dwell(wired: ServicesDep, principal: Annotated[Principal, require("analytics:read")],
              query: DwellQuery) -> DwellResult:
    return service.analyse(wired, principal, DwellRunner(query))


@router.post("/analytics/heatmaps", response_model=HeatmapResult,
             summary="Clicks on a page in normalised x/y bins")
def run_heatmap(wired: ServicesDep, principal: Annotated[Principal, require("analytics:read")],
                query: HeatmapQuery) -> HeatmapResult:
    return service.analyse(wired, principal, HeatmapRunner(query))


class MetricPoint(BaseModel):
    metric: str
    bucket_start: datetime
    value: float | None


@router.get("/analytics/metrics", response_model=list[MetricPoint],
            summary="Stored values of the 18 core metrics (hourly or daily buckets)")
def read_metrics(wired: ServicesDep, principal: Annotated[Principal, require("analytics:read")],
                 date_from: date, date_to: date, grain: Literal["hour", "day"] = "day",
                 metric: Annotated[list[str] | None, Query()] = None) -> list[MetricPoint]:
    values = service.stored_metrics(wired, principal, grain, date_from, date_to, metric)
    return [MetricPoint(metric=v.metric, bucket_start=v.bucket_start, value=v.value)
            for v in values]
