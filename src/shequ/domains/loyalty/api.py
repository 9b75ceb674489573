"""Loyalty HTTP routes for the shop app, staff and stores: parse, call the service,
return its schema."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from shequ.core.errors import NotFound
from shequ.core.permissions import Principal
from shequ.core.web import DbSession, ServicesDep, require
from shequ.domains.loyalty import qr, reports, service
from shequ.domains.loyalty.schemas import (
    AdjustIn,
    BalanceOut,
    EarnIn,
    ExpiryReport,
    MovementOut,
    RedeemIn,
    RedemptionOut,
    RefundIn,
    RewardIn,
    RewardOut,
    SignInIn,
    StatementPage,
    VerifyIn,
    VerifyOut,
)

router = APIRouter(prefix="/api/v1/loyalty", tags=["loyalty"])
Reader = Annotated[Principal, require("loyalty:read")]
Writer = Annotated[Principal, require("loyalty:write")]
Key = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:\-]+$")]


def _created(response: Response, replayed: bool) -> None:
    response.status_code = 200 if replayed else 201


@router.get("/customers/{customer}/balance", response_model=BalanceOut)
def get_balance(session: DbSession, principal: Reader, customer: Key) -> BalanceOut:
    return service.balance(session, customer, principal=principal)


@router.get("/customers/{customer}/statement", response_model=StatementPage)
def get_statement(session: DbSession, principal: Reader, customer: Key,
                  before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
                  limit: Annotated[int, Query(ge=1, le=500)] = 50) -> StatementPage:
    return service.statement(session, customer, before=before, limit=limit,
                             principal=principal)


@router.post("/earn", response_model=MovementOut, status_code=201)
def earn(session: DbSession, wired: ServicesDep, principal: Writer, data: EarnIn,
         response: Response) -> MovementOut:
    moved = service.earn(session, wired.clock, data, principal=principal)
    _created(response, moved.replayed)
    return moved


@router.post("/sign-in", response_model=MovementOut, status_code=201)
def sign_in(session: DbSession, wired: ServicesDep, principal: Writer, data: SignInIn,
            response: Response) -> MovementOut:
    moved = service.sign_in(session, wired.clock, data, zone=wired.settings.zone,
                            principal=principal)
    _created(response, moved.replayed)
    return moved


@router.post("/adjust", response_model=MovementOut, status_code=201)
def adjust(session: DbSession, wired: ServicesDep, principal: Writer, data: AdjustIn,
           response: Response) -> MovementOut:
    moved = service.adjust(session, wired.clock, data, principal=principal)
    _created(response, moved.replayed)
    return moved


@router.get("/rewards", response_model=list[RewardOut])
def list_rewards(session: DbSession, principal: Reader,
                 active: Annotated[bool, Query(description="only rewards on offer")] = False
                 ) -> list[RewardOut]:
    return service.list_rewards(session, active_only=active, principal=principal)


@router.post("/rewards", response_model=RewardOut, status_code=201)
def put_reward(session: DbSession, wired: ServicesDep, principal: Writer, data: RewardIn,
               response: Response) -> RewardOut:
    reward = service.put_reward(session, wired.clock, data, principal=principal)
    _created(response, not reward.created)
    return reward


@router.post("/redeem", response_model=RedemptionOut, status_code=201)
def redeem(session: DbSession, wired: ServicesDep, principal: Writer, data: RedeemIn,
           response: Response) -> RedemptionOut:
    done = service.redeem(session, wired.clock, data, secret_key=wired.settings.secret_key,
                          principal=principal)
    _created(response, done.replayed)
    return done


@router.get("/redemptions/{key}", response_model=RedemptionOut)
def get_redemption(session: DbSession, wired: ServicesDep, principal: Reader,
                   key: Key) -> RedemptionOut:
    return service.show_redemption(session, key, secret_key=wired.settings.secret_key,
                                   principal=principal)


@router.get("/redemptions/{key}/qr.svg", response_class=Response,
            responses={200: {"content": {"image/svg+xml": {}}}})
def get_redemption_qr(session: DbSession, wired: ServicesDep, principal: Reader, key: Key,
                      scale: Annotated[int, Query(ge=1, le=qr.MAX_SCALE)] = qr.DEFAULT_SCALE
                      ) -> Response:
    """The store code of an offline redemption as a QR image (SVG). The image is drawn
    whatever the code's state; the redemption's JSON says whether it is still usable."""
    found = service.show_redemption(session, key, secret_key=wired.settings.secret_key,
                                    principal=principal)
    if found.store_code is None:
        raise NotFound("no_store_code", f"redemption {key!r} is not of an offline reward: "
                       "it has no store code", "redemption_key")
    image = qr.svg(found.store_code.code, scale=scale, title=found.reward)
    return Response(image, media_type="image/svg+xml",
                    headers={"Cache-Control": "private, no-store"})


@router.get("/customers/{customer}/redemptions", response_model=reports.RedemptionPage)
def get_customer_redemptions(session: DbSession, wired: ServicesDep, principal: Reader,
                             customer: Key,
                             before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
                             limit: Annotated[int, Query(ge=1, le=100)] = 20
                             ) -> reports.RedemptionPage:
    """A customer's redemptions newest first, with each store code's state (unused, used,
    void, expired); the code text is on ``GET /redemptions/{key}``."""
    return reports.customer_redemptions(session, customer, wired.clock.now(), before=before,
                                        limit=limit, principal=principal)


@router.post("/refund", response_model=RedemptionOut, status_code=201)
def refund(session: DbSession, wired: ServicesDep, principal: Writer, data: RefundIn,
           response: Response) -> RedemptionOut:
    done = service.refund(session, wired.clock, data, secret_key=wired.settings.secret_key,
                          principal=principal)
    _created(response, done.replayed)
    return done


@router.post("/codes/verify", response_model=VerifyOut)
def verify_code(session: DbSession, wired: ServicesDep, principal: Writer,
                data: VerifyIn) -> VerifyOut:
    return service.verify_code(session, wired.clock, data,
                               secret_key=wired.settings.secret_key, principal=principal)


@router.post("/expire", response_model=ExpiryReport)
def expire(session: DbSession, wired: ServicesDep, principal: Writer) -> ExpiryReport:
    return service.expire(session, wired.clock, principal=principal)
