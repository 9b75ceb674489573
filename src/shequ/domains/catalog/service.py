"""Catalog use cases: (session, ..., schema) -> schema; errors carry stable codes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from shequ.core.clock import Clock
from shequ.core.db import lookup
from shequ.core.errors import Conflict, NotFound, ValidationFailed
from shequ.core.importing import ImportReport, RowError, finish_import, read_rows, validate_rows
from shequ.core.permissions import Principal
from shequ.domains.catalog.models import Brand, Category, Product
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


@dataclass(frozen=True)
class StockLine:
    """A reserved line: what the orders domain needs to price and attribute it."""

    sku: str
    product_id: int
    brand_id: int
    unit_price_fen: int
    quantity: int


def _brand_out(row: Brand) -> BrandOut:
    return BrandOut(id=row.id, external_id=row.external_id, name=row.name,
                    description=row.description)


def brand_ids_by_key(session: Session, keys: Iterable[str]) -> dict[str, int]:
    """Brand ids for external ids (unknown keys are simply absent)."""
    return lookup(session, Brand.external_id, Brand.id, keys)


def _category_ids(session: Session, keys: Iterable[str]) -> dict[str, int]:
    return lookup(session, Category.external_id, Category.id, keys)


def create_brand(session: Session, data: BrandIn) -> BrandOut:
    """Add a brand; its external id must be new."""
    if brand_ids_by_key(session, [data.external_id]):
        raise Conflict("brand_exists", f"brand {data.external_id!r} exists", "external_id")
    row = Brand(**data.model_dump())
    session.add(row)
    session.flush()
    return _brand_out(row)


def list_brands(session: Session, principal: Principal) -> list[BrandOut]:
    """Brands the caller may see."""
    query = select(Brand).order_by(Brand.id)
    if principal.brand_ids is not None:
        query = query.where(Brand.id.in_(principal.brand_ids))
    return [_brand_out(b) for b in session.scalars(query)]


def create_category(session: Session, data: CategoryIn) -> CategoryOut:
    """Add a category, optionally under a parent."""
    if _category_ids(session, [data.external_id]):
        raise Conflict("category_exists", f"category {data.external_id!r} exists", "external_id")
    parent_id = None
    if data.parent_external_id is not None:
        parent_id = _category_ids(session, [data.parent_external_id]).get(data.parent_external_id)
        if parent_id is None:
            raise ValidationFailed("unknown_category", "no such parent category",
                                   "parent_external_id")
    row = Category(external_id=data.external_id, name=data.name, parent_id=parent_id)
    session.add(row)
    session.flush()
    return CategoryOut(id=row.id, **data.model_dump())


def list_categories(session: Session) -> list[CategoryOut]:
    """Every category with its parent's external id."""
    keys = dict(session.execute(select(Category.id, Category.external_id)).tuples().all())
    rows = session.scalars(select(Category).order_by(Category.id))
    return [CategoryOut(id=c.id, external_id=c.external_id, name=c.name,
                        parent_external_id=keys.get(c.parent_id) if c.parent_id else None)
            for c in rows]


def _product_out(row: Product, brand_key: str, category_key: str | None) -> ProductOut:
    return ProductOut(id=row.id, sku=row.sku, name=row.name, brand_id=row.brand_id,
                      brand_external_id=brand_key, category_external_id=category_key,
                      price_fen=row.price_fen, stock=row.stock, is_active=row.is_active)


def _product_query() -> Any:
    return (select(Product, Brand.external_id, Category.external_id)
            .join(Brand, Brand.id == Product.brand_id)
            .outerjoin(Category, Category.id == Product.category_id))


def _resolve_refs(session: Session, data: ProductIn) -> tuple[int, int | None]:
    brand_id = brand_ids_by_key(session, [data.brand_external_id]).get(data.brand_external_id)
    if brand_id is None:
        raise ValidationFailed("unknown_brand", f"no brand {data.brand_external_id!r}",
                               "brand_external_id")
    category_id = None
    if data.category_external_id is not None:
        category_id = _category_ids(session, [data.category_external_id]).get(
            data.category_external_id)
        if category_id is None:
            raise ValidationFailed("unknown_category", f"no category "
                                   f"{data.category_external_id!r}", "category_external_id")
    return brand_id, category_id


def create_product(session: Session, clock: Clock, principal: Principal,
                   data: ProductIn) -> ProductOut:
    """Add a product; a partner may only add products of its own brands."""
    brand_id, category_id = _resolve_refs(session, data)
    if not principal.sees_brand(brand_id):
        raise NotFound("brand_not_found", f"no brand {data.brand_external_id!r}",
                       "brand_external_id")
    if session.scalar(select(Product.id).where(Product.sku == data.sku)) is not None:
        raise Conflict("sku_exists", f"product {data.sku!r} exists", "sku")
    row = Product(sku=data.sku, name=data.name, brand_id=brand_id, category_id=category_id,
                  price_fen=data.price_fen, stock=data.stock, is_active=data.is_active,
                  updated_at=clock.now())
    session.add(row)
    session.flush()
    return get_product(session, principal, data.sku)


def get_product(session: Session, principal: Principal, sku: str) -> ProductOut:
    """One product by SKU; another brand's product is reported as absent."""
    found = session.execute(_product_query().where(Product.sku == sku)).first()
    if found is None or not principal.sees_brand(found[0].brand_id):
        raise NotFound("product_not_found", f"no product {sku!r}", "sku")
    return _product_out(*found)


def list_products(session: Session, principal: Principal, *, brand: str | None = None,
                  limit: int = 50, offset: int = 0) -> Page:
    """Products visible to the caller, by SKU."""
    query = _product_query()
    if principal.brand_ids is not None:
        query = query.where(Product.brand_id.in_(principal.brand_ids))
    if brand is not None:
        query = query.where(Brand.external_id == brand)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(query.order_by(Product.sku).limit(limit).offset(offset))
    return Page(total=total, items=[_product_out(*r) for r in rows])


def update_product(session: Session, clock: Clock, principal: Principal, sku: str,
                   patch: ProductPatch) -> ProductOut:
    """Change name, price, stock or availability of a product."""
    get_product(session, principal, sku)
    row = session.scalars(select(Product).where(Product.sku == sku)).one()
    for name, value in patch.model_dump(exclude_none=True).items():
        setattr(row, name, value)
    row.updated_at = clock.now()
    session.flush()
    return get_product(session, principal, sku)


def reserve_stock(session: Session, wanted: list[tuple[str, int]]) -> list[StockLine]:
    """Take stock for order lines atomically: all lines or none, never below zero.

    Rows are updated in SKU order so two orders for the same products cannot deadlock;
    the conditional UPDATE is the lock, so concurrent buyers of the last unit get one
    success and one ``insufficient_stock``.
    """
    lines: list[StockLine] = []
    for sku, quantity in sorted(wanted):
        result = session.execute(
            update(Product).where(Product.sku == sku, Product.is_active.is_(True),
                                  Product.stock >= quantity)
            .values(stock=Product.stock - quantity)
            .returning(Product.id, Product.brand_id, Product.price_fen))
        hit = result.first()
        if hit is None:
            exists = session.scalar(select(Product.id).where(Product.sku == sku))
            if exists is None:
                raise ValidationFailed("unknown_sku", f"no product {sku!r}", "lines.sku")
            raise Conflict("insufficient_stock", f"not enough stock of {sku!r}", "lines.quantity")
        lines.append(StockLine(sku, hit.id, hit.brand_id, hit.price_fen, quantity))
    return lines


def release_stock(session: Session, returned: list[tuple[str, int]]) -> None:
    """Give stock back (cancelled or refunded order lines)."""
    for sku, quantity in sorted(returned):
        session.execute(update(Product).where(Product.sku == sku)
                        .values(stock=Product.stock + quantity))


def product_brands(session: Session, skus: Iterable[str]) -> dict[str, tuple[int, int]]:
    """``sku -> (product_id, brand_id)`` for the known SKUs."""
    rows = session.execute(select(Product.sku, Product.id, Product.brand_id)
                           .where(Product.sku.in_(sorted(set(skus)))))
    return {sku: (pid, bid) for sku, pid, bid in rows}


def _product_values(session: Session, good: list[tuple[int, ProductIn]],
                    report: ImportReport) -> list[dict[str, Any]]:
    brands = brand_ids_by_key(session, (r.brand_external_id for _, r in good))
    cats = _category_ids(session, (r.category_external_id for _, r in good
                                   if r.category_external_id))
    values = []
    for line, row in good:
        if row.brand_external_id not in brands:
            report.rejected.append(RowError(line, "brand_external_id",
                                            f"unknown brand {row.brand_external_id!r}"))
            continue
        if row.category_external_id and row.category_external_id not in cats:
            report.rejected.append(RowError(line, "category_external_id",
                                            f"unknown category {row.category_external_id!r}"))
            continue
        values.append({"sku": row.sku, "name": row.name, "brand_id": brands[row.brand_external_id],
                       "category_id": cats.get(row.category_external_id or ""),
                       "price_fen": row.price_fen, "stock": row.stock,
                       "is_active": row.is_active})
    return values


def import_brands(session: Session, name: str, data: bytes, *,
                  skip_invalid: bool = False) -> ImportReport:
    """Bulk import of brands (CSV/JSONL), upserted by external id."""
    report = ImportReport(kind="brands")
    good = validate_rows(read_rows(name, data), BrandIn, report)
    values = [row.model_dump() for _line, row in good]
    return finish_import(session, report, Brand, "external_id", values, skip_invalid, name)


def import_products(session: Session, name: str, data: bytes, *,
                    skip_invalid: bool = False) -> ImportReport:
    """Bulk import of products (CSV/JSONL), upserted by SKU; brands must exist."""
    report = ImportReport(kind="products")
    good = validate_rows(read_rows(name, data), ProductIn, report)
    values = _product_values(session, good, report)
    return finish_import(session, report, Product, "sku", values, skip_invalid, name)



def bulk_load(session: Session, brands: list[dict[str, Any]], categories: list[dict[str, Any]],
              products: list[dict[str, Any]]) -> None:
    """Fast load of generated or migrated rows keyed by external ids (the demo uses it)."""
    session.execute(insert(Brand), [{"external_id": b["external_id"], "name": b["name"],
                                     "description": b.get("description")} for b in brands])
    for cat in sorted(categories, key=lambda c: c.get("parent_external_id") is not None):
        parent = cat.get("parent_external_id")
        parent_id = _category_ids(session, [parent]).get(parent) if parent else None
        session.execute(insert(Category), [{"external_id": cat["external_id"],
                                            "name": cat["name"], "parent_id": parent_id}])
    brand_ids = brand_ids_by_key(session, (b["external_id"] for b in brands))
    cat_ids = _category_ids(session, (c["external_id"] for c in categories))
    session.execute(insert(Product), [
        {"sku": p["sku"], "name": p["name"], "brand_id": brand_ids[p["brand_external_id"]],
         "category_id": cat_ids.get(p.get("category_external_id") or ""),
         "price_fen": p["price_fen"], "stock": p["stock"], "is_active": True}
        for p in products])
    session.flush()


IMPORTERS = {"brands": import_brands, "products": import_products}


def product_dimension(session: Session) -> list[tuple[str, str, str | None]]:
    """``(sku, brand external_id, category external_id)`` of every product, for analytics."""
    category = select(Category.id, Category.external_id).subquery()
    rows = session.execute(
        select(Product.sku, Brand.external_id, category.c.external_id)
        .join(Brand, Brand.id == Product.brand_id)
        .outerjoin(category, category.c.id == Product.category_id)
        .order_by(Product.sku)
    )
    return [(sku, brand, cat) for sku, brand, cat in rows]
