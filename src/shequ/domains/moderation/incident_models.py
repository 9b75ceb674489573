"""Crisis incident tables: incidents opened by negative-sentiment bursts, their timeline and
the reviews and posts linked to them (docs/crisis.md).

One scope (a product, a brand or a topic) has at most one incident that is not closed:
``open_scope`` holds ``kind:key`` until the incident closes and NULL afterwards, and a
unique index on it (NULLs never clash) makes two concurrent detections agree on one row.
``key`` (scope and first burst hour) names an incident for good.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
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

__all__ = ["EVENT_KINDS", "INCIDENT_STATES", "SCOPE_KINDS", "SEVERITIES", "SUBJECT_KINDS",
           "Incident", "IncidentEvent", "IncidentLink"]

SCOPE_KINDS = ("product", "brand", "topic")
INCIDENT_STATES = ("monitor", "assess", "respond", "review", "closed")
SEVERITIES = ("low", "medium", "high")
EVENT_KINDS = ("opened", "burst", "state_changed", "owner_set", "note", "linked", "report")
SUBJECT_KINDS = ("review", "post")


class Incident(Base):
    """A public-opinion incident about one scope and the burst(s) that raised it."""

    __tablename__ = "incidents"
    __table_args__ = (
        CheckConstraint(f"scope_kind IN {SCOPE_KINDS!r}", name="known_scope_kind"),
        CheckConstraint(f"state IN {INCIDENT_STATES!r}", name="known_state"),
        CheckConstraint(f"severity IN {SEVERITIES!r}", name="known_severity"),
        CheckConstraint("window_start < window_end", name="window_ordered"),
        CheckConstraint("observed >= 0 AND expected >= 0", name="counts_not_negative"),
        Index("ix_incidents_state_opened", "state", "opened_at"),
        Index("ix_incidents_scope", "scope_kind", "scope_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(160), unique=True)
    scope_kind: Mapped[str] = mapped_column(String(8))
    scope_key: Mapped[str] = mapped_column(String(128))
    scope_name: Mapped[str] = mapped_column(String(256))
    # Brand of a product or brand scope (partners see their brands' incidents only).
    brand_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    open_scope: Mapped[str | None] = mapped_column(String(140), nullable=True, unique=True)
    state: Mapped[str] = mapped_column(String(8))
    severity: Mapped[str] = mapped_column(String(8))
    owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sla_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Every burst's span (the texts linked), and the sharpest stretch of the strongest
    # burst, whose counts and tests follow.
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    peak_start: Mapped[datetime] = mapped_column(UTCDateTime)
    peak_end: Mapped[datetime] = mapped_column(UTCDateTime)
    observed: Mapped[int] = mapped_column(Integer)
    expected: Mapped[float] = mapped_column(Float)
    p_value: Mapped[float] = mapped_column(Float)
    z: Mapped[float] = mapped_column(Float)
    summary: Mapped[str] = mapped_column(Text)
    root_cause: Mapped[str | None] = mapped_column(Text, nullable=True)
    actions: Mapped[str | None] = mapped_column(Text, nullable=True)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class IncidentEvent(Base):
    """One line of an incident's timeline."""

    __tablename__ = "incident_events"
    __table_args__ = (
        CheckConstraint(f"kind IN {EVENT_KINDS!r}", name="known_kind"),
        Index("ix_incident_events_incident_at", "incident_id", "at", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    from_state: Mapped[str | None] = mapped_column(String(8), nullable=True)
    to_state: Mapped[str | None] = mapped_column(String(8), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class IncidentLink(Base):
    """A review or post that belongs to an incident (once per incident)."""

    __tablename__ = "incident_links"
    __table_args__ = (
        UniqueConstraint("incident_id", "subject_kind", "subject_id",
                         name="uq_incident_links_subject"),
        CheckConstraint(f"subject_kind IN {SUBJECT_KINDS!r}", name="known_subject_kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"),
                                             index=True)
    subject_kind: Mapped[str] = mapped_column(String(8))
    subject_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Kept at linking for the incident page and the review report: an excerpt and the
    # complaints found in it (aspects, their terms, the negative clauses holding them).
    excerpt: Mapped[str] = mapped_column(Text)
    aspects: Mapped[list[str]] = mapped_column(JSON, default=list)
    terms: Mapped[list[str]] = mapped_column(JSON, default=list)
    clauses: Mapped[list[str]] = mapped_column(JSON, default=list)
