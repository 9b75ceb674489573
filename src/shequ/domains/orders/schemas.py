"""Order contracts: the only order shapes other domains and entrypoints see."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
)

from shequ.core.money import yuan_to_fen

Key = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
Token = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^\S+$")]
Label = Annotated[str, Field(min_length=1, max_length=64)]
UtcDatetime = Annotated[AwareDatetime, AfterValidator(lambda v: v.astimezone(UTC))]
Fen = Annotated[int, Field(ge=0, le=10**12)]
Quantity = Annotated[int, Field(gt=0, le=100_000)]
Status = Literal["created", "paid", "shipped", "completed", "cancelled", "refunded"]
MAX_LINES = 200


class LineIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    sku: Key
    quantity: Quantity


class OrderIn(BaseModel):
    """A checkout: ``external_id`` is the shop's order number and the idempotency key."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    external_id: Key
    customer_external_id: Key
    lines: Annotated[list[LineIn], Field(min_length=1, max_length=MAX_LINES)]
    channel: Label | None = None
    discount_fen: Fen = 0
    coupon_code: Label | None = None
    device_external_id: Token | None = None
    shipping_address: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    payment_account: Annotated[str, Field(min_length=1, max_length=128)] | None = None

    @field_validator("lines")
    @classmethod
    def _one_line_per_sku(cls, lines: list[LineIn]) -> list[LineIn]:
        skus = [line.sku for line in lines]
        repeated = sorted({sku for sku in skus if skus.count(sku) > 1})
        if repeated:
            raise ValueError(f"each SKU once per order; repeated: {', '.join(repeated)}")
        return lines


class OrderLineOut(BaseModel):
    sku: str
    product_id: int
    brand_id: int
    quantity: int
    unit_price_fen: int
    amount_fen: int


class OrderOut(BaseModel):
    """An order. Partners see only their brands' lines, and no order-level money or
    personal data (those would reveal what else, and who, the order covers)."""

    id: int
    external_id: str
    customer_external_id: str
    status: Status
    channel: str | None
    created_at: datetime
    paid_at: datetime | None
    shipped_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    refunded_at: datetime | None
    total_fen: int | None
    discount_fen: int | None
    coupon_code: str | None
    device_external_id: str | None
    shipping_address: str | None
    payment_account: str | None
    brand_ids: list[int]
    lines: list[OrderLineOut]


class TransitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: Status


class OrderPage(BaseModel):
    """One page of orders."""

    total: int
    items: list[OrderOut]


def _yuan(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return value
    return yuan_to_fen(str(value))


YuanAsFen = Annotated[int, BeforeValidator(_yuan), Field(ge=0, le=10**12)]


class OrderLineRow(BaseModel):
    """One line of a historical order export; order-level columns repeat on every line.

    ``unit_price`` in yuan (``"12.50"``) may stand in for ``unit_price_fen``, and
    ``discount`` for ``discount_fen``.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    order_external_id: Key
    customer_external_id: Key
    status: Status
    channel: Label | None = None
    created_at: UtcDatetime
    paid_at: UtcDatetime | None = None
    shipped_at: UtcDatetime | None = None
    completed_at: UtcDatetime | None = None
    cancelled_at: UtcDatetime | None = None
    refunded_at: UtcDatetime | None = None
    sku: Key
    quantity: Quantity
    unit_price_fen: Fen | None = None
    unit_price: YuanAsFen | None = None
    discount_fen: Fen | None = None
    discount: YuanAsFen | None = None
    coupon_code: Label | None = None
    device_external_id: Token | None = None
    shipping_address: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    payment_account: Annotated[str, Field(min_length=1, max_length=128)] | None = None

    @property
    def price_fen(self) -> int | None:
        """The unit price in fen, from whichever column the file used."""
        return self.unit_price_fen if self.unit_price_fen is not None else self.unit_price

    @property
    def order_discount_fen(self) -> int:
        """The order's discount in fen (0 when the file has none)."""
        if self.discount_fen is not None:
            return self.discount_fen
        return self.discount or 0


@dataclass(frozen=True)
class Purchases:
    """Paid, not cancelled or refunded orders as columns, for the customer-value models.

    ``customer_ids`` are entity ids (``customers.id``), ``paid_at`` UTC instants as
    ``datetime64[us]``; one entry per order, sorted by customer then time.
    """

    customer_ids: NDArray[np.int64]
    paid_at: NDArray[np.datetime64]
    total_fen: NDArray[np.int64]
    discount_fen: NDArray[np.int64]
    with_coupon: NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.customer_ids)
