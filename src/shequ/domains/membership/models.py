"""Membership tables: the rule per tier, each customer's standing, the change history and
the evaluated days."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from shequ.core.db import Base, UTCDateTime
from shequ.stats.membership import TIERS

#: Every standing a customer can have, indexed by the tier numbers of ``stats.membership``.
TIER_CODES = ("none", *TIERS)
BASES = ("spend", "points")
REASONS = ("upgrade", "downgrade", "grace_started", "grace_cancelled")


class TierRule(Base):
    """How a tier is earned and kept, and what it gives."""

    __tablename__ = "tier_rules"
    __table_args__ = (
        CheckConstraint(f"code IN {TIERS!r}", name="known_tier"),
        CheckConstraint(f"basis IN {BASES!r}", name="known_basis"),
        CheckConstraint("threshold > 0", name="threshold_positive"),
        CheckConstraint("grace_days BETWEEN 0 AND 365", name="grace_days_range"),
        CheckConstraint("points_per_review >= 0 AND points_per_post >= 0",
                        name="points_not_negative"),
    )

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, unique=True)
    name: Mapped[str] = mapped_column(String(32))
    basis: Mapped[str] = mapped_column(String(8))
    # Fen of rolling 12-month net spend, or growth points, depending on ``basis``.
    threshold: Mapped[int] = mapped_column(BigInteger)
    points_per_review: Mapped[int] = mapped_column(Integer, default=0)
    points_per_post: Mapped[int] = mapped_column(Integer, default=0)
    grace_days: Mapped[int] = mapped_column(Integer)
    benefits: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Membership(Base):
    """A customer's current standing; a row exists once a customer has held a tier
    (``tier = 'none'`` after falling out of every tier)."""

    __tablename__ = "memberships"
    __table_args__ = (
        CheckConstraint(f"tier IN {TIER_CODES!r}", name="known_tier"),
        Index("ix_memberships_tier", "tier"),
    )

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    tier: Mapped[str] = mapped_column(String(16))
    qualified_value: Mapped[int] = mapped_column(BigInteger)
    since: Mapped[date] = mapped_column(Date)
    grace_until: Mapped[date | None] = mapped_column(Date, nullable=True)
    evaluated_on: Mapped[date] = mapped_column(Date)


class TierChange(Base):
    """One change of a customer's standing on an evaluated day."""

    __tablename__ = "tier_changes"
    __table_args__ = (
        # A re-run of a day computes the same changes; the key makes a duplicate impossible.
        UniqueConstraint("customer_id", "day", "from_tier", "to_tier", "reason",
                         name="uq_tier_changes_change"),
        CheckConstraint(f"reason IN {REASONS!r}", name="known_reason"),
        CheckConstraint(f"from_tier IN {TIER_CODES!r} AND to_tier IN {TIER_CODES!r}",
                        name="known_tiers"),
        Index("ix_tier_changes_day_id", "day", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    day: Mapped[date] = mapped_column(Date)
    from_tier: Mapped[str] = mapped_column(String(16))
    to_tier: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(16))
    qualified_value: Mapped[int] = mapped_column(BigInteger)
    grace_until: Mapped[date | None] = mapped_column(Date, nullable=True)


class EvaluationRun(Base):
    """A day that has been evaluated: later evaluations of earlier days are refused."""

    __tablename__ = "membership_runs"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    evaluated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    customers: Mapped[int] = mapped_column(Integer)
    changes: Mapped[int] = mapped_column(Integer)
