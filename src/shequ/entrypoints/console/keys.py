"""API keys page (admins): list, issue (the key is shown once) and revoke."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from shequ.core import auth
from shequ.core.errors import ValidationFailed, not_found
from shequ.core.permissions import PERMISSIONS, Principal
from shequ.core.web import DbSession, ServicesDep, require
from shequ.domains.catalog import service as catalog
from shequ.entrypoints.console.access import error_message
from shequ.entrypoints.console.nav import PREFIX
from shequ.entrypoints.console.rendering import is_htmx, render

router = APIRouter(prefix=PREFIX, include_in_schema=False)
Admin = Annotated[Principal, require("users:admin")]
KEYS_PATH = f"{PREFIX}/api-keys"


def _page(request: Request, session: Session, principal: Principal, *,
          status_code: int = 200, **extra: Any) -> HTMLResponse:
    brands = catalog.list_brands(session, principal)
    context = {"keys": auth.list_api_keys(session), "scopes": sorted(PERMISSIONS),
               "brands": brands, "brand_names": {b.id: b.name for b in brands},
               "issued": None, "error": None, "form": {"name": "", "scopes": [], "brand_ids": []}}
    return render(request, "api_keys.html", {**context, **extra}, status_code=status_code)


@router.get("/api-keys")
def keys_page(request: Request, session: DbSession, principal: Admin) -> HTMLResponse:
    return _page(request, session, principal)


@router.post("/api-keys")
def create_key(request: Request, session: DbSession, wired: ServicesDep, principal: Admin,
               name: Annotated[str, Form(max_length=256)] = "",
               scopes: Annotated[list[str] | None, Form()] = None,
               brand_ids: Annotated[list[int] | None, Form()] = None) -> HTMLResponse:
    """Issue a key; brands make it a partner key that sees only those brands."""
    form = {"name": name, "scopes": scopes or [], "brand_ids": brand_ids or []}
    try:
        issued = auth.create_api_key(session, wired.clock, name=name, scopes=scopes or [],
                                     brand_ids=brand_ids or None, created_by=principal.id)
    except ValidationFailed as exc:
        # Nothing was written yet, so the form can be answered without a rollback.
        return _page(request, session, principal, status_code=exc.status, form=form,
                     error=error_message(exc.code, exc.detail))
    return _page(request, session, principal, status_code=201, issued=issued)


@router.post("/api-keys/{key_id}/revoke", response_model=None)
def revoke_key(request: Request, session: DbSession, wired: ServicesDep, principal: Admin,
               key_id: int) -> Response:
    """Revoke a key for good; htmx gets the updated row back, a plain form the page."""
    auth.revoke_api_key(session, wired.clock, key_id)
    if not is_htmx(request):
        return RedirectResponse(KEYS_PATH, status_code=303)
    key = next((k for k in auth.list_api_keys(session) if k["id"] == key_id), None)
    if key is None:
        raise not_found("api_key", key_id)
    names = {b.id: b.name for b in catalog.list_brands(session, principal)}
    return render(request, "_key_row.html", {"key": key, "brand_names": names})
