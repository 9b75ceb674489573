"""Coupon contracts: the only coupon shapes other code sees (docs/coupons.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from shequ.domains.orders.schemas import LineIn, OrderOut

Key = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
BatchKey = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:\-]+$")]
CouponCode = Annotated[str, Field(min_length=4, max_length=32, pattern=r"^[A-Za-z0-9\-]+$")]
UtcDatetime = Annotated[AwareDatetime, AfterValidator(lambda v: v.astimezone(UTC))]
Fen = Annotated[int, Field(ge=1, le=10**10)]
CouponKind = Literal["fixed", "percent", "threshold"]
CouponScope = Literal["all", "brand", "skus"]
CouponState = Literal["issued", "used", "expired"]
SkipReason = Literal["unknown_customer", "already_issued", "limit_reached", "sold_out"]
MAX_SCOPE_SKUS = 200
MAX_RECIPIENTS = 100_000


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TemplateIn(_Input):
    """A coupon template. ``fixed``: ``amount_off_fen`` off the in-scope subtotal (at most
    that subtotal). ``percent``: ``percent_off`` % off it, at most ``max_off_fen`` when
    given. ``threshold`` (满减): ``amount_off_fen`` off once the in-scope subtotal reaches
    ``min_subtotal_fen``. Usable in ``[starts_at, ends_at)``; ``scope`` is every product,
    one brand, or a list of SKUs. The sum of discounts granted never exceeds
    ``budget_fen``."""

    code: Key
    name: Annotated[str, Field(min_length=1, max_length=100)]
    description: Annotated[str, Field(max_length=500)] | None = None
    kind: CouponKind
    amount_off_fen: Fen | None = None
    percent_off: Annotated[int, Field(ge=1, le=99)] | None = None
    max_off_fen: Fen | None = None
    min_subtotal_fen: Annotated[int, Field(ge=0, le=10**10)] = 0
    starts_at: UtcDatetime
    ends_at: UtcDatetime
    scope: CouponScope = "all"
    brand_external_id: Key | None = None
    skus: Annotated[list[Key], Field(max_length=MAX_SCOPE_SKUS)] = []
    per_customer_limit: Annotated[int, Field(ge=1, le=100)] = 1
    total_quantity: Annotated[int, Field(ge=1, le=10_000_000)]
    budget_fen: Annotated[int, Field(ge=1, le=10**12)]


class TemplateOut(BaseModel):
    code: str
    name: str
    description: str | None
    kind: CouponKind
    amount_off_fen: int | None
    percent_off: int | None
    max_off_fen: int | None
    min_subtotal_fen: int
    starts_at: datetime
    ends_at: datetime
    scope: CouponScope
    brand_external_id: str | None
    skus: list[str]
    per_customer_limit: int
    total_quantity: int
    issued_count: int
    budget_fen: int
    granted_fen: int
    created_at: datetime
    created_by: str


class FiguresOut(BaseModel):
    """How a template did: ``redeemed`` counts redemptions in force (orders not
    cancelled); ``gmv_fen`` sums the totals of those orders that are paid and not
    refunded; ``new_customers`` counts redeemers whose coupon order was their first."""

    code: str
    issued: int
    redeemed: int
    redemption_rate: float | None
    granted_fen: int
    budget_fen: int
    budget_used: float
    gmv_fen: int
    paid_orders: int
    redeemers: int
    new_customers: int


class TemplateDetail(BaseModel):
    template: TemplateOut
    figures: FiguresOut


class IssueIn(_Input):
    """Issue to a saved segment's members or to a list of customers (exactly one), once
    per (template, customer, ``batch_key``)."""

    batch_key: BatchKey
    segment_id: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None
    customer_external_ids: Annotated[list[Key], Field(max_length=MAX_RECIPIENTS)] | None = None


class Skipped(BaseModel):
    customer_external_id: str
    reason: SkipReason


class IssueOut(BaseModel):
    template_code: str
    batch_key: str
    requested: int
    issued: list[str]
    """The customers who got a coupon now."""
    codes: dict[str, str]
    """Customer -> the code of the coupon this batch gave them (new or earlier)."""
    skipped: list[Skipped]


class CouponOut(BaseModel):
    code: str
    template_code: str
    template_name: str
    customer_external_id: str
    batch_key: str
    state: CouponState
    issued_at: datetime
    used_at: datetime | None
    order_external_id: str | None
    starts_at: datetime
    ends_at: datetime


class QuoteIn(_Input):
    """Price lines with a coupon without using it."""

    coupon_code: CouponCode
    customer_external_id: Key
    lines: Annotated[list[LineIn], Field(min_length=1, max_length=200)]


class QuoteOut(BaseModel):
    coupon_code: str
    template_code: str
    kind: CouponKind
    subtotal_fen: int
    eligible_fen: int
    """The subtotal of the lines in the coupon's scope."""
    discount_fen: int
    total_fen: int


class CheckoutIn(_Input):
    """Check out with a coupon: the order (``order_external_id`` is the shop's order
    number and the idempotency key) and the coupon's use happen together or not at all."""

    coupon_code: CouponCode
    customer_external_id: Key
    order_external_id: Key
    lines: Annotated[list[LineIn], Field(min_length=1, max_length=200)]
    channel: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    device_external_id: Annotated[str, Field(min_length=1, max_length=128,
                                             pattern=r"^\S+$")] | None = None
    shipping_address: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    payment_account: Annotated[str, Field(min_length=1, max_length=128)] | None = None


class CheckoutOut(BaseModel):
    order: OrderOut
    coupon_code: str
    template_code: str
    discount_fen: int
    replayed: bool


class RedemptionOut(BaseModel):
    coupon_code: str
    customer_external_id: str
    order_external_id: str
    subtotal_fen: int
    eligible_fen: int
    discount_fen: int
    order_total_fen: int
    order_status: str
    first_order: bool
    state: Literal["active", "released"]
    created_at: datetime
    released_at: datetime | None


class BatchOut(BaseModel):
    batch_key: str
    source: str
    requested: int
    issued: int
    created_at: datetime
    created_by: str
