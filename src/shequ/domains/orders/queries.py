"""Order read side: single orders, pages, and the figures the console overview shows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
from sqlalchemy import distinct, exists, func, select
from sqlalchemy.orm import Session

from shequ.core.errors import NotFound
from shequ.core.permissions import Principal
from shequ.domains.customers.service import customer_ids_by_key, customer_keys_by_id
from shequ.domains.orders.models import Order, OrderLine
from shequ.domains.orders.schemas import OrderLineOut, OrderOut, OrderPage, Purchases

# Orders whose money was taken and not given back: what GMV counts.
PAID_STATUSES = ("paid", "shipped", "completed")


def visible_to(query: Any, brand_ids: Iterable[int] | None) -> Any:
    """Restrict an order query to orders holding a line of ``brand_ids`` (None: all)."""
    if brand_ids is None:
        return query
    return query.where(exists().where(OrderLine.order_id == Order.id,
                                      OrderLine.brand_id.in_(sorted(brand_ids))))


def _lines_by_order(session: Session, order_ids: list[int],
                    brand_ids: frozenset[int] | None) -> dict[int, list[OrderLineOut]]:
    query = select(OrderLine).where(OrderLine.order_id.in_(order_ids))
    if brand_ids is not None:
        query = query.where(OrderLine.brand_id.in_(sorted(brand_ids)))
    found: dict[int, list[OrderLineOut]] = defaultdict(list)
    for line in session.scalars(query.order_by(OrderLine.order_id, OrderLine.sku)):
        found[line.order_id].append(OrderLineOut(
            sku=line.sku, product_id=line.product_id, brand_id=line.brand_id,
            quantity=line.quantity, unit_price_fen=line.unit_price_fen,
            amount_fen=line.quantity * line.unit_price_fen))
    return found


def _view(row: Order, customer_key: str, lines: list[OrderLineOut], *,
          full: bool) -> OrderOut:
    return OrderOut(
        id=row.id, external_id=row.external_id, customer_external_id=customer_key,
        status=row.status, channel=row.channel, created_at=row.created_at, paid_at=row.paid_at,
        shipped_at=row.shipped_at, completed_at=row.completed_at,
        cancelled_at=row.cancelled_at, refunded_at=row.refunded_at,
        total_fen=row.total_fen if full else None,
        discount_fen=row.discount_fen if full else None,
        coupon_code=row.coupon_code if full else None,
        device_external_id=row.device_external_id if full else None,
        shipping_address=row.shipping_address if full else None,
        payment_account=row.payment_account if full else None,
        brand_ids=sorted({line.brand_id for line in lines}), lines=lines)


def order_views(session: Session, principal: Principal, rows: list[Order]) -> list[OrderOut]:
    """Orders as the caller may see them: partners get only their brands' lines."""
    ids = [row.id for row in rows]
    lines = _lines_by_order(session, ids, principal.brand_ids) if ids else {}
    keys = customer_keys_by_id(session, (row.customer_id for row in rows))
    full = principal.brand_ids is None
    return [_view(row, keys[row.customer_id], lines.get(row.id, []), full=full)
            for row in rows]


def get_order(session: Session, principal: Principal, external_id: str) -> OrderOut:
    """One order by the shop's order number; another brand's order is reported as absent."""
    query = visible_to(select(Order).where(Order.external_id == external_id),
                       principal.brand_ids)
    row = session.scalar(query.execution_options(populate_existing=True))
    if row is None:
        raise NotFound("order_not_found", f"no order {external_id!r}", "external_id")
    return order_views(session, principal, [row])[0]


def list_orders(session: Session, principal: Principal, *, status: str | None = None,
                customer: str | None = None, limit: int = 50, offset: int = 0) -> OrderPage:
    """Orders visible to the caller, newest first, optionally by status and customer."""
    query = visible_to(select(Order), principal.brand_ids)
    if status is not None:
        query = query.where(Order.status == status)
    if customer is not None:
        query = query.where(Order.customer_id == customer_ids_by_key(session, [customer])
                            .get(customer, -1))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = list(session.scalars(query.order_by(Order.created_at.desc(), Order.id.desc())
                                .limit(limit).offset(offset)
                                .execution_options(populate_existing=True)))
    return OrderPage(total=total, items=order_views(session, principal, rows))


def gmv_and_orders(session: Session, since: datetime, until: datetime,
                   brand_ids: Iterable[int] | None = None) -> tuple[int, int]:
    """``(gmv_fen, orders)`` of orders paid in ``[since, until)`` and not cancelled/refunded.

    For all brands GMV is the sum of order totals (after discount). For ``brand_ids`` it
    is the sum of those brands' line amounts, since an order-level discount belongs to no
    one brand; the count is then the orders holding at least one of their lines.
    """
    paid = (Order.status.in_(PAID_STATUSES), Order.paid_at >= since, Order.paid_at < until)
    if brand_ids is None:
        gmv, count = session.execute(
            select(func.coalesce(func.sum(Order.total_fen), 0), func.count(Order.id))
            .where(*paid)).one()
        return int(gmv), int(count)
    gmv, count = session.execute(
        select(func.coalesce(func.sum(OrderLine.quantity * OrderLine.unit_price_fen), 0),
               func.count(distinct(OrderLine.order_id)))
        .join(Order, Order.id == OrderLine.order_id)
        .where(*paid, OrderLine.brand_id.in_(sorted(brand_ids)))).one()
    return int(gmv), int(count)


def active_customers(session: Session, since: datetime, until: datetime) -> int:
    """How many distinct customers placed an order in ``[since, until)``."""
    count = session.scalar(select(func.count(distinct(Order.customer_id)))
                           .where(Order.created_at >= since, Order.created_at < until))
    return int(count or 0)


def _naive_utc(value: datetime) -> datetime:
    """``value`` as a naive UTC datetime, how numpy's ``datetime64`` takes instants."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def purchases(session: Session, *, until: datetime, since: datetime | None = None) -> Purchases:
    """Orders paid before ``until`` (and at or after ``since``) and still paid: not
    cancelled or refunded. One query, returned as columns sorted by customer and time."""
    query = select(Order.customer_id, Order.paid_at, Order.total_fen, Order.discount_fen,
                   Order.coupon_code).where(Order.status.in_(PAID_STATUSES),
                                            Order.paid_at < until)
    if since is not None:
        query = query.where(Order.paid_at >= since)
    rows = session.execute(query.order_by(Order.customer_id, Order.paid_at, Order.id)).all()
    return Purchases(
        customer_ids=np.fromiter((r[0] for r in rows), np.int64, len(rows)),
        paid_at=np.array([_naive_utc(r[1]) for r in rows], dtype="datetime64[us]"),
        total_fen=np.fromiter((r[2] for r in rows), np.int64, len(rows)),
        discount_fen=np.fromiter((r[3] or 0 for r in rows), np.int64, len(rows)),
        with_coupon=np.fromiter((r[4] is not None for r in rows), np.bool_, len(rows)),
    )


def purchased_lines(session: Session, *, since: datetime, until: datetime) -> pa.Table:
    """Lines of orders paid in ``[since, until)`` and still paid: ``customer_id`` (entity
    id), ``sku``, ``ts`` (paid at, UTC), ``quantity``, ``unit_price_fen``, ``brand_id``."""
    rows = session.execute(
        select(Order.customer_id, OrderLine.sku, Order.paid_at, OrderLine.quantity,
               OrderLine.unit_price_fen, OrderLine.brand_id)
        .join(Order, Order.id == OrderLine.order_id)
        .where(Order.status.in_(PAID_STATUSES), Order.paid_at >= since, Order.paid_at < until)
        .order_by(Order.customer_id, Order.paid_at, OrderLine.id)).all()
    columns: list[tuple[Any, ...]] = list(zip(*rows, strict=True)) if rows else [()] * 6
    return pa.table({
        "customer_id": pa.array(columns[0], pa.int64()),
        "sku": pa.array(columns[1], pa.string()),
        "ts": pa.array([_naive_utc(v) for v in columns[2]], pa.timestamp("us", tz="UTC")),
        "quantity": pa.array(columns[3], pa.int64()),
        "unit_price_fen": pa.array(columns[4], pa.int64()),
        "brand_id": pa.array(columns[5], pa.int64()),
    })


def latest_payment(session: Session) -> datetime | None:
    """When the most recent order still counted as paid was paid (None: no such order)."""
    found: datetime | None = session.scalar(
        select(func.max(Order.paid_at)).where(Order.status.in_(PAID_STATUSES)))
    return found if found is None or found.tzinfo else found.replace(tzinfo=UTC)
