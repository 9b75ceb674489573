"""Order read side: single orders, pages, and the figures the console overview shows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import distinct, exists, func, select
from sqlalchemy.orm import Session

from shequ.core.errors import NotFound
from shequ.core.permissions import Principal
from shequ.domains.customers.service import customer_ids_by_key, customer_keys_by_id
from shequ.domains.orders.models import Order, OrderLine
from shequ.domains.orders.schemas import OrderLineOut, OrderOut, OrderPage

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
