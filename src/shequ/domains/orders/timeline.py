"""Is an imported order's history possible? Its status fixes which timestamps it has,
and they must follow each other in the order the state machine goes."""

from __future__ import annotations

from datetime import datetime

from shequ.domains.orders.schemas import OrderLineRow

STAMPS = ("paid_at", "shipped_at", "completed_at", "cancelled_at", "refunded_at")
ALLOWED: dict[str, frozenset[str]] = {
    "created": frozenset(),
    "paid": frozenset({"paid_at"}),
    "shipped": frozenset({"paid_at", "shipped_at"}),
    "completed": frozenset({"paid_at", "shipped_at", "completed_at"}),
    "cancelled": frozenset({"cancelled_at"}),
    "refunded": frozenset({"paid_at", "shipped_at", "completed_at", "refunded_at"}),
}
REQUIRED: dict[str, frozenset[str]] = {
    "created": frozenset(),
    "paid": frozenset({"paid_at"}),
    "shipped": frozenset({"paid_at", "shipped_at"}),
    "completed": frozenset({"paid_at", "shipped_at", "completed_at"}),
    "cancelled": frozenset({"cancelled_at"}),
    "refunded": frozenset({"paid_at", "refunded_at"}),
}
# Each stamp and the stamps that must come before it (when present).
SEQUENCE = ("created_at", "paid_at", "shipped_at", "completed_at", "refunded_at")


def _missing_or_extra(row: OrderLineRow) -> tuple[str, str] | None:
    for stamp in STAMPS:
        present = getattr(row, stamp) is not None
        if present and stamp not in ALLOWED[row.status]:
            return stamp, f"a {row.status} order has no {stamp}"
        if not present and stamp in REQUIRED[row.status]:
            return stamp, f"a {row.status} order needs {stamp}"
    if row.completed_at is not None and row.shipped_at is None:
        return "shipped_at", "a completed order needs shipped_at"
    return None


def _out_of_order(row: OrderLineRow) -> tuple[str, str] | None:
    chain = ("created_at", "cancelled_at") if row.status == "cancelled" else SEQUENCE
    previous: tuple[str, datetime] | None = None
    for stamp in chain:
        at: datetime | None = getattr(row, stamp)
        if at is None:
            continue
        if previous is not None and at < previous[1]:
            return stamp, f"{stamp} is before {previous[0]}"
        previous = (stamp, at)
    return None


def timeline_error(row: OrderLineRow) -> tuple[str, str] | None:
    """``(field, reason)`` when the row's status and timestamps cannot be, else None."""
    return _missing_or_extra(row) or _out_of_order(row)
