"""Group-buying routes (docs/group-buying.md): the shop app opens, joins and shows groups;
staff create, list and pause offers, read their figures and run the expiry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from shequ.core.errors import ValidationFailed
from shequ.core.permissions import Principal
from shequ.core.web import DbSession, ServicesDep, require
from shequ.domains.campaigns import groups as service
from shequ.domains.campaigns.group_schemas import (
    ExpiryReport,
    GroupOut,
    GroupState,
    JoinIn,
    JoinOut,
    OfferFigures,
    OfferIn,
    OfferOut,
    OpenIn,
)

router = APIRouter(prefix="/api/v1/group-buying", tags=["group buying"])
Reader = Annotated[Principal, require("campaigns:read")]
Writer = Annotated[Principal, require("campaigns:write")]
Code = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
GroupId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _created(response: Response, replayed: bool) -> None:
    response.status_code = 200 if replayed else 201


# --- shop app --------------------------------------------------------------------------------

@router.post("/groups", response_model=JoinOut, status_code=201)
def open_group(session: DbSession, wired: ServicesDep, principal: Writer, data: OpenIn,
               response: Response) -> JoinOut:
    """Open a group on an offer (the customer leads it and pays the undiscounted price)."""
    done = service.open_group(session, wired.clock, data)
    _created(response, done.replayed)
    return done


@router.post("/groups/{group_id}/join", response_model=JoinOut, status_code=201)
def join_group(session: DbSession, wired: ServicesDep, principal: Writer, group_id: GroupId,
               data: JoinIn, response: Response) -> JoinOut:
    """Join a group; ``group_id`` in the path and the body must agree."""
    if data.group_id != group_id:
        raise ValidationFailed("group_mismatch", "the body names another group", "group_id")
    done = service.join_group(session, wired.clock, data)
    _created(response, done.replayed)
    return done


@router.get("/groups/{group_id}", response_model=GroupOut)
def show_group(session: DbSession, wired: ServicesDep, principal: Reader,
               group_id: GroupId) -> GroupOut:
    return service.show_group(session, wired.clock, group_id, principal=principal)


@router.get("/offers/{code}/groups", response_model=list[GroupOut])
def list_groups(session: DbSession, wired: ServicesDep, principal: Reader, code: Code,
                response: Response, state: GroupState | None = "open",
                limit: Annotated[int, Query(ge=1, le=500)] = 50,
                offset: Annotated[int, Query(ge=0, le=10**7)] = 0) -> list[GroupOut]:
    """An offer's groups, newest first (open ones unless ``state`` says otherwise);
    the total is in the ``X-Total-Count`` header."""
    total, page = service.list_groups(session, wired.clock, code, state=state, limit=limit,
                                      offset=offset, principal=principal)
    response.headers["X-Total-Count"] = str(total)
    return page


# --- staff -----------------------------------------------------------------------------------

@router.get("/offers", response_model=list[OfferOut])
def list_offers(session: DbSession, wired: ServicesDep, principal: Reader) -> list[OfferOut]:
    return service.list_offers(session, wired.clock, principal=principal)


@router.post("/offers", response_model=OfferOut, status_code=201)
def create_offer(session: DbSession, wired: ServicesDep, principal: Writer, data: OfferIn,
                 response: Response) -> OfferOut:
    """Create an offer; its stock is taken from the catalog now."""
    offer = service.create_offer(session, wired.clock, data, principal=principal)
    _created(response, not offer.created)
    return offer


@router.get("/offers/{code}", response_model=OfferOut)
def get_offer(session: DbSession, wired: ServicesDep, principal: Reader,
              code: Code) -> OfferOut:
    return service.get_offer(session, wired.clock, code, principal=principal)


@router.post("/offers/{code}/pause", response_model=OfferOut)
def pause_offer(session: DbSession, wired: ServicesDep, principal: Writer,
                code: Code) -> OfferOut:
    return service.set_paused(session, wired.clock, code, True, principal=principal)


@router.post("/offers/{code}/resume", response_model=OfferOut)
def resume_offer(session: DbSession, wired: ServicesDep, principal: Writer,
                 code: Code) -> OfferOut:
    return service.set_paused(session, wired.clock, code, False, principal=principal)


@router.get("/offers/{code}/figures", response_model=OfferFigures)
def offer_figures(session: DbSession, wired: ServicesDep, principal: Reader,
                  code: Code) -> OfferFigures:
    return service.figures(session, wired.clock, code, principal=principal)


@router.post("/expiry", response_model=ExpiryReport)
def run_expiry(wired: ServicesDep, principal: Writer) -> ExpiryReport:
    """Close the groups past their deadline, refund expired ones, settle ended offers
    (what the worker job does; each group in a transaction of its own)."""
    return ExpiryReport.model_validate(service.expire_groups(wired))
