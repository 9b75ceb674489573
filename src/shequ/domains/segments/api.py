"""Segment HTTP routes: parse, call the service, return its schema."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import StreamingResponse

from shequ.core.permissions import Principal
from shequ.core.web import ServicesDep, require
from shequ.domains.segments import service
from shequ.domains.segments.schemas import (
    MemberPage,
    Membership,
    Preset,
    Preview,
    RefreshReport,
    RuleIn,
    SegmentIn,
    SegmentOut,
    SegmentPatch,
    SizeOut,
)

router = APIRouter(prefix="/api/v1/segments", tags=["segments"])
Reader = Annotated[Principal, require("segments:read")]
Writer = Annotated[Principal, require("segments:write")]
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
CustomerId = Annotated[str, Path(min_length=1, max_length=128)]


@router.get("", response_model=list[SegmentOut])
def list_segments(wired: ServicesDep, principal: Reader,
                  archived: bool = False) -> list[SegmentOut]:
    return service.list_segments(wired, principal, archived=archived)


@router.post("", response_model=SegmentOut, status_code=201)
def create_segment(wired: ServicesDep, principal: Writer, data: SegmentIn) -> SegmentOut:
    return service.create_segment(wired, principal, data)


@router.get("/presets", response_model=list[Preset])
def list_presets(principal: Reader) -> list[Preset]:
    return service.presets(principal)


@router.post("/preview", response_model=Preview)
def preview_rule(wired: ServicesDep, principal: Reader, data: RuleIn) -> Preview:
    return service.preview(wired, principal, data.rule)


@router.get("/{segment_id}", response_model=SegmentOut)
def get_segment(wired: ServicesDep, principal: Reader, segment_id: Id) -> SegmentOut:
    return service.get_segment(wired, principal, segment_id)


@router.patch("/{segment_id}", response_model=SegmentOut)
def update_segment(wired: ServicesDep, principal: Writer, segment_id: Id,
                   data: SegmentPatch) -> SegmentOut:
    return service.update_segment(wired, principal, segment_id, data)


@router.delete("/{segment_id}", status_code=204, response_class=Response)
def delete_segment(wired: ServicesDep, principal: Writer, segment_id: Id) -> Response:
    service.delete_segment(wired, principal, segment_id)
    return Response(status_code=204)


@router.post("/{segment_id}/refresh", response_model=RefreshReport)
def refresh_segment(wired: ServicesDep, principal: Writer, segment_id: Id,
                    force: bool = False) -> RefreshReport:
    return service.refresh(wired, segment_id, principal=principal, force=force)


@router.get("/{segment_id}/members", response_model=MemberPage)
def list_members(wired: ServicesDep, principal: Reader, segment_id: Id,
                 after: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
                 limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 100) -> MemberPage:
    return service.members(wired, principal, segment_id, after=after, limit=limit)


@router.get("/{segment_id}/members/{customer_external_id}", response_model=Membership)
def membership(wired: ServicesDep, principal: Reader, segment_id: Id,
               customer_external_id: CustomerId) -> Membership:
    return Membership(member=service.is_member(wired, principal, segment_id,
                                               customer_external_id))


@router.get("/{segment_id}/export.csv", response_class=StreamingResponse)
def export_members(wired: ServicesDep, principal: Reader, segment_id: Id) -> StreamingResponse:
    filename, chunks = service.export_csv(wired, principal, segment_id)
    return StreamingResponse(chunks, media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition":
                                      f'attachment; filename="{filename}"'})


@router.get("/{segment_id}/history", response_model=list[SizeOut])
def size_history(wired: ServicesDep, principal: Reader, segment_id: Id) -> list[SizeOut]:
    return service.history(wired, principal, segment_id)
