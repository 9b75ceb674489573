"""Coupons: templates, issued coupons, issue batches, redemptions (docs/coupons.md).

A template holds the terms (kind, value, window, scope, limits, budget) and two counters
changed only by conditional UPDATEs on its row, which is therefore the lock that orders
issuance and redemption of one template: ``issued_count`` (never above
``total_quantity``) and ``granted_fen``, the discounts of the redemptions in force (never
above ``budget_fen``). CHECK constraints hold both caps even against a faulty writer.

An issued coupon is ``issued`` or ``used``; ``used`` names its order. A redemption is one
row per order that used a coupon (unique on the order) and at most one ``active`` row per
coupon (a partial unique index); cancelling the order marks it ``released`` and returns
the coupon and its discount to the budget.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from shequ.core.db import Base, UTCDateTime

__all__ = ["Coupon", "CouponBatch", "CouponRedemption", "CouponScopeSku", "CouponTemplate"]

COUPON_KINDS = ("fixed", "percent", "threshold")
COUPON_SCOPES = ("all", "brand", "skus")
COUPON_STATES = ("issued", "used")
REDEMPTION_STATES = ("active", "released")


class CouponTemplate(Base):
    """The terms of a coupon and the counters that enforce its caps."""

    __tablename__ = "coupon_templates"
    __table_args__ = (
        CheckConstraint(f"kind IN {COUPON_KINDS!r}", name="known_kind"),
        CheckConstraint(f"scope IN {COUPON_SCOPES!r}", name="known_scope"),
        CheckConstraint("(kind = 'percent') = (percent_off IS NOT NULL)",
                        name="percent_has_rate"),
        CheckConstraint("(kind = 'percent') = (amount_off_fen IS NULL)",
                        name="amount_unless_percent"),
        CheckConstraint("percent_off IS NULL OR percent_off BETWEEN 1 AND 99",
                        name="percent_range"),
        CheckConstraint("amount_off_fen IS NULL OR amount_off_fen > 0", name="amount_positive"),
        CheckConstraint("max_off_fen IS NULL OR max_off_fen > 0", name="cap_positive"),
        CheckConstraint("min_subtotal_fen >= 0", name="minimum_not_negative"),
        CheckConstraint("kind <> 'threshold' OR min_subtotal_fen > amount_off_fen",
                        name="threshold_above_amount"),
        CheckConstraint("(scope = 'brand') = (brand_id IS NOT NULL)", name="brand_scope"),
        CheckConstraint("ends_at > starts_at", name="window_order"),
        CheckConstraint("per_customer_limit BETWEEN 1 AND 100", name="limit_range"),
        CheckConstraint("total_quantity >= 1", name="quantity_positive"),
        CheckConstraint("issued_count BETWEEN 0 AND total_quantity", name="issued_within"),
        CheckConstraint("budget_fen > 0", name="budget_positive"),
        CheckConstraint("granted_fen BETWEEN 0 AND budget_fen", name="granted_within"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(500), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))
    amount_off_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    """Fixed and threshold coupons: the money off."""
    percent_off: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """Percent coupons: the share off, 1 to 99."""
    max_off_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    """Percent coupons: the most one redemption takes off (None: no cap)."""
    min_subtotal_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    """The in-scope subtotal needed (the threshold of a 满减 coupon)."""
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    scope: Mapped[str] = mapped_column(String(8))
    brand_id: Mapped[int | None] = mapped_column(ForeignKey("brands.id"), nullable=True)
    per_customer_limit: Mapped[int] = mapped_column(Integer)
    total_quantity: Mapped[int] = mapped_column(Integer)
    issued_count: Mapped[int] = mapped_column(Integer, default=0)
    budget_fen: Mapped[int] = mapped_column(BigInteger)
    granted_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(64))


class CouponScopeSku(Base):
    """A SKU a ``skus``-scoped template applies to."""

    __tablename__ = "coupon_scope_skus"
    __table_args__ = (
        UniqueConstraint("template_id", "sku", name="uq_coupon_scope_skus_template_sku"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("coupon_templates.id"))
    sku: Mapped[str] = mapped_column(String(64))


class CouponBatch(Base):
    """One issuance request (its key is the client's idempotency key within a template)."""

    __tablename__ = "coupon_batches"
    __table_args__ = (
        UniqueConstraint("template_id", "batch_key", name="uq_coupon_batches_template_key"),
        CheckConstraint("requested >= 0 AND issued >= 0", name="counts_not_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("coupon_templates.id"))
    batch_key: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(120))
    """``list`` or ``segment:<key>``."""
    requested: Mapped[int] = mapped_column(Integer)
    issued: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(64))


class Coupon(Base):
    """A coupon held by a customer: issued once per (template, customer, batch)."""

    __tablename__ = "coupons"
    __table_args__ = (
        UniqueConstraint("template_id", "customer_id", "batch_key",
                         name="uq_coupons_template_customer_batch"),
        CheckConstraint(f"status IN {COUPON_STATES!r}", name="known_status"),
        CheckConstraint("(status = 'used') = (order_id IS NOT NULL)", name="used_has_order"),
        Index("ix_coupons_customer_template", "customer_id", "template_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("coupon_templates.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    batch_key: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(8))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), nullable=True,
                                                 unique=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class CouponRedemption(Base):
    """A coupon used on an order: the discount granted, what the order was worth, and
    the order's status as its transitions report it (for the figures)."""

    __tablename__ = "coupon_redemptions"
    __table_args__ = (
        CheckConstraint(f"state IN {REDEMPTION_STATES!r}", name="known_state"),
        CheckConstraint("discount_fen > 0", name="discount_positive"),
        CheckConstraint("eligible_fen >= discount_fen", name="discount_within_eligible"),
        CheckConstraint("(state = 'released') = (released_at IS NOT NULL)",
                        name="released_has_time"),
        Index("uq_coupon_redemptions_active_coupon", "coupon_id", unique=True,
              sqlite_where=text("state = 'active'"),
              postgresql_where=text("state = 'active'")),
        Index("ix_coupon_redemptions_template_state", "template_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    coupon_id: Mapped[int] = mapped_column(ForeignKey("coupons.id"))
    template_id: Mapped[int] = mapped_column(ForeignKey("coupon_templates.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), unique=True)
    order_external_id: Mapped[str] = mapped_column(String(64), unique=True)
    subtotal_fen: Mapped[int] = mapped_column(BigInteger)
    eligible_fen: Mapped[int] = mapped_column(BigInteger)
    """The subtotal of the order's lines in the template's scope."""
    discount_fen: Mapped[int] = mapped_column(BigInteger)
    order_total_fen: Mapped[int] = mapped_column(BigInteger)
    order_status: Mapped[str] = mapped_column(String(16))
    first_order: Mapped[bool] = mapped_column(Boolean)
    """Whether the customer had no order before this one (a new customer)."""
    state: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
