"""Insight contracts: profiles, tags, group figures, refresh reports and the 360° view."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel


class ProfileOut(BaseModel):
    """A buyer's value profile (absent for customers who never bought)."""

    customer: str
    as_of: date
    orders: int
    spend_fen: int
    first_order_on: date
    last_order_on: date
    recency_days: int
    frequency: int
    monetary_fen: int
    r_score: int
    f_score: int
    m_score: int
    rfm_group: str
    rfm_group_name: str
    clv_fen: int | None
    p_alive: float | None
    value_tier: str
    value_tier_name: str


class TagOut(BaseModel):
    kind: str
    value: str
    score: float
    label: str  # the value as operators read it: a category or brand name, 20:00, 高


class GroupFiguresOut(BaseModel):
    """One RFM group or value tier: size and money, spend relative to the base group."""

    code: str
    name: str
    customers: int
    share_of_customers: float
    gmv_fen: int
    gmv_share: float | None
    average_spend_fen: int | None
    spend_multiple: float | None
    repurchase_rate: float | None


class ValueMatrixOut(BaseModel):
    as_of: date | None
    buyers: int
    base: str
    tiers: list[GroupFiguresOut]
    rfm_groups: list[GroupFiguresOut]
    models: dict[str, Any]


class RefreshReport(BaseModel):
    as_of: date
    customers: int
    buyers: int
    tags: int
    models: dict[str, Any]
    notes: list[str]
    seconds: float


class Milestone(BaseModel):
    """One step of a customer's story: first visit, first order, a tier change ..."""

    at: datetime
    kind: str
    title: str
    detail: str | None = None


class TimelineEvent(BaseModel):
    at: datetime
    name: str
    page: str | None
    channel: str | None
    detail: str | None


class Customer360(BaseModel):
    """Everything the platform knows about one customer, gathered from every domain."""

    customer: dict[str, Any]
    identities: list[dict[str, Any]]
    devices: list[dict[str, Any]]
    profile: ProfileOut | None
    tags: list[TagOut]
    lifecycle_stage: str | None
    member_tier: dict[str, Any] | None
    segments: list[dict[str, Any]]
    orders: list[dict[str, Any]]
    orders_total: int
    reviews: list[dict[str, Any]]
    posts: list[dict[str, Any]]
    events: list[TimelineEvent]
    trajectory: list[Milestone]
