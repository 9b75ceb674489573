"""Order HTTP routes: parse, call the service, return its schema."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from shequ.core.permissions import Principal
from shequ.core.web import DbSession, ServicesDep, require
from shequ.domains.orders import service
from shequ.domains.orders.schemas import OrderIn, OrderOut, OrderPage, Status, TransitionIn

router = APIRouter(prefix="/api/v1", tags=["orders"])
Reader = Annotated[Principal, require("orders:read")]
Writer = Annotated[Principal, require("orders:write")]


@router.post("/orders", response_model=OrderOut, status_code=201,
             responses={200: {"model": OrderOut, "description": "Posted before: the same order"}})
def create_order(session: DbSession, wired: ServicesDep, _principal: Writer, data: OrderIn,
                 response: Response) -> OrderOut:
    order, created = service.create_order(session, wired.clock, data)
    if not created:
        response.status_code = 200
    return order


@router.get("/orders", response_model=OrderPage)
def list_orders(
    session: DbSession, principal: Reader, status: Status | None = None,
    customer: str | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> OrderPage:
    return service.list_orders(session, principal, status=status, customer=customer,
                               limit=limit, offset=offset)


@router.get("/orders/{external_id}", response_model=OrderOut)
def get_order(session: DbSession, principal: Reader, external_id: str) -> OrderOut:
    return service.get_order(session, principal, external_id)


@router.post("/orders/{external_id}/transitions", response_model=OrderOut)
def transition_order(session: DbSession, wired: ServicesDep, principal: Writer,
                     external_id: str, data: TransitionIn) -> OrderOut:
    return service.transition_order(session, wired.clock, principal, external_id, data.to)
