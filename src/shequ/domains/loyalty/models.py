"""Loyalty tables: the double-entry points ledger (accounts, movements, entries), the
lots that expire, the rewards catalogue, redemptions and their one-time store codes.

Every movement is one row in ``points_movements`` (its idempotency key unique) and two or
more rows in ``points_entries`` that sum to zero. A customer account caches its balance,
updated under the account's row lock in the movement's transaction and never negative
(CHECK). System accounts (``issued``, ``redeemed``, ``expired``) keep no cached balance:
locking one row for every movement of the shop would serialise them all, and their
balance is the sum of their entries.
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
)
from sqlalchemy.orm import Mapped, mapped_column

from shequ.core.db import Base, UTCDateTime

ACCOUNT_KINDS = ("customer", "issued", "redeemed", "expired")
MOVEMENT_KINDS = ("earn", "redeem", "expire", "adjust", "refund")
REWARD_KINDS = ("goods", "service", "offline")
REDEMPTION_STATES = ("done", "refunded")


class PointsAccount(Base):
    """A ledger account: one per customer (with its cached balance) and one per system
    account (``code`` = its kind)."""

    __tablename__ = "points_accounts"
    __table_args__ = (
        CheckConstraint(f"kind IN {ACCOUNT_KINDS!r}", name="known_kind"),
        CheckConstraint("(kind = 'customer' AND customer_id IS NOT NULL AND balance IS NOT NULL)"
                        " OR (kind <> 'customer' AND customer_id IS NULL AND balance IS NULL)",
                        name="customer_or_system"),
        CheckConstraint("balance IS NULL OR balance >= 0", name="balance_not_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), unique=True,
                                                    nullable=True)
    balance: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PointsMovement(Base):
    """One movement of points, written once under its client idempotency key."""

    __tablename__ = "points_movements"
    __table_args__ = (
        CheckConstraint(f"kind IN {MOVEMENT_KINDS!r}", name="known_kind"),
        CheckConstraint("points > 0", name="points_positive"),
        CheckConstraint("balance_after >= 0", name="balance_after_not_negative"),
        Index("ix_points_movements_customer_id_id", "customer_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(8))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    points: Mapped[int] = mapped_column(BigInteger)
    """What moved, always positive; the entries carry the direction."""
    credit: Mapped[bool] = mapped_column(Boolean)
    """True when the customer's balance went up."""
    balance_after: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PointsEntry(Base):
    """One side of a movement: ``points`` (+/-, never zero) on one account."""

    __tablename__ = "points_entries"
    __table_args__ = (
        CheckConstraint("points <> 0", name="points_not_zero"),
        Index("ix_points_entries_account_id_id", "account_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    movement_id: Mapped[int] = mapped_column(ForeignKey("points_movements.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("points_accounts.id"))
    points: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PointsLot(Base):
    """Points credited together that expire together: ``remaining`` is what is left of
    ``points`` after redemptions and expiry. Spent oldest-expiring first."""

    __tablename__ = "points_lots"
    __table_args__ = (
        CheckConstraint("points > 0", name="points_positive"),
        CheckConstraint("remaining >= 0 AND remaining <= points", name="remaining_in_range"),
        Index("ix_points_lots_account_id_expires_at", "account_id", "expires_at"),
        Index("ix_points_lots_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("points_accounts.id"))
    movement_id: Mapped[int] = mapped_column(ForeignKey("points_movements.id"))
    points: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class LotUse(Base):
    """How many points of a lot a debit (redemption, expiry, adjustment) took."""

    __tablename__ = "points_lot_uses"
    __table_args__ = (CheckConstraint("points > 0", name="points_positive"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    movement_id: Mapped[int] = mapped_column(ForeignKey("points_movements.id"), index=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("points_lots.id"), index=True)
    points: Mapped[int] = mapped_column(BigInteger)


class Reward(Base):
    """Something points buy: goods, a service or an offline benefit (with a store code)."""

    __tablename__ = "points_rewards"
    __table_args__ = (
        CheckConstraint(f"kind IN {REWARD_KINDS!r}", name="known_kind"),
        CheckConstraint("cost_points > 0", name="cost_positive"),
        CheckConstraint("stock IS NULL OR stock >= 0", name="stock_not_negative"),
        CheckConstraint("code_valid_days BETWEEN 1 AND 366", name="code_valid_days_range"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(8))
    cost_points: Mapped[int] = mapped_column(BigInteger)
    stock: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """None: unlimited."""
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    code_valid_days: Mapped[int] = mapped_column(Integer, default=30)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Redemption(Base):
    """A redeem movement's reward; refunded at most once."""

    __tablename__ = "points_redemptions"
    __table_args__ = (
        CheckConstraint(f"state IN {REDEMPTION_STATES!r}", name="known_state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    movement_id: Mapped[int] = mapped_column(ForeignKey("points_movements.id"), unique=True)
    reward_id: Mapped[int] = mapped_column(ForeignKey("points_rewards.id"), index=True)
    state: Mapped[str] = mapped_column(String(8), default="done")
    refund_movement_id: Mapped[int | None] = mapped_column(
        ForeignKey("points_movements.id"), unique=True, nullable=True)


class StoreCode(Base):
    """The one-time code of an offline redemption. The text shown to the customer is
    signed (``codes.py``) and never stored; ``nonce`` finds the row again."""

    __tablename__ = "points_store_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    redemption_id: Mapped[int] = mapped_column(ForeignKey("points_redemptions.id"), unique=True)
    nonce: Mapped[str] = mapped_column(String(32), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    store_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
