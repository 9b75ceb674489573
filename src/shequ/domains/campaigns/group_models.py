"""Group buying (拼团): offers, groups, members (docs/group-buying.md).

An offer sets aside ``stock`` units of one catalog SKU when it is created (taken from the
product's stock); ``stock_left`` is what joins may still take. Every join takes its units
from ``stock_left`` under the offer's row lock; an expired group gives them back; a
successful group's members turn their units into real orders; when the offer has ended
and no group is open any more, what is left goes back to the catalog (``returned_units``).
So at every moment ``stock = stock_left + returned_units + units held by members of open
or succeeded groups``, and CHECKs keep ``stock_left`` from going below zero and a group
from holding more members than its size.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from shequ.core.db import Base, UTCDateTime

__all__ = ["BuyingGroup", "GroupMember", "GroupOffer"]

OFFER_STATES = ("active", "paused")
GROUP_STATES = ("open", "succeeded", "expired", "refunded")
MEMBER_STATES = ("paid", "ordered", "refunded")


class GroupOffer(Base):
    """A group-buying offer on one SKU: tiers of discount by group size, a time limit per
    group, an offer window, the units set aside for it, a per-customer limit."""

    __tablename__ = "group_offers"
    __table_args__ = (
        CheckConstraint(f"state IN {OFFER_STATES!r}", name="known_state"),
        CheckConstraint("max_size >= 2 AND min_size >= 2 AND min_size <= max_size",
                        name="sizes_valid"),
        CheckConstraint("hours BETWEEN 1 AND 720", name="hours_range"),
        CheckConstraint("ends_at > starts_at", name="window_valid"),
        CheckConstraint("unit_price_fen >= 0", name="price_not_negative"),
        CheckConstraint("stock > 0", name="stock_positive"),
        CheckConstraint("stock_left >= 0 AND stock_left <= stock", name="stock_left_in_range"),
        CheckConstraint("returned_units >= 0", name="returned_not_negative"),
        CheckConstraint("per_customer_limit >= 1", name="limit_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(100))
    sku: Mapped[str] = mapped_column(String(64))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brands.id"))
    unit_price_fen: Mapped[int] = mapped_column(BigInteger)
    """The catalog price when the offer was created: what a member pays per unit on
    joining, before the tier discount."""
    tiers: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    """``[{"size": 2, "percent_off": 10}, …]``, sizes and discounts ascending."""
    min_size: Mapped[int] = mapped_column(Integer)
    max_size: Mapped[int] = mapped_column(Integer)
    hours: Mapped[int] = mapped_column(Integer)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    stock: Mapped[int] = mapped_column(Integer)
    stock_left: Mapped[int] = mapped_column(Integer)
    returned_units: Mapped[int] = mapped_column(Integer, default=0)
    per_customer_limit: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(8), default="active")
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BuyingGroup(Base):
    """One group on an offer: open until it fills or its deadline passes."""

    __tablename__ = "group_groups"
    __table_args__ = (
        CheckConstraint(f"state IN {GROUP_STATES!r}", name="known_state"),
        CheckConstraint("member_count >= 0 AND member_count <= max_size",
                        name="member_count_in_range"),
        CheckConstraint("units >= 0", name="units_not_negative"),
        CheckConstraint("state <> 'succeeded' OR tier_size IS NOT NULL",
                        name="success_has_tier"),
        Index("ix_group_groups_offer_id_state", "offer_id", "state"),
        Index("ix_group_groups_state_deadline_at", "state", "deadline_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("group_offers.id"))
    leader_customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    state: Mapped[str] = mapped_column(String(10), default="open")
    max_size: Mapped[int] = mapped_column(Integer)
    member_count: Mapped[int] = mapped_column(Integer, default=0)
    units: Mapped[int] = mapped_column(Integer, default=0)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    tier_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    percent_off: Mapped[int | None] = mapped_column(Integer, nullable=True)


class GroupMember(Base):
    """A customer in a group: paid the undiscounted price on joining; on success the order
    (``order_external_id``) and the difference refunded; on expiry everything refunded."""

    __tablename__ = "group_members"
    __table_args__ = (
        UniqueConstraint("group_id", "customer_id", name="uq_group_members_group_customer"),
        CheckConstraint(f"state IN {MEMBER_STATES!r}", name="known_state"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("paid_fen >= 0", name="paid_not_negative"),
        CheckConstraint("discount_fen >= 0 AND discount_fen <= paid_fen",
                        name="discount_in_range"),
        CheckConstraint("refunded_fen >= 0 AND refunded_fen <= paid_fen",
                        name="refund_in_range"),
        Index("ix_group_members_offer_id_customer_id", "offer_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("group_groups.id"))
    offer_id: Mapped[int] = mapped_column(ForeignKey("group_offers.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    is_leader: Mapped[bool] = mapped_column(Boolean, default=False)
    quantity: Mapped[int] = mapped_column(Integer)
    paid_fen: Mapped[int] = mapped_column(BigInteger)
    discount_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    state: Mapped[str] = mapped_column(String(8), default="paid")
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    order_external_id: Mapped[str | None] = mapped_column(String(64), unique=True,
                                                          nullable=True)
