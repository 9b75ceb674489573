"""Order use cases: checkout, the state machine, reads and figures.

Every stock movement here is exactly-once: checkout is idempotent on the shop's order
number, and a transition is a conditional UPDATE on the current status, so two racing
cancels restock once.

Other domains hear of transitions through :func:`on_transition` (points earned when an
order is paid, taken back when it is refunded; referral commissions clawed back): their
handlers run in the transaction that moves the order, once per transition that happens,
so a handler's effect commits or rolls back with the move itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shequ.core import audit
from shequ.core.clock import Clock
from shequ.core.errors import Conflict, ShequError, ValidationFailed
from shequ.core.permissions import CLI_PRINCIPAL, Principal
from shequ.domains.catalog.service import release_stock, reserve_stock
from shequ.domains.customers.service import customer_ids_by_key
from shequ.domains.orders.loading import bulk_load_orders, import_orders
from shequ.domains.orders.models import Order, OrderLine
from shequ.domains.orders.queries import (
    active_customers,
    get_order,
    gmv_and_orders,
    latest_payment,
    list_orders,
    purchased_lines,
    purchases,
    visible_to,
)
from shequ.domains.orders.schemas import LineIn, OrderIn, OrderOut, Status

__all__ = [
    "IMPORTERS", "NEXT_STATUSES", "OrderTransition", "active_customers", "bulk_load_orders",
    "create_order", "get_order", "gmv_and_orders", "import_orders", "latest_payment",
    "list_orders", "on_transition", "purchased_lines", "purchases", "transition_order",
]

NEXT_STATUSES: dict[str, frozenset[str]] = {
    "created": frozenset({"paid", "cancelled"}),
    "paid": frozenset({"shipped", "refunded"}),
    "shipped": frozenset({"completed", "refunded"}),
    "completed": frozenset({"refunded"}),
}
RESTOCKING = frozenset({"cancelled", "refunded"})


@dataclass(frozen=True)
class OrderTransition:
    """An order that has just moved from ``from_status`` to ``to_status`` at ``at``."""

    order_id: int
    external_id: str
    customer_id: int
    from_status: str
    to_status: str
    at: datetime
    total_fen: int


TransitionHandler = Callable[[Session, Clock, OrderTransition], None]
_HANDLERS: dict[str, TransitionHandler] = {}


def on_transition(name: str, handler: TransitionHandler) -> None:
    """Call ``handler`` for every order transition from now on (one handler per ``name``,
    so importing a module twice does not register it twice)."""
    _HANDLERS[name] = handler


def _announce(session: Session, clock: Clock, moved: OrderTransition) -> None:
    for name in sorted(_HANDLERS):
        _HANDLERS[name](session, clock, moved)


def _content(data: OrderIn) -> OrderIn:
    """``data`` with its lines in SKU order, so equal orders compare equal."""
    return data.model_copy(update={"lines": sorted(data.lines, key=lambda line: line.sku)})


def _as_input(order: OrderOut) -> OrderIn:
    return _content(OrderIn(
        external_id=order.external_id, customer_external_id=order.customer_external_id,
        lines=[LineIn(sku=line.sku, quantity=line.quantity) for line in order.lines],
        channel=order.channel, discount_fen=order.discount_fen or 0,
        coupon_code=order.coupon_code, device_external_id=order.device_external_id,
        shipping_address=order.shipping_address, payment_account=order.payment_account))


def _existing(session: Session, data: OrderIn) -> OrderOut | None:
    """The order already filed under ``data.external_id``, if its content is the same."""
    found = session.scalar(select(Order.id).where(Order.external_id == data.external_id))
    if found is None:
        return None
    order = get_order(session, CLI_PRINCIPAL, data.external_id)
    if _as_input(order) != _content(data):
        raise Conflict("order_exists", f"order {data.external_id!r} exists with other "
                       "content", "external_id")
    return order


def _insert(session: Session, clock: Clock, data: OrderIn, customer_id: int) -> None:
    taken = reserve_stock(session, [(line.sku, line.quantity) for line in data.lines])
    subtotal = sum(line.unit_price_fen * line.quantity for line in taken)
    if data.discount_fen > subtotal:
        raise ValidationFailed("discount_too_large", f"the discount exceeds the subtotal "
                               f"of {subtotal} fen", "discount_fen")
    order = Order(external_id=data.external_id, customer_id=customer_id, status="created",
                  channel=data.channel, created_at=clock.now(),
                  total_fen=subtotal - data.discount_fen, discount_fen=data.discount_fen,
                  coupon_code=data.coupon_code, device_external_id=data.device_external_id,
                  shipping_address=data.shipping_address, payment_account=data.payment_account)
    session.add(order)
    session.flush()
    session.add_all(OrderLine(order_id=order.id, product_id=line.product_id,
                              brand_id=line.brand_id, sku=line.sku, quantity=line.quantity,
                              unit_price_fen=line.unit_price_fen) for line in taken)


def create_order(session: Session, clock: Clock, data: OrderIn) -> tuple[OrderOut, bool]:
    """Check out: take stock, price the lines from the catalog, file the order.

    Returns ``(order, created)``. Posting the same order number again with the same
    content returns the first order and takes no stock (``created`` is False); other
    content is ``order_exists``. A failure leaves no order and no stock taken.
    """
    existing = _existing(session, data)
    if existing is not None:
        return existing, False
    customer_id = customer_ids_by_key(session, [data.customer_external_id]).get(
        data.customer_external_id)
    if customer_id is None:
        raise ValidationFailed("unknown_customer", f"no customer "
                               f"{data.customer_external_id!r}", "customer_external_id")
    try:
        with session.begin_nested():
            _insert(session, clock, data, customer_id)
    except (IntegrityError, ShequError):
        # A twin request with the same order number may have won meanwhile (its stock take
        # can be why ours failed): then answer as a repeat.
        existing = _existing(session, data)
        if existing is None:
            raise
        return existing, False
    return get_order(session, CLI_PRINCIPAL, data.external_id), True


def _locate(session: Session, principal: Principal, external_id: str) -> tuple[int, str]:
    get_order(session, principal, external_id)  # absent, or another brand's: 404
    found = session.execute(visible_to(select(Order.id, Order.status), principal.brand_ids)
                            .where(Order.external_id == external_id)).one()
    return found.id, found.status


def _move(session: Session, clock: Clock, order_id: int, current: str, to: str) -> bool:
    """Move from ``current`` to ``to`` unless someone else moved the order first."""
    now = clock.now()
    moved = session.execute(
        update(Order).where(Order.id == order_id, Order.status == current)
        .values({"status": to, f"{to}_at": now})
        .execution_options(synchronize_session=False))
    if moved.rowcount == 0:  # type: ignore[attr-defined]
        return False
    if to in RESTOCKING:
        lines = session.execute(select(OrderLine.sku, OrderLine.quantity)
                                .where(OrderLine.order_id == order_id)).tuples()
        release_stock(session, list(lines))
    audit.record(session, action="update", entity="orders", entity_id=str(order_id),
                 before={"status": current}, after={"status": to, f"{to}_at": now.isoformat()})
    row = session.execute(select(Order.external_id, Order.customer_id, Order.total_fen)
                          .where(Order.id == order_id)).one()
    _announce(session, clock, OrderTransition(
        order_id=order_id, external_id=row.external_id, customer_id=row.customer_id,
        from_status=current, to_status=to, at=now, total_fen=row.total_fen))
    return True


def transition_order(session: Session, clock: Clock, principal: Principal, external_id: str,
                     to: Status) -> OrderOut:
    """Move an order along created → paid → shipped → completed (or cancelled/refunded).

    Each step stamps its time; cancel and refund give the stock back exactly once.
    Asking for the status the order is already in changes nothing.
    """
    order_id, status = _locate(session, principal, external_id)
    while status != to:
        if to not in NEXT_STATUSES.get(status, frozenset()):
            raise Conflict("illegal_transition", f"cannot go from {status} to {to}", "status")
        if _move(session, clock, order_id, status, to):
            break
        status = session.scalars(select(Order.status).where(Order.id == order_id)).one()
    return get_order(session, principal, external_id)


IMPORTERS = {"orders": import_orders}
