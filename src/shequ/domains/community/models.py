"""Community tables: ladder levels and each creator's standing with its history, academy
tasks and completions, fund rounds and their payout ledger, hub memberships and role
changes. Creators are keyed by their customer id (one creator profile per customer)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from shequ.core.db import Base, UTCDateTime

LEVEL_CODES = ("newcomer", "certified", "senior", "core")
TASK_KINDS = ("course", "quiz", "first_post", "live", "other")
ROUND_STATES = ("open", "closed")
HUB_ROLES = ("expert", "brand", "user")


class LadderLevel(Base):
    """A rung of the certification ladder and what a creator needs to stand on it."""

    __tablename__ = "ladder_levels"
    __table_args__ = (
        CheckConstraint(f"code IN {LEVEL_CODES!r}", name="known_level"),
        CheckConstraint("window_days BETWEEN 1 AND 365", name="window_days_range"),
        CheckConstraint("min_posts >= 0 AND min_orders >= 0 AND min_academy_tasks >= 0 "
                        "AND min_hub_days >= 0", name="minimums_not_negative"),
    )

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, unique=True)
    name: Mapped[str] = mapped_column(String(32))
    window_days: Mapped[int] = mapped_column(Integer)
    min_posts: Mapped[int] = mapped_column(Integer)
    min_mean_quality: Mapped[float] = mapped_column(Float)
    min_orders: Mapped[int] = mapped_column(Integer)
    min_academy_tasks: Mapped[int] = mapped_column(Integer)
    required_tasks_done: Mapped[bool] = mapped_column(Boolean)
    min_hub_days: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CreatorStanding(Base):
    """A creator's level after the latest evaluation and the checks that decided it."""

    __tablename__ = "creator_standings"
    __table_args__ = (
        CheckConstraint(f"level IN {LEVEL_CODES!r}", name="known_level"),
        Index("ix_creator_standings_level", "level"),
    )

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    level: Mapped[str] = mapped_column(String(16))
    since: Mapped[datetime] = mapped_column(UTCDateTime)
    evaluated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    checks: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class LevelChange(Base):
    """One change of a creator's level, with the checks of the level reached."""

    __tablename__ = "creator_level_changes"
    __table_args__ = (
        CheckConstraint(f"to_level IN {LEVEL_CODES!r}", name="known_level"),
        Index("ix_creator_level_changes_as_of_id", "as_of", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    as_of: Mapped[datetime] = mapped_column(UTCDateTime)
    from_level: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_level: Mapped[str] = mapped_column(String(16))
    checks: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class LadderRun(Base):
    """An evaluated instant: evaluations of earlier instants are refused."""

    __tablename__ = "ladder_runs"

    as_of: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    evaluated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    creators: Mapped[int] = mapped_column(Integer)
    changes: Mapped[int] = mapped_column(Integer)


class AcademyTask(Base):
    """A task of the creators' academy (a course, a quiz, the first post …)."""

    __tablename__ = "academy_tasks"
    __table_args__ = (
        CheckConstraint(f"kind IN {TASK_KINDS!r}", name="known_kind"),
        CheckConstraint("points >= 0", name="points_not_negative"),
    )

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    required: Mapped[bool] = mapped_column(Boolean)
    points: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TaskCompletion(Base):
    """A creator's completion of a task: at most one per task and creator."""

    __tablename__ = "academy_completions"
    __table_args__ = (
        UniqueConstraint("task_code", "customer_id", name="uq_academy_completions_task"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_code: Mapped[str] = mapped_column(ForeignKey("academy_tasks.code"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    completed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FundRound(Base):
    """A round of the creator fund: a budget for a period, split when the round closes."""

    __tablename__ = "fund_rounds"
    __table_args__ = (
        CheckConstraint(f"state IN {ROUND_STATES!r}", name="known_state"),
        CheckConstraint("budget_fen > 0 AND cap_fen > 0", name="amounts_positive"),
        CheckConstraint("min_score >= 0", name="min_score_not_negative"),
        CheckConstraint("period_end > period_start", name="period_ordered"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    period_start: Mapped[datetime] = mapped_column(UTCDateTime)
    period_end: Mapped[datetime] = mapped_column(UTCDateTime)
    budget_fen: Mapped[int] = mapped_column(BigInteger)
    cap_fen: Mapped[int] = mapped_column(BigInteger)
    min_score: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(8), default="open")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    close_key: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    paid_fen: Mapped[int] = mapped_column(BigInteger, default=0)


class FundPayout(Base):
    """The ledger: one payout per round and creator, written once when the round closes."""

    __tablename__ = "fund_payouts"
    __table_args__ = (
        UniqueConstraint("round_id", "customer_id", name="uq_fund_payouts_round"),
        CheckConstraint("amount_fen >= 0", name="amount_not_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("fund_rounds.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    score: Mapped[float] = mapped_column(Float)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class HubMembership(Base):
    """A customer's membership of a hub with a role: at most one per hub and customer."""

    __tablename__ = "hub_memberships"
    __table_args__ = (
        UniqueConstraint("hub_id", "customer_id", name="uq_hub_memberships_member"),
        CheckConstraint(f"role IN {HUB_ROLES!r}", name="known_role"),
        Index("ix_hub_memberships_hub_joined", "hub_id", "joined_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hub_id: Mapped[int] = mapped_column(ForeignKey("hubs.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    role: Mapped[str] = mapped_column(String(8))
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime)


class HubRoleChange(Base):
    """A membership's role history: the join (no previous role) and every change."""

    __tablename__ = "hub_role_changes"
    __table_args__ = (
        CheckConstraint(f"to_role IN {HUB_ROLES!r}", name="known_role"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    membership_id: Mapped[int] = mapped_column(ForeignKey("hub_memberships.id"), index=True)
    from_role: Mapped[str | None] = mapped_column(String(8), nullable=True)
    to_role: Mapped[str] = mapped_column(String(8))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
