"""Console pages of saved segments: the list with size sparklines, the create form with
presets, a segment's rule, size history, members, CSV export and refresh."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from pydantic import ValidationError

from shequ.core.errors import Conflict, ValidationFailed
from shequ.core.permissions import Principal
from shequ.core.web import Services, ServicesDep
from shequ.domains.segments import service as segments
from shequ.domains.segments.schemas import SegmentIn
from shequ.entrypoints.console.customers import (
    SegmentReader,
    SegmentWriter,
)
from shequ.entrypoints.console.i18n import N_, load_translations
from shequ.entrypoints.console.nav import PREFIX
from shequ.entrypoints.console.rendering import render, request_locale

router = APIRouter(prefix=PREFIX, include_in_schema=False)
MEMBERS_PAGE = 50
REFRESH_NAMES = {"refreshed": N_("Refreshed: the members were recomputed."),
                 "unchanged": N_("Unchanged: nothing the rule reads has changed since the "
                                 "last refresh."),
                 "busy": N_("Another refresh of this segment is running; try again shortly."),
                 "failed": N_("The refresh failed; the stored members were kept.")}




# --- segments --------------------------------------------------------------------------------

def spark_option(values: list[int]) -> dict[str, Any]:
    """A small line of a segment's sizes, oldest first."""
    return {
        "animation": False, "grid": {"left": 2, "right": 2, "top": 4, "bottom": 2},
        "xAxis": {"type": "category", "show": False, "data": list(range(len(values)))},
        "yAxis": {"type": "value", "show": False, "scale": True},
        "series": [{"type": "line", "data": values, "symbol": "none",
                    "lineStyle": {"width": 1.5, "color": "#2f6bff"}}],
    }  # fmt: skip


def size_option(moments: list[str], sizes: list[int], name: str) -> dict[str, Any]:
    """A segment's size at each refresh."""
    return {
        "animation": False, "grid": {"left": 56, "right": 24, "top": 24, "bottom": 36},
        "tooltip": {"trigger": "axis"},
        "xAxis": {"type": "category", "data": moments, "boundaryGap": False},
        "yAxis": {"type": "value", "minInterval": 1, "scale": True,
                  "splitLine": {"lineStyle": {"color": "#eef1f6"}}},
        "series": [{"name": name, "type": "line", "data": sizes, "symbol": "circle",
                    "symbolSize": 6, "lineStyle": {"width": 2, "color": "#2f6bff"},
                    "itemStyle": {"color": "#2f6bff"}}],
    }  # fmt: skip


def _segments_context(services: Services, principal: Principal,
                      preset_key: str) -> dict[str, Any]:
    listed = segments.list_segments(services, principal)
    sparks = {}
    for segment in listed:
        sizes = [point.size for point in reversed(segments.history(services, principal,
                                                                   segment.id))]
        if len(sizes) > 1:
            sparks[segment.id] = spark_option(sizes)
    presets = segments.presets(principal)
    chosen = next((p for p in presets if p.key == preset_key), None)
    return {"segments": listed, "sparks": sparks, "presets": presets,
            "form": {"name": chosen.name if chosen else "", "description": "",
                     "rule": json.dumps(chosen.rule, ensure_ascii=False, indent=2)
                     if chosen else ""},
            "chosen_preset": preset_key, "form_error": None}


@router.get("/segments")
def segments_page(request: Request, wired: ServicesDep, principal: SegmentReader) -> Response:
    """Saved segments with size, last refresh and size history; the create form (a preset
    chosen with ``?preset=`` fills it in)."""
    preset = request.query_params.get("preset", "")[:64]
    return render(request, "segments.html", _segments_context(wired, principal, preset))


def _rule_from(text: str) -> dict[str, Any]:
    try:
        rule = json.loads(text)
    except ValueError as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" \
            if isinstance(exc, json.JSONDecodeError) else ""
        raise ValidationFailed("rule_not_json", f"the rule is not valid JSON{where}",
                               "rule") from exc
    if not isinstance(rule, dict):
        raise ValidationFailed("rule_not_object", "the rule must be a JSON object", "rule")
    return rule


@router.post("/segments", response_model=None)
def create_segment(request: Request, wired: ServicesDep, principal: SegmentWriter,
                   name: Annotated[str, Form(max_length=500)] = "",
                   rule: Annotated[str, Form(max_length=20_000)] = "",
                   description: Annotated[str, Form(max_length=5000)] = "") -> Response:
    """Save a segment; a bad name or rule re-shows the form with the faulty part named."""
    error: ValidationFailed | Conflict
    try:
        data = SegmentIn(name=name, rule=_rule_from(rule), description=description)
        created = segments.create_segment(wired, principal, data)
    except ValidationError as exc:
        first = exc.errors()[0]
        error = ValidationFailed("invalid", str(first["msg"]),
                                 ".".join(str(part) for part in first["loc"]))
    except (ValidationFailed, Conflict) as exc:
        error = exc
    else:
        return RedirectResponse(f"{PREFIX}/segments/{created.id}", status_code=303)
    context = _segments_context(wired, principal, "")
    context.update(form={"name": name, "rule": rule, "description": description},
                   form_error=error)
    return render(request, "segments.html", context, status_code=422)


@router.get("/segments/{segment_id}")
def segment_page(request: Request, wired: ServicesDep, principal: SegmentReader,
                 segment_id: int) -> Response:
    """One segment: its rule, size history, a page of members (keyset ``after``)."""
    segment = segments.get_segment(wired, principal, segment_id)
    history = list(reversed(segments.history(wired, principal, segment_id)))
    after = request.query_params.get("after", "").strip()[:64] or None
    members = None if segment.archived else segments.members(
        wired, principal, segment_id, after=after, limit=MEMBERS_PAGE)
    translate = load_translations(request_locale(request)).gettext
    moments = [point.measured_at.astimezone(wired.settings.zone).strftime("%m-%d %H:%M")
               for point in history]
    return render(request, "segment.html", {
        "segment": segment, "history": history, "members": members, "after": after,
        "rule_json": json.dumps(segment.rule, ensure_ascii=False, indent=2),
        "size_option": size_option(moments, [p.size for p in history],
                                   translate("Customer count")) if history else None,
        "refreshed": request.query_params.get("refreshed", "")[:16],
        "refresh_names": REFRESH_NAMES,
    })  # fmt: skip


@router.get("/segments/{segment_id}/export")
def export_segment(wired: ServicesDep, principal: SegmentReader, segment_id: int) -> Response:
    """The members as CSV (UTF-8 with a BOM) with their city, group, tier and stage."""
    filename, lines = segments.export_csv(wired, principal, segment_id)
    return StreamingResponse(lines, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "no-store"})


@router.post("/segments/{segment_id}/refresh", response_model=None)
def refresh_segment(wired: ServicesDep, principal: SegmentWriter, segment_id: int) -> Response:
    """Recompute the members now, then show the segment with the outcome."""
    report = segments.refresh(wired, segment_id, principal=principal, force=True)
    return RedirectResponse(f"{PREFIX}/segments/{segment_id}?refreshed={report.status}",
                            status_code=303)
