"""Customer HTTP routes: parse, call the service, return its schema."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from shequ.core.permissions import Principal
from shequ.core.web import DbSession, ServicesDep, require
from shequ.domains.customers import service
from shequ.domains.customers.schemas import (
    CustomerDetail,
    CustomerIn,
    CustomerOut,
    CustomerPage,
    DeviceIn,
    DeviceOut,
    IdentifyIn,
    IdentityOut,
)
from shequ.domains.events import service as events

router = APIRouter(prefix="/api/v1", tags=["customers"])
Reader = Annotated[Principal, require("customers:read")]
Writer = Annotated[Principal, require("customers:write")]


@router.post("/customers", response_model=CustomerOut, status_code=201)
def create_customer(session: DbSession, wired: ServicesDep, _principal: Writer,
                    data: CustomerIn) -> CustomerOut:
    return service.create_customer(session, wired.clock, data)


@router.get("/customers", response_model=CustomerPage)
def list_customers(
    session: DbSession, _principal: Reader, city: str | None = None, channel: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Annotated[int, Query(ge=0)] = 0,
) -> CustomerPage:
    return service.list_customers(session, city=city, channel=channel, limit=limit,
                                  offset=offset)


@router.get("/customers/{external_id}", response_model=CustomerDetail)
def get_customer(session: DbSession, _principal: Reader, external_id: str) -> CustomerDetail:
    return service.get_customer(session, external_id)


@router.post("/customers/{external_id}/identify", response_model=IdentityOut)
def identify(session: DbSession, wired: ServicesDep, _principal: Writer, external_id: str,
             data: IdentifyIn) -> IdentityOut:
    linked = service.identify(session, wired.clock, external_id, data.anonymous_id)
    # The event store keeps its own copy of the link so funnels and retention count the
    # visitor's earlier anonymous events as this customer's.
    events.link_visitor(wired, data.anonymous_id, external_id)
    return linked


@router.post("/devices", response_model=DeviceOut, status_code=201,
             responses={200: {"model": DeviceOut, "description": "A device known already"}})
def create_device(session: DbSession, wired: ServicesDep, _principal: Writer, data: DeviceIn,
                  response: Response) -> DeviceOut:
    device, created = service.create_device(session, wired.clock, data)
    if not created:
        response.status_code = 200
    return device
