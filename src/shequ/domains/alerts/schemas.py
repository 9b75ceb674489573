"""Alert contracts: the only alert shapes other domains and entrypoints see."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat

Grain = Literal["hour", "day"]
Mode = Literal["fixed", "baseline"]
Direction = Literal["below", "above", "both"]
Level = Literal["yellow", "orange", "red"]
State = Literal["open", "acknowledged", "resolved"]
Channel = Literal["webhook", "email"]
DeliveryStatus = Literal["pending", "sending", "sent", "failed"]

RuleName = Annotated[str, Field(min_length=1, max_length=100)]
MetricName = Annotated[str, Field(min_length=1, max_length=64)]
Email = Annotated[str, Field(min_length=3, max_length=254)]
Url = Annotated[str, Field(min_length=1, max_length=2000)]
Note = Annotated[str, Field(min_length=1, max_length=2000)]
MAX_EMAILS = 20


class RuleIn(BaseModel):
    """A new rule. Omitted ``direction`` follows the metric (a figure that should be high
    alerts ``below``); omitted thresholds default to robust z-scores 2/3/4 in ``baseline``
    mode and are required in ``fixed`` mode."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: RuleName
    metric: MetricName
    grain: Grain = "day"
    mode: Mode = "baseline"
    direction: Direction | None = None
    yellow: FiniteFloat | None = None
    orange: FiniteFloat | None = None
    red: FiniteFloat | None = None
    baseline_weeks: int = 4
    min_baseline_points: int | None = None
    webhook_url: Url | None = None
    emails: Annotated[list[Email], Field(max_length=MAX_EMAILS)] = []
    enabled: bool = True


class RulePatch(BaseModel):
    """A partial update: only the fields sent change (``webhook_url: null`` removes it)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: RuleName | None = None
    metric: MetricName | None = None
    grain: Grain | None = None
    mode: Mode | None = None
    direction: Direction | None = None
    yellow: FiniteFloat | None = None
    orange: FiniteFloat | None = None
    red: FiniteFloat | None = None
    baseline_weeks: int | None = None
    min_baseline_points: int | None = None
    webhook_url: Url | None = None
    emails: Annotated[list[Email], Field(max_length=MAX_EMAILS)] | None = None
    enabled: bool | None = None


class RuleOut(BaseModel):
    id: int
    name: str
    metric: str
    grain: Grain
    mode: Mode
    direction: Direction
    yellow: float
    orange: float
    red: float
    baseline_weeks: int
    min_baseline_points: int
    webhook_url: str | None
    emails: list[str]
    enabled: bool
    created_at: datetime
    updated_at: datetime


class AlertOut(BaseModel):
    """One alert: a rule's verdict on one bucket, and what people did about it.

    ``score`` is the robust z-score ``(value - baseline) / spread`` (signed) whenever a
    baseline exists; ``threshold`` is the threshold of ``level`` that was crossed.
    """

    id: int
    rule_id: int
    rule_name: str
    metric: str
    grain: Grain
    bucket_start: datetime
    level: Level
    value: float
    threshold: float
    baseline: float | None
    spread: float | None
    score: float | None
    baseline_points: int
    state: State
    notified_level: Level | None
    raised_at: datetime
    evaluated_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    note: str | None
    link: str


class NotificationOut(BaseModel):
    id: int
    level: Level
    channel: Channel
    target: str
    status: DeliveryStatus
    attempts: int
    error: str | None
    created_at: datetime
    sent_at: datetime | None


class AlertDetail(AlertOut):
    """An alert with its notification deliveries."""

    notifications: list[NotificationOut]


class AlertPage(BaseModel):
    total: int
    items: list[AlertOut]


class TransitionNote(BaseModel):
    """The optional note that goes with acknowledging or resolving an alert."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    note: Note | None = None


class Skipped(BaseModel):
    """A (rule, bucket) the evaluation could not judge, and why."""

    rule_id: int
    bucket_start: datetime
    reason: Literal["no_value", "insufficient_baseline"]


class DeliveryReport(BaseModel):
    sent: int = 0
    failed: int = 0


class EvaluationReport(BaseModel):
    """What one evaluation did."""

    grain: Grain
    buckets: int
    rules: int
    raised: int
    updated: int
    cleared: int
    skipped: list[Skipped]
    delivery: DeliveryReport
