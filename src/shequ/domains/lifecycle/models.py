"""Lifecycle tables: stage changes, daily counts per stage, one strategy per stage.

A customer's stage on any day is its latest change at or before that day, so a daily
snapshot of every customer costs only the days on which stages changed.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from shequ.core.db import Base, UTCDateTime
from shequ.stats.lifecycle import STAGES

ACTIONS = ("coupon", "push", "wecom_message", "sms", "email", "invite_to_hub",
           "creator_invite", "none")


class LifecycleChange(Base):
    """A customer's stage moved on ``day``; ``from_stage`` is None when it first appears."""

    __tablename__ = "lifecycle_changes"
    __table_args__ = (
        UniqueConstraint("customer_id", "day", name="uq_lifecycle_changes_customer_id_day"),
        CheckConstraint(f"to_stage IN {STAGES!r}", name="known_to_stage"),
        CheckConstraint(f"from_stage IS NULL OR from_stage IN {STAGES!r}",
                        name="known_from_stage"),
        Index("ix_lifecycle_changes_day", "day"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    day: Mapped[date] = mapped_column(Date)
    from_stage: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_stage: Mapped[str] = mapped_column(String(16))


class LifecycleDaily(Base):
    """How many customers were in ``stage`` on ``day`` (registered customers only)."""

    __tablename__ = "lifecycle_daily"
    __table_args__ = (CheckConstraint(f"stage IN {STAGES!r}", name="known_stage"),)

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    stage: Mapped[str] = mapped_column(String(16), primary_key=True)
    customers: Mapped[int] = mapped_column(Integer)


class LifecycleStrategy(Base):
    """What operations do with a stage: which saved segment, which action on which channel."""

    __tablename__ = "lifecycle_strategies"
    __table_args__ = (
        CheckConstraint(f"stage IN {STAGES!r}", name="known_stage"),
        CheckConstraint(f"action IN {ACTIONS!r}", name="known_action"),
    )

    stage: Mapped[str] = mapped_column(String(16), primary_key=True)
    segment_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str | None] = mapped_column(String(32), nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
