"""Lifecycle contracts: the only lifecycle shapes other domains and entrypoints see."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Stage = Literal["new", "active", "paying", "loyal", "advocate", "dormant"]
Action = Literal["coupon", "push", "wecom_message", "sms", "email", "invite_to_hub",
                 "creator_invite", "none"]


class Snapshot(BaseModel):
    """Customers per stage on one day (every stage present, zeros included)."""

    day: date
    counts: dict[Stage, int]
    total: int


class TransitionMatrix(BaseModel):
    """Stage on ``from_day`` (rows) against stage on ``to_day`` (columns), in
    ``stages`` order; ``entered`` counts customers registered after ``from_day`` by their
    stage on ``to_day``."""

    from_day: date
    to_day: date
    stages: list[Stage]
    matrix: list[list[int]]
    entered: dict[Stage, int]


class SeriesPoint(BaseModel):
    day: date
    counts: dict[Stage, int]


class StageValue(BaseModel):
    """Lifetime value of one stage's customers on a day (fen)."""

    stage: Stage
    customers: int
    avg_realised_fen: int
    avg_predicted_clv_fen: int | None = None


class LtvByStage(BaseModel):
    day: date
    stages: list[StageValue]


class StageChange(BaseModel):
    day: date
    from_stage: Stage | None
    to_stage: Stage


class CustomerLifecycle(BaseModel):
    """A customer's stage today (None before the first refresh) and its growth path."""

    customer_id: int
    stage: Stage | None
    history: list[StageChange]


class StrategyIn(BaseModel):
    """What operations do with a stage's customers."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    segment_key: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    action: Action
    channel: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    message: Annotated[str, Field(max_length=2000)] | None = None
    note: Annotated[str, Field(max_length=2000)] | None = None


class StrategyOut(StrategyIn):
    stage: Stage
    updated_by: str | None = None
    updated_at: datetime | None = None


class RefreshReport(BaseModel):
    """What one refresh computed and wrote."""

    first_day: date
    last_day: date
    customers: int
    changes_written: int
    seconds: float
