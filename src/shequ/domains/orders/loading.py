"""Getting historical orders in: CSV/JSONL imports (one row per order line) and the demo's
bulk loader.

Neither touches stock. The catalog's stock is what the ERP counts on the shelf today, and
past sales already left that shelf; taking them again would count every sale twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from shequ.core import audit
from shequ.core.errors import ValidationFailed
from shequ.core.importing import ImportReport, RowError, finish_import, read_rows, validate_rows
from shequ.domains.catalog.service import product_brands
from shequ.domains.customers.service import customer_ids_by_key
from shequ.domains.orders.models import Order, OrderLine
from shequ.domains.orders.schemas import OrderLineRow
from shequ.domains.orders.timeline import timeline_error

CHUNK = 500
BULK_CHUNK = 5000
STAMPS = ("created_at", "paid_at", "shipped_at", "completed_at", "cancelled_at", "refunded_at")
# Columns that describe the order, not the line: every line of an order must agree on them.
ORDER_COLUMNS = ("customer_external_id", "status", "channel", *STAMPS, "coupon_code",
                 "device_external_id", "shipping_address", "payment_account")
ORDER_KEYS = ("external_id", "customer_id", "status", "channel", *STAMPS, "total_fen",
              "discount_fen", "coupon_code", "device_external_id", "shipping_address",
              "payment_account")
LineKey = tuple[str, int, int, int, int]  # sku, product_id, brand_id, quantity, unit price


@dataclass
class _Draft:
    """The lines of one order gathered from the file."""

    first_line: int
    head: OrderLineRow
    lines: list[tuple[int, OrderLineRow]] = field(default_factory=list)


@dataclass
class _Refs:
    customers: dict[str, int]
    products: dict[str, tuple[int, int]]


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def _tap_keys(rows: Iterator[tuple[int, dict[str, Any] | str]],
              keys: dict[int, Any]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Remember each line's order number, so a bad line can sink its whole order."""
    for line, record in rows:
        if isinstance(record, dict):
            keys[line] = record.get("order_external_id")
        yield line, record


def _row_error(row: OrderLineRow, refs: _Refs) -> tuple[str, str] | None:
    if row.price_fen is None:
        return "unit_price_fen", "give unit_price_fen (fen) or unit_price (yuan)"
    if row.unit_price_fen is not None and row.unit_price is not None:
        return "unit_price", "give unit_price_fen or unit_price, not both"
    if row.customer_external_id not in refs.customers:
        return "customer_external_id", f"unknown customer {row.customer_external_id!r}"
    if row.sku not in refs.products:
        return "sku", f"unknown SKU {row.sku!r}"
    return timeline_error(row)


def _disagreement(draft: _Draft, row: OrderLineRow) -> tuple[str, str] | None:
    for column in ORDER_COLUMNS:
        if getattr(row, column) != getattr(draft.head, column):
            return column, f"differs from line {draft.first_line} of the same order"
    if row.order_discount_fen != draft.head.order_discount_fen:
        return "discount_fen", f"differs from line {draft.first_line} of the same order"
    if any(other.sku == row.sku for _, other in draft.lines):
        return "sku", f"SKU {row.sku!r} is already on line {draft.first_line} of this order"
    return None


def _drafts(good: list[tuple[int, OrderLineRow]], refs: _Refs,
            report: ImportReport) -> dict[str, _Draft]:
    drafts: dict[str, _Draft] = {}
    for line, row in good:
        draft = drafts.setdefault(row.order_external_id, _Draft(line, row))
        problem = _row_error(row, refs) or _disagreement(draft, row)
        if problem is not None:
            report.rejected.append(RowError(line, *problem))
            continue
        draft.lines.append((line, row))
    for key, draft in drafts.items():
        subtotal = sum((row.price_fen or 0) * row.quantity for _, row in draft.lines)
        if draft.lines and draft.head.order_discount_fen > subtotal:
            report.rejected.append(RowError(draft.first_line, "discount_fen", f"order {key!r}: "
                                            f"discount exceeds the subtotal {subtotal}"))
    return drafts


def _sound_drafts(drafts: dict[str, _Draft], line_keys: dict[int, Any],
                  report: ImportReport, skip_invalid: bool) -> list[_Draft]:
    """Drafts none of whose lines was rejected; with ``skip_invalid`` the rest of a broken
    order is reported as skipped (an order is never imported with lines missing)."""
    broken = {line_keys.get(error.line) for error in report.rejected}
    rejected = {error.line for error in report.rejected}
    for key in [key for key in drafts if key in broken]:
        for line, _row in drafts[key].lines:
            if skip_invalid and line not in rejected:
                report.rejected.append(RowError(line, "order_external_id", f"skipped: another "
                                                f"line of order {key!r} was rejected"))
    return [d for key, d in drafts.items() if key not in broken and d.lines]


def _order_values(draft: _Draft, refs: _Refs) -> dict[str, Any]:
    head = draft.head
    subtotal = sum((row.price_fen or 0) * row.quantity for _, row in draft.lines)
    values: dict[str, Any] = {
        "external_id": head.order_external_id,
        "customer_id": refs.customers[head.customer_external_id],
        "status": head.status, "channel": head.channel,
        "total_fen": subtotal - head.order_discount_fen,
        "discount_fen": head.order_discount_fen, "coupon_code": head.coupon_code,
        "device_external_id": head.device_external_id,
        "shipping_address": head.shipping_address, "payment_account": head.payment_account,
    }
    values.update({stamp: _utc(getattr(head, stamp)) for stamp in STAMPS})
    return values


def _line_keys(draft: _Draft, refs: _Refs) -> set[LineKey]:
    return {(row.sku, *refs.products[row.sku], row.quantity, row.price_fen or 0)
            for _, row in draft.lines}


def _chunks(keys: Iterable[Any]) -> Iterator[list[Any]]:
    ordered = sorted(set(keys))
    for start in range(0, len(ordered), CHUNK):
        yield ordered[start:start + CHUNK]


def _changed_orders(session: Session, values: list[dict[str, Any]]) -> tuple[set[str], set[str]]:
    """Order numbers already stored, and those of them whose columns the file changes."""
    stored: dict[str, Order] = {}
    for part in _chunks(v["external_id"] for v in values):
        stored.update((o.external_id, o) for o in session.scalars(
            select(Order).where(Order.external_id.in_(part))))
    changed = {v["external_id"] for v in values if v["external_id"] in stored
               and any(getattr(stored[v["external_id"]], k) != x for k, x in v.items())}
    return set(stored), changed


def _stored_lines(session: Session, keys: Iterable[str]) -> tuple[dict[str, int],
                                                                  dict[int, set[LineKey]]]:
    ids: dict[str, int] = {}
    for part in _chunks(keys):
        ids.update(dict(session.execute(select(Order.external_id, Order.id)
                                        .where(Order.external_id.in_(part))).tuples().all()))
    lines: dict[int, set[LineKey]] = {}
    for part in _chunks(ids.values()):
        for order_id, *line in session.execute(select(
                OrderLine.order_id, OrderLine.sku, OrderLine.product_id, OrderLine.brand_id,
                OrderLine.quantity, OrderLine.unit_price_fen)
                .where(OrderLine.order_id.in_(part))):
            lines.setdefault(order_id, set()).add(tuple(line))
    return ids, lines


def _line_row(order_id: int, key: LineKey) -> dict[str, Any]:
    sku, product_id, brand_id, quantity, price = key
    return {"order_id": order_id, "sku": sku, "product_id": product_id, "brand_id": brand_id,
            "quantity": quantity, "unit_price_fen": price}


def _sync_lines(session: Session, wanted: dict[str, set[LineKey]], counted_unchanged: set[str],
                report: ImportReport) -> None:
    """Make each imported order hold exactly the file's lines; a changed line set makes an
    otherwise unchanged order count as updated."""
    ids, stored = _stored_lines(session, wanted)
    replaced: list[int] = []
    rows: list[dict[str, Any]] = []
    for key, lines in wanted.items():
        if stored.get(ids[key], set()) == lines:
            continue
        replaced.append(ids[key])
        rows.extend(_line_row(ids[key], line) for line in sorted(lines))
        if key in counted_unchanged:
            report.unchanged, report.updated = report.unchanged - 1, report.updated + 1
    for part in _chunks(replaced):
        session.execute(delete(OrderLine).where(OrderLine.order_id.in_(part)))
    for start in range(0, len(rows), BULK_CHUNK):
        session.execute(insert(OrderLine), rows[start:start + BULK_CHUNK])
    session.flush()


def import_orders(session: Session, name: str, data: bytes, *,
                  skip_invalid: bool = False) -> ImportReport:
    """Bulk import of historical orders, one row per order line (CSV/JSONL).

    Rows are grouped by ``order_external_id`` and upserted by it; totals are computed from
    the lines. Stock is not touched (see the module docstring).
    """
    report = ImportReport(kind="orders")
    line_keys: dict[int, Any] = {}
    good = validate_rows(_tap_keys(read_rows(name, data), line_keys), OrderLineRow, report)
    refs = _Refs(customer_ids_by_key(session, (r.customer_external_id for _, r in good)),
                 product_brands(session, (r.sku for _, r in good)))
    drafts = _sound_drafts(_drafts(good, refs, report), line_keys, report, skip_invalid)
    values = [_order_values(d, refs) for d in drafts]
    stored, changed = _changed_orders(session, values)
    finish_import(session, report, Order, "external_id", values, skip_invalid, name)
    if report.committed:
        wanted = {d.head.order_external_id: _line_keys(d, refs) for d in drafts}
        _sync_lines(session, wanted, stored - changed, report)
    return report


def _bulk_order_row(order: dict[str, Any], customers: dict[str, int]) -> dict[str, Any]:
    key = order["customer_external_id"]
    if key not in customers:
        raise ValidationFailed("unknown_customer", f"order {order['external_id']!r} names "
                               f"unknown customer {key!r}", "customer_external_id")
    row = {k: order.get(k) for k in ORDER_KEYS if k != "customer_id"}
    row["customer_id"] = customers[key]
    row["discount_fen"] = row["discount_fen"] or 0
    return row


def _bulk_line_row(line: dict[str, Any], orders: dict[str, int],
                   products: dict[str, tuple[int, int]]) -> dict[str, Any]:
    if line["sku"] not in products:
        raise ValidationFailed("unknown_sku", f"no product {line['sku']!r}", "sku")
    if line["order_external_id"] not in orders:
        raise ValidationFailed("unknown_order", f"line names order "
                               f"{line['order_external_id']!r} not in this load",
                               "order_external_id")
    product_id, brand_id = products[line["sku"]]
    return {"order_id": orders[line["order_external_id"]], "sku": line["sku"],
            "product_id": product_id, "brand_id": brand_id, "quantity": line["quantity"],
            "unit_price_fen": line["unit_price_fen"]}


def bulk_load_orders(session: Session, orders: list[dict[str, Any]],
                     lines: list[dict[str, Any]]) -> None:
    """Fast load of generated or migrated orders into a table that does not hold them yet.

    Rows are trusted (the demo generator makes them): totals are taken as given, stock is
    not touched, each (order, SKU) appears once. Customers and SKUs must exist.
    """
    customers = customer_ids_by_key(session, (o["customer_external_id"] for o in orders))
    order_rows = [_bulk_order_row(order, customers) for order in orders]
    ids: dict[str, int] = {}
    for start in range(0, len(order_rows), BULK_CHUNK):
        part = order_rows[start:start + BULK_CHUNK]
        returned = session.execute(insert(Order).returning(Order.id, sort_by_parameter_order=True),
                                   part).scalars()
        ids.update(zip((row["external_id"] for row in part), returned, strict=True))
    products = product_brands(session, (line["sku"] for line in lines))
    line_rows = [_bulk_line_row(line, ids, products) for line in lines]
    for start in range(0, len(line_rows), BULK_CHUNK):
        session.execute(insert(OrderLine), line_rows[start:start + BULK_CHUNK])
    audit.record(session, action="bulk_load", entity="orders", entity_id="bulk",
                 after={"orders": len(order_rows), "lines": len(line_rows)})
    session.flush()
