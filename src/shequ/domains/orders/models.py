"""Order tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from shequ.core.db import Base, UTCDateTime

STATUSES = ("created", "paid", "shipped", "completed", "cancelled", "refunded")


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("total_fen >= 0", name="total_not_negative"),
        CheckConstraint("discount_fen >= 0", name="discount_not_negative"),
        CheckConstraint(f"status IN {STATUSES!r}", name="known_status"),
        Index("ix_orders_customer_created", "customer_id", "created_at"),
    )
    # Shipping address and payment account are personal data: audited as changed, not shown.
    __audit_redact__ = ("shipping_address", "payment_account")

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    status: Mapped[str] = mapped_column(String(16), index=True)
    channel: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    shipped_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    total_fen: Mapped[int] = mapped_column(BigInteger)
    discount_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    coupon_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    device_external_id: Mapped[str | None] = mapped_column(String(128), nullable=True,
                                                           index=True)
    shipping_address: Mapped[str | None] = mapped_column(Text, nullable=True)
    payment_account: Mapped[str | None] = mapped_column(String(128), nullable=True)


class OrderLine(Base):
    __tablename__ = "order_lines"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price_fen >= 0", name="price_not_negative"),
        UniqueConstraint("order_id", "sku", name="uq_order_lines_order_id_sku"),
        # Partner scoping asks "which orders hold a line of these brands".
        Index("ix_order_lines_brand_order", "brand_id", "order_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    # Copied from the product so a partner's view needs no join through the catalog.
    brand_id: Mapped[int] = mapped_column(ForeignKey("brands.id"))
    sku: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_fen: Mapped[int] = mapped_column(BigInteger)
