"""Invite tasks and referrals: links, attributions, commissions (docs/referrals.md).

Invite tasks ("invite 3 friends to unlock"): a task, the invitees each inviter brought
(one row per invitee and task, with the reason it did not count) and the inviter's
progress row, which is the lock that orders counting and issues the reward once.

Referrals: promoters with their link code, the customer's permanent binding to the
promoter whose link brought them first (the referral tree), every click (the
attribution window), the commission rules, one commission per paid order and level
(1 or 2, never deeper) and the promoter's balance ledger (one entry per commission and
kind, so settling or clawing back twice is impossible).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from shequ.core.db import Base, UTCDateTime

__all__ = [
    "InviteProgress", "InviteTask", "Invitee", "ReferralAttribution", "ReferralBinding",
    "ReferralCommission", "ReferralEntry", "ReferralPromoter", "ReferralRule",
]

INVITE_COUNTS = ("registered", "first_paid_order")
INVITEE_STATES = ("pending", "counted", "rejected")
INVITEE_REASONS = ("self_invite", "existing_customer", "shared_device", "shared_address",
                   "shared_payment", "outside_window")
COMMISSION_STATES = ("pending", "settled", "clawed_back")
ENTRY_KINDS = ("settle", "clawback")


class InviteTask(Base):
    """Invite ``goal`` friends in ``[starts_at, ends_at)`` to earn ``reward_points``."""

    __tablename__ = "invite_tasks"
    __table_args__ = (
        CheckConstraint(f"counts IN {INVITE_COUNTS!r}", name="known_counts"),
        CheckConstraint("goal BETWEEN 1 AND 100", name="goal_range"),
        CheckConstraint("reward_points > 0", name="reward_positive"),
        CheckConstraint("ends_at > starts_at", name="window_order"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    goal: Mapped[int] = mapped_column(Integer)
    counts: Mapped[str] = mapped_column(String(16))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reward_points: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Invitee(Base):
    """A customer one inviter brought to a task: pending until what counts happens, then
    counted or rejected with ``reason``. A customer is invited once per task."""

    __tablename__ = "invite_invitees"
    __table_args__ = (
        UniqueConstraint("task_id", "invitee_id", name="uq_invite_invitees_task_invitee"),
        CheckConstraint(f"state IN {INVITEE_STATES!r}", name="known_state"),
        CheckConstraint(f"reason IS NULL OR reason IN {INVITEE_REASONS!r}",
                        name="known_reason"),
        CheckConstraint("(state = 'rejected') = (reason IS NOT NULL)",
                        name="rejected_has_reason"),
        Index("ix_invite_invitees_task_inviter", "task_id", "inviter_id"),
        Index("ix_invite_invitees_invitee_state", "invitee_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("invite_tasks.id"))
    inviter_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    invitee_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    device_external_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    """The device the invitee accepted the invite on, as the shop app reported it."""
    invited_at: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str | None] = mapped_column(String(24), nullable=True)
    order_external_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The order that counted (or was rejected) for a first-paid-order task."""
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class InviteProgress(Base):
    """An inviter's count on a task; its row lock orders the counting, and ``rewarded_at``
    with the reward's idempotency key makes the reward happen once."""

    __tablename__ = "invite_progress"
    __table_args__ = (
        UniqueConstraint("task_id", "inviter_id", name="uq_invite_progress_task_inviter"),
        CheckConstraint("counted >= 0", name="counted_not_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("invite_tasks.id"))
    inviter_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    counted: Mapped[int] = mapped_column(Integer, default=0)
    rewarded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reward_key: Mapped[str | None] = mapped_column(String(100), nullable=True, unique=True)


class ReferralRule(Base):
    """Commission terms; the newest row is in force, commissions copy the rates they
    used. Rates in basis points (1 % = 100)."""

    __tablename__ = "referral_rules"
    __table_args__ = (
        CheckConstraint("level1_bp BETWEEN 0 AND 3000", name="level1_range"),
        CheckConstraint("level2_bp BETWEEN 0 AND 3000", name="level2_range"),
        CheckConstraint("attribution_days BETWEEN 1 AND 90", name="attribution_range"),
        CheckConstraint("return_days BETWEEN 0 AND 90", name="return_range"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    level1_bp: Mapped[int] = mapped_column(Integer)
    level2_bp: Mapped[int] = mapped_column(Integer)
    attribution_days: Mapped[int] = mapped_column(Integer)
    return_days: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(64))


class ReferralPromoter(Base):
    """A customer who shares a link ``/r/<code>``; ``balance_fen`` is the cached sum of
    the promoter's ledger entries (negative after a clawback of paid-out commission)."""

    __tablename__ = "referral_promoters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), unique=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    balance_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ReferralBinding(Base):
    """The promoter whose link first brought a customer: permanent, one per customer.
    A promoter's own binding names their referrer (level 2)."""

    __tablename__ = "referral_bindings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), unique=True)
    promoter_id: Mapped[int] = mapped_column(ForeignKey("referral_promoters.id"), index=True)
    bound_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ReferralAttribution(Base):
    """One arrival of a customer by a promoter's link, good in ``[clicked_at, expires_at)``;
    the latest good one decides who earns level 1 on a paid order."""

    __tablename__ = "referral_attributions"
    __table_args__ = (
        CheckConstraint("expires_at > clicked_at", name="window_order"),
        Index("ix_referral_attributions_customer_clicked", "customer_id", "clicked_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    promoter_id: Mapped[int] = mapped_column(ForeignKey("referral_promoters.id"), index=True)
    clicked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ReferralCommission(Base):
    """Commission on a paid order for one level (1: the promoter whose link the buyer came
    by; 2: that promoter's own referrer). Pending until ``settle_after`` (completion plus
    the return window), then settled; a refund claws it back in either state."""

    __tablename__ = "referral_commissions"
    __table_args__ = (
        UniqueConstraint("order_id", "level", name="uq_referral_commissions_order_level"),
        CheckConstraint("level IN (1, 2)", name="two_levels_only"),
        CheckConstraint(f"state IN {COMMISSION_STATES!r}", name="known_state"),
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        CheckConstraint("base_fen >= amount_fen", name="amount_within_base"),
        Index("ix_referral_commissions_promoter_id", "promoter_id", "id"),
        Index("ix_referral_commissions_state_settle", "state", "settle_after"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    order_external_id: Mapped[str] = mapped_column(String(64), index=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    promoter_id: Mapped[int] = mapped_column(ForeignKey("referral_promoters.id"))
    level: Mapped[int] = mapped_column(Integer)
    base_fen: Mapped[int] = mapped_column(BigInteger)
    rate_bp: Mapped[int] = mapped_column(Integer)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    return_days: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(12))
    accrued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    settle_after: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    clawed_back_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ReferralEntry(Base):
    """A movement of a promoter's balance: ``+amount`` when a commission settles,
    ``-amount`` when a settled commission is clawed back. Once per commission and kind."""

    __tablename__ = "referral_entries"
    __table_args__ = (
        UniqueConstraint("commission_id", "kind", name="uq_referral_entries_commission_kind"),
        CheckConstraint(f"kind IN {ENTRY_KINDS!r}", name="known_kind"),
        CheckConstraint("(kind = 'settle' AND amount_fen > 0) OR "
                        "(kind = 'clawback' AND amount_fen < 0)", name="sign_by_kind"),
        Index("ix_referral_entries_promoter_id", "promoter_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    promoter_id: Mapped[int] = mapped_column(ForeignKey("referral_promoters.id"))
    commission_id: Mapped[int] = mapped_column(ForeignKey("referral_commissions.id"))
    kind: Mapped[str] = mapped_column(String(8))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
