"""Insight tables: one profile per buyer, profile tags, and a record of every refresh."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Date, Float, ForeignKey, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from shequ.core.db import Base, UTCDateTime


class CustomerProfile(Base):
    """What the customer-value models say about one buyer as of ``as_of`` (a local day)."""

    __tablename__ = "customer_profiles"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    as_of: Mapped[date] = mapped_column(Date)
    orders: Mapped[int] = mapped_column(Integer)
    spend_fen: Mapped[int] = mapped_column(BigInteger)
    first_order_on: Mapped[date] = mapped_column(Date)
    last_order_on: Mapped[date] = mapped_column(Date)
    recency_days: Mapped[int] = mapped_column(Integer)
    frequency: Mapped[int] = mapped_column(Integer)
    monetary_fen: Mapped[int] = mapped_column(BigInteger)
    r_score: Mapped[int] = mapped_column(SmallInteger)
    f_score: Mapped[int] = mapped_column(SmallInteger)
    m_score: Mapped[int] = mapped_column(SmallInteger)
    rfm_group: Mapped[str] = mapped_column(String(24), index=True)
    clv_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    p_alive: Mapped[float | None] = mapped_column(Float, nullable=True)
    value_tier: Mapped[str] = mapped_column(String(2), index=True)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CustomerTag(Base):
    """A profile tag: an affinity, a preference or a level, scored 0..1."""

    __tablename__ = "customer_tags"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(64), primary_key=True)
    score: Mapped[float] = mapped_column(Float)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ProfileRun(Base):
    """One refresh: as of which day, when, how many rows, the fitted model parameters."""

    __tablename__ = "profile_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    as_of: Mapped[date] = mapped_column(Date)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    customers: Mapped[int] = mapped_column(Integer, default=0)
    buyers: Mapped[int] = mapped_column(Integer, default=0)
    tags: Mapped[int] = mapped_column(Integer, default=0)
    models: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    notes: Mapped[list[str]] = mapped_column(JSON, default=list)
