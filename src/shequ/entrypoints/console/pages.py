"""Read-only console pages: overview, products, audit log."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from shequ.core import auth
from shequ.core.audit import AuditEntry
from shequ.core.permissions import Principal
from shequ.core.web import DbSession, ServicesDep, require
from shequ.domains.catalog import service as catalog
from shequ.entrypoints.console.nav import PREFIX
from shequ.entrypoints.console.overview import build_overview
from shequ.entrypoints.console.rendering import is_htmx, render

router = APIRouter(prefix=PREFIX, include_in_schema=False)
PAGE_SIZE = 20
AUDIT_ROWS = 200
VALUE_WIDTH = 60


@router.get("/")
def overview_page(request: Request, session: DbSession, wired: ServicesDep,
                  principal: Annotated[Principal, require("analytics:read")]) -> HTMLResponse:
    return render(request, "overview.html", {"overview": build_overview(session, wired, principal)})


@router.get("/products")
def products_page(request: Request, session: DbSession,
                  principal: Annotated[Principal, require("catalog:read")],
                  brand: Annotated[str, Query(max_length=64)] = "",
                  page: Annotated[int, Query(ge=1, le=1_000_000)] = 1) -> HTMLResponse:
    listing = catalog.list_products(session, principal, brand=brand or None, limit=PAGE_SIZE,
                                    offset=(page - 1) * PAGE_SIZE)
    brands = catalog.list_brands(session, principal)
    context = {"products": listing.items, "total": listing.total, "page": page,
               "pages": max(1, -(-listing.total // PAGE_SIZE)), "brand": brand,
               "brands": brands, "brand_names": {b.external_id: b.name for b in brands}}
    template = "_products_table.html" if is_htmx(request) else "products.html"
    return render(request, template, context)


@dataclass(frozen=True)
class AuditLine:
    """One audit row as the page shows it: the changed fields, before → after."""

    at: datetime
    actor: str
    actor_name: str | None
    action: str
    entity: str
    entity_id: str
    changes: list[tuple[str, str, str]]


def _shown(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 1] + "…"


def _audit_line(row: AuditEntry, actors: dict[str, str]) -> AuditLine:
    before, after = row.before or {}, row.after or {}
    keys = list(dict.fromkeys([*after, *before]))
    shown = [(key, _shown(before.get(key)), _shown(after.get(key))) for key in keys]
    changes = [(key, old, new) for key, old, new in shown if old or new]
    return AuditLine(row.at, row.actor, actors.get(row.actor), row.action, row.entity,
                     row.entity_id, changes)


@router.get("/audit")
def audit_page(request: Request, session: DbSession,
               _principal: Annotated[Principal, require("audit:read")]) -> HTMLResponse:
    rows = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(AUDIT_ROWS))
    actors = {f"user:{user.id}": user.username for user in auth.list_users(session)}
    return render(request, "audit.html", {"lines": [_audit_line(r, actors) for r in rows],
                                          "limit": AUDIT_ROWS})
