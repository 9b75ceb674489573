"""Catalog HTTP routes: parse, call the service, return its schema."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from shequ.core.permissions import Principal
from shequ.core.web import DbSession, ServicesDep, require
from shequ.domains.catalog import service
from shequ.domains.catalog.schemas import (
    BrandIn,
    BrandOut,
    CategoryIn,
    CategoryOut,
    Page,
    ProductIn,
    ProductOut,
    ProductPatch,
)

router = APIRouter(prefix="/api/v1", tags=["catalog"])
Reader = Annotated[Principal, require("catalog:read")]
Writer = Annotated[Principal, require("catalog:write")]


@router.get("/brands", response_model=list[BrandOut])
def list_brands(session: DbSession, principal: Reader) -> list[BrandOut]:
    return service.list_brands(session, principal)


@router.post("/brands", response_model=BrandOut, status_code=201)
def create_brand(session: DbSession, _principal: Writer, data: BrandIn) -> BrandOut:
    return service.create_brand(session, data)


@router.get("/categories", response_model=list[CategoryOut])
def list_categories(session: DbSession, _principal: Reader) -> list[CategoryOut]:
    return service.list_categories(session)


@router.post("/categories", response_model=CategoryOut, status_code=201)
def create_category(session: DbSession, _principal: Writer, data: CategoryIn) -> CategoryOut:
    return service.create_category(session, data)


@router.get("/products", response_model=Page)
def list_products(
    session: DbSession, principal: Reader, brand: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Annotated[int, Query(ge=0)] = 0,
) -> Page:
    return service.list_products(session, principal, brand=brand, limit=limit, offset=offset)


@router.post("/products", response_model=ProductOut, status_code=201)
def create_product(session: DbSession, wired: ServicesDep, principal: Writer,
                   data: ProductIn) -> ProductOut:
    return service.create_product(session, wired.clock, principal, data)


@router.get("/products/{sku}", response_model=ProductOut)
def get_product(session: DbSession, principal: Reader, sku: str) -> ProductOut:
    return service.get_product(session, principal, sku)


@router.patch("/products/{sku}", response_model=ProductOut)
def update_product(session: DbSession, wired: ServicesDep, principal: Writer, sku: str,
                   patch: ProductPatch) -> ProductOut:
    return service.update_product(session, wired.clock, principal, sku, patch)
