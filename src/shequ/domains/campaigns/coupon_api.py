"""Coupon routes: templates and their figures for staff, issuance, and the shop app's
wallet, quote and checkout with a coupon (docs/coupons.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from shequ.core.permissions import Principal
from shequ.core.web import DbSession, ServicesDep, require
from shequ.domains.campaigns import coupons as service
from shequ.domains.campaigns.coupon_schemas import (
    BatchOut,
    CheckoutIn,
    CheckoutOut,
    CouponOut,
    FiguresOut,
    IssueIn,
    IssueOut,
    QuoteIn,
    QuoteOut,
    RedemptionOut,
    TemplateDetail,
    TemplateIn,
    TemplateOut,
)

router = APIRouter(prefix="/api/v1/coupons", tags=["coupons"])
Reader = Annotated[Principal, require("campaigns:read")]
Writer = Annotated[Principal, require("campaigns:write")]
Key = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]


@router.post("/templates", response_model=TemplateOut, status_code=201)
def create_template(session: DbSession, wired: ServicesDep, principal: Writer,
                    data: TemplateIn) -> TemplateOut:
    return service.create_template(session, wired.clock, data, principal=principal)


@router.get("/templates", response_model=list[TemplateDetail])
def list_templates(session: DbSession, _principal: Reader) -> list[TemplateDetail]:
    return service.list_figures(session)


@router.get("/templates/{code}", response_model=TemplateDetail)
def get_template(session: DbSession, _principal: Reader, code: Key) -> TemplateDetail:
    return service.template_detail(session, code)


@router.get("/templates/{code}/figures", response_model=FiguresOut)
def get_figures(session: DbSession, _principal: Reader, code: Key) -> FiguresOut:
    return service.figures(session, code)


@router.get("/templates/{code}/redemptions", response_model=list[RedemptionOut])
def list_redemptions(session: DbSession, _principal: Reader, code: Key) -> list[RedemptionOut]:
    return service.redemptions(session, code)


@router.get("/templates/{code}/batches", response_model=list[BatchOut])
def list_batches(session: DbSession, _principal: Reader, code: Key) -> list[BatchOut]:
    return service.batches(session, code)


@router.post("/templates/{code}/issue", response_model=IssueOut, status_code=201,
             responses={200: {"model": IssueOut, "description": "Nothing new was issued"}})
def issue(session: DbSession, wired: ServicesDep, principal: Writer, code: Key,
          data: IssueIn, response: Response) -> IssueOut:
    service.get_template(session, code)  # 404 before reading a segment
    source, keys = service.recipients(wired, principal, data)
    done = service.issue(session, wired.clock, code, data.batch_key, keys, source=source,
                         principal=principal)
    if not done.issued:
        response.status_code = 200
    return done


@router.get("/customers/{customer}/coupons", response_model=list[CouponOut])
def wallet(session: DbSession, wired: ServicesDep, _principal: Reader,
           customer: Key) -> list[CouponOut]:
    return service.customer_coupons(session, wired.clock, customer)


@router.post("/quote", response_model=QuoteOut)
def quote(session: DbSession, wired: ServicesDep, _principal: Reader,
          data: QuoteIn) -> QuoteOut:
    return service.quote(session, wired.clock, data)


@router.post("/checkout", response_model=CheckoutOut, status_code=201,
             responses={200: {"model": CheckoutOut, "description": "Posted before: the "
                              "same order and discount"}})
def checkout(session: DbSession, wired: ServicesDep, _principal: Writer, data: CheckoutIn,
             response: Response) -> CheckoutOut:
    done = service.checkout(session, wired.clock, data)
    if done.replayed:
        response.status_code = 200
    return done
