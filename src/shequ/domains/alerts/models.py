"""Alert tables: rules, one alert per (rule, bucket), one notification per delivery."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from shequ.core.db import Base, UTCDateTime

GRAINS = ("hour", "day")
MODES = ("fixed", "baseline")
DIRECTIONS = ("below", "above", "both")
LEVELS = ("yellow", "orange", "red")
STATES = ("open", "acknowledged", "resolved")
CHANNELS = ("webhook", "email")
DELIVERY_STATUSES = ("pending", "sending", "sent", "failed")


class AlertRule(Base):
    __tablename__ = "alert_rules"
    __table_args__ = (
        CheckConstraint(f"grain IN {GRAINS!r}", name="known_grain"),
        CheckConstraint(f"mode IN {MODES!r}", name="known_mode"),
        CheckConstraint(f"direction IN {DIRECTIONS!r}", name="known_direction"),
        CheckConstraint("baseline_weeks BETWEEN 2 AND 12", name="baseline_weeks_range"),
        CheckConstraint("min_baseline_points BETWEEN 2 AND baseline_weeks",
                        name="min_points_range"),
        Index("ix_alert_rules_grain_enabled", "grain", "enabled"),
    )
    # Webhook URLs often carry an access token (DingTalk, WeCom, Feishu robots).
    __audit_redact__ = ("webhook_url",)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    metric: Mapped[str] = mapped_column(String(64), index=True)
    grain: Mapped[str] = mapped_column(String(8))
    mode: Mapped[str] = mapped_column(String(16))
    direction: Mapped[str] = mapped_column(String(8))
    yellow: Mapped[float] = mapped_column(Float)
    orange: Mapped[float] = mapped_column(Float)
    red: Mapped[float] = mapped_column(Float)
    baseline_weeks: Mapped[int] = mapped_column(Integer)
    min_baseline_points: Mapped[int] = mapped_column(Integer)
    webhook_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    emails: Mapped[list[str]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("rule_id", "bucket_start", name="uq_alerts_rule_id_bucket_start"),
        CheckConstraint(f"level IN {LEVELS!r}", name="known_level"),
        CheckConstraint(f"state IN {STATES!r}", name="known_state"),
        Index("ix_alerts_state_level", "state", "level"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("alert_rules.id"))
    # Copied from the rule when the alert is first raised: a later edit of the rule does
    # not rewrite history.
    metric: Mapped[str] = mapped_column(String(64), index=True)
    grain: Mapped[str] = mapped_column(String(8))
    bucket_start: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    level: Mapped[str] = mapped_column(String(8))
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    baseline: Mapped[float | None] = mapped_column(Float, nullable=True)
    spread: Mapped[float | None] = mapped_column(Float, nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    baseline_points: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16))
    notified_level: Mapped[str | None] = mapped_column(String(8), nullable=True)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime)
    evaluated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class Notification(Base):
    __tablename__ = "alert_notifications"
    __table_args__ = (
        UniqueConstraint("alert_id", "level", "channel", "target",
                         name="uq_alert_notifications_delivery"),
        CheckConstraint(f"channel IN {CHANNELS!r}", name="known_channel"),
        CheckConstraint(f"status IN {DELIVERY_STATUSES!r}", name="known_status"),
        Index("ix_alert_notifications_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), index=True)
    level: Mapped[str] = mapped_column(String(8))
    channel: Mapped[str] = mapped_column(String(8))
    target: Mapped[str] = mapped_column(String(2000))
    status: Mapped[str] = mapped_column(String(8))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
