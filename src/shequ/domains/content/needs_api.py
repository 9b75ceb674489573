"""Needs insight HTTP route: ``GET /api/v1/content/needs?quarter=2026Q3``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from shequ.core.permissions import Principal
from shequ.core.web import DbSession, ServicesDep, require
from shequ.domains.content import needs
from shequ.domains.content.needs_schemas import NeedsReport

router = APIRouter(prefix="/content", tags=["content"])
Reader = Annotated[Principal, require("content:read")]
QuarterParam = Annotated[str | None, Query(max_length=16, description=(
    "Quarter such as 2026Q3 (local days); default: the last quarter holding content"))]


@router.get("/needs", response_model=NeedsReport)
def needs_report(session: DbSession, wired: ServicesDep, principal: Reader,
                 quarter: QuarterParam = None) -> NeedsReport:
    zone = wired.settings.zone
    chosen = quarter if quarter is not None else needs.default_quarter(session, principal,
                                                                       zone=zone)
    return needs.needs_report(session, principal, chosen, zone=zone)
