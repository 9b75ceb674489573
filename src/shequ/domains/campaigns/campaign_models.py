"""Campaigns, their phases, and the shared calendar's resource bookings.

A campaign is planned in whole local days (``starts_on`` .. ``ends_on``, both included);
its phases lie inside it, in the order teaser → seeding → conversion → word of mouth,
without overlapping. Products carry an optional stock allocation (units held for the
campaign) and, for ESG campaigns, an impact per unit sold (e.g. 0.5 kg of produce).
Channel slots are instants (``[starts_at, ends_at)``, UTC). ``campaign_budgets`` holds a
brand's budget per month, which the calendar's conflict check compares with the campaigns'
budgets. Results and conflicts are computed, never stored.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from shequ.core.db import Base, UTCDateTime

__all__ = ["Campaign", "CampaignBudget", "CampaignPhase", "CampaignProduct", "CampaignSlot"]

TIERS = ("brand_day", "holiday", "hot_topic")
KINDS = ("commercial", "esg")
PHASES = ("teaser", "seeding", "conversion", "word_of_mouth")
CHANNELS = ("app_home_banner", "live_room", "wechat_group", "xiaohongshu", "douyin",
            "push_message")


class Campaign(Base):
    """One campaign; ``draft`` campaigns are plans not yet confirmed (status ``draft``)."""

    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint(f"tier IN {TIERS!r}", name="known_tier"),
        CheckConstraint(f"kind IN {KINDS!r}", name="known_kind"),
        CheckConstraint("starts_on <= ends_on", name="days_in_order"),
        CheckConstraint("budget_fen >= 0", name="budget_not_negative"),
        CheckConstraint("donation_bp BETWEEN 0 AND 10000", name="donation_bp_range"),
        CheckConstraint("kpi_gmv_fen IS NULL OR kpi_gmv_fen >= 0", name="kpi_gmv_not_negative"),
        CheckConstraint("kpi_orders IS NULL OR kpi_orders >= 0", name="kpi_orders_not_negative"),
        CheckConstraint("kpi_new_customers IS NULL OR kpi_new_customers >= 0",
                        name="kpi_new_customers_not_negative"),
        CheckConstraint("kpi_ugc_posts IS NULL OR kpi_ugc_posts >= 0",
                        name="kpi_ugc_posts_not_negative"),
        Index("ix_campaigns_starts_on_ends_on", "starts_on", "ends_on"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    tier: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    brand_id: Mapped[int | None] = mapped_column(ForeignKey("brands.id"), nullable=True,
                                                 index=True)
    draft: Mapped[bool] = mapped_column(Boolean, default=False)
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    budget_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    kpi_gmv_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    kpi_orders: Mapped[int | None] = mapped_column(Integer, nullable=True)
    kpi_new_customers: Mapped[int | None] = mapped_column(Integer, nullable=True)
    kpi_ugc_posts: Mapped[int | None] = mapped_column(Integer, nullable=True)
    donation_bp: Mapped[int] = mapped_column(Integer, default=0)
    """ESG: the share of GMV donated, in basis points (500 = 5 %)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CampaignPhase(Base):
    """One of the four phases of a campaign, whole local days."""

    __tablename__ = "campaign_phases"
    __table_args__ = (
        CheckConstraint(f"kind IN {PHASES!r}", name="known_kind"),
        CheckConstraint("starts_on <= ends_on", name="days_in_order"),
        UniqueConstraint("campaign_id", "kind", name="uq_campaign_phases_campaign_id_kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)


class CampaignProduct(Base):
    """A catalog product in a campaign, with the units held for it (None: no allocation)
    and, for ESG campaigns, the impact of one unit sold."""

    __tablename__ = "campaign_products"
    __table_args__ = (
        CheckConstraint("allocation IS NULL OR allocation >= 0", name="allocation_not_negative"),
        CheckConstraint("(impact_unit IS NULL) = (impact_per_unit IS NULL)",
                        name="impact_complete"),
        CheckConstraint("impact_per_unit IS NULL OR impact_per_unit >= 0",
                        name="impact_not_negative"),
        UniqueConstraint("campaign_id", "sku", name="uq_campaign_products_campaign_id_sku"),
        Index("ix_campaign_products_sku", "sku"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    sku: Mapped[str] = mapped_column(String(64))
    allocation: Mapped[int | None] = mapped_column(Integer, nullable=True)
    impact_unit: Mapped[str | None] = mapped_column(String(16), nullable=True)
    impact_per_unit: Mapped[Decimal | None] = mapped_column(Numeric(12, 3), nullable=True)


class CampaignSlot(Base):
    """A booked channel slot ``[starts_at, ends_at)``."""

    __tablename__ = "campaign_slots"
    __table_args__ = (
        CheckConstraint(f"channel IN {CHANNELS!r}", name="known_channel"),
        CheckConstraint("starts_at < ends_at", name="slot_not_empty"),
        Index("ix_campaign_slots_channel_starts_at", "channel", "starts_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"),
                                             index=True)
    channel: Mapped[str] = mapped_column(String(32))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CampaignBudget(Base):
    """A brand's campaign budget for one month (``YYYY-MM``)."""

    __tablename__ = "campaign_budgets"
    __table_args__ = (
        CheckConstraint("budget_fen >= 0", name="budget_not_negative"),
        UniqueConstraint("brand_id", "month", name="uq_campaign_budgets_brand_id_month"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brands.id"))
    month: Mapped[str] = mapped_column(String(7))
    budget_fen: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
