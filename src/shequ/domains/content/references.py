"""Ids of the rows content points at, looked up by their natural keys in bulk.

Customers and orders belong to sibling domains. Only their ids and natural keys are read,
through lightweight table clauses rather than their ORM classes, so this domain depends on
their tables alone. Products and brands are resolved through the catalog's service.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Integer, String, column, select, table
from sqlalchemy.orm import Session

from shequ.core.db import lookup
from shequ.domains.catalog import service as catalog
from shequ.domains.content.models import Creator, Hub, Post, Review

CUSTOMERS = table("customers", column("id", Integer), column("external_id", String))
ORDERS = table("orders", column("id", Integer), column("external_id", String),
               column("customer_id", Integer))
PRODUCTS = table("products", column("id", Integer), column("sku", String))
BRANDS = table("brands", column("id", Integer), column("external_id", String))
# Far below every backend's bound-parameter limit (SQLite: 32,766).
CHUNK = 5_000


def _chunks(keys: Iterable[Any]) -> Iterable[list[Any]]:
    wanted = sorted({k for k in keys if k is not None})
    for start in range(0, len(wanted), CHUNK):
        yield wanted[start:start + CHUNK]


def customer_ids(session: Session, keys: Iterable[str | None]) -> dict[str, int]:
    """``customer external id -> id`` for the known customers."""
    return lookup(session, CUSTOMERS.c.external_id, CUSTOMERS.c.id, keys)


def order_owners(session: Session, keys: Iterable[str | None]) -> dict[str, tuple[int, int]]:
    """``order external id -> (order id, customer id)`` for the known orders."""
    found: dict[str, tuple[int, int]] = {}
    for part in _chunks(keys):
        rows = session.execute(select(ORDERS.c.external_id, ORDERS.c.id, ORDERS.c.customer_id)
                               .where(ORDERS.c.external_id.in_(part)))
        found.update({key: (order_id, owner) for key, order_id, owner in rows})
    return found


def products(session: Session, skus: Iterable[str | None]) -> dict[str, tuple[int, int]]:
    """``sku -> (product id, brand id)`` for the known SKUs."""
    found: dict[str, tuple[int, int]] = {}
    for part in _chunks(skus):
        found.update(catalog.product_brands(session, part))
    return found


def brand_ids(session: Session, keys: Iterable[str | None]) -> dict[str, int]:
    """``brand external id -> id`` for the known brands."""
    found: dict[str, int] = {}
    for part in _chunks(keys):
        found.update(catalog.brand_ids_by_key(session, part))
    return found


def hub_ids(session: Session, keys: Iterable[str | None]) -> dict[str, int]:
    """``hub external id -> id`` for the known hubs."""
    return lookup(session, Hub.external_id, Hub.id, keys)


def post_ids(session: Session, keys: Iterable[str | None]) -> dict[str, int]:
    """``post external id -> id`` for the known posts."""
    return lookup(session, Post.external_id, Post.id, keys)


def creators_of(session: Session, customer_ids_: Iterable[int]) -> dict[int, str]:
    """``customer id -> external id of that customer's creator profile``."""
    return lookup(session, Creator.customer_id, Creator.external_id, customer_ids_)


def reviews_of_orders(session: Session,
                      order_ids: Iterable[int | None]) -> dict[tuple[int, int], str]:
    """``(order id, product id) -> review external id`` for reviews of those orders."""
    found: dict[tuple[int, int], str] = {}
    for part in _chunks(order_ids):
        rows = session.execute(select(Review.order_id, Review.product_id, Review.external_id)
                               .where(Review.order_id.in_(part)))
        found.update({(order_id, product_id): key for order_id, product_id, key in rows})
    return found
