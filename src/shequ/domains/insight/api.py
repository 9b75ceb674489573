"""Insight HTTP routes: value profiles, profile tags, the value matrix and the 360° view."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Path, Query

from shequ.core.permissions import Principal
from shequ.core.web import DbSession, ServicesDep, require
from shequ.domains.insight import service, view
from shequ.domains.insight.schemas import (
    Customer360,
    ProfileOut,
    RefreshReport,
    TagOut,
    ValueMatrixOut,
)

router = APIRouter(prefix="/api/v1", tags=["insight"])
Reader = Annotated[Principal, require("insight:read")]
Writer = Annotated[Principal, require("insight:write")]
CustomerKey = Annotated[str, Path(min_length=1, max_length=64)]


@router.get("/insight/value-matrix", response_model=ValueMatrixOut)
def value_matrix(session: DbSession, principal: Reader) -> ValueMatrixOut:
    """The five value tiers and the eight RFM groups with their figures."""
    return service.value_matrix(session, principal)


@router.post("/insight/refresh", response_model=RefreshReport)
def refresh(wired: ServicesDep, principal: Writer,
            as_of: Annotated[date | None, Query()] = None) -> RefreshReport:
    """Recompute every profile and tag (default: as of the end of the data)."""
    service.check_platform(principal)
    return service.refresh(wired, as_of=as_of)


@router.get("/customers/{external_id}/profile", response_model=ProfileOut | None)
def profile(session: DbSession, principal: Reader, external_id: CustomerKey) -> ProfileOut | None:
    """The customer's RFM, CLV and value tier; null for a customer who has not bought."""
    return service.get_profile(session, principal, external_id)


@router.get("/customers/{external_id}/tags", response_model=list[TagOut])
def tags(session: DbSession, principal: Reader, external_id: CustomerKey) -> list[TagOut]:
    """Affinities, price sensitivity, preferred channel and hour."""
    return service.customer_tags(session, principal, external_id)


@router.get("/customers/{external_id}/360", response_model=Customer360)
def customer_360(session: DbSession, wired: ServicesDep, principal: Reader,
                 external_id: CustomerKey) -> Customer360:
    """Everything about one customer and their growth trajectory."""
    return view.customer_360(wired, session, principal, external_id)
