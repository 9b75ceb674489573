"""Moderation tables: the lexicon terms operators manage on top of the shipped lexicon
(and the version that tells every process to reload), one case per checked post, review or
comment with its verdict and where it stands in the review queue, and the case's audit
trail of actions. Incidents of crisis response live in ``incident_models``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from shequ.core.db import Base, UTCDateTime
from shequ.domains.moderation.incident_models import (  # noqa: F401  (the domain's tables)
    Incident,
    IncidentEvent,
    IncidentLink,
)

LABELS = ("pass", "review", "block")
CASE_STATES = ("decided", "queued", "appealed")
SUBJECT_KINDS = ("post", "review", "comment")
ACTIONS = ("checked", "auto_decided", "queued", "assigned", "escalated", "decided", "appealed",
           "released")


class LexiconTerm(Base):
    """A term (or, with ``category == 'allow'``, an allow-list phrase) added by an operator.

    The scan uses the shipped default lexicon plus these rows; ``term_key`` is the term's
    evasion form, so two spellings that match the same texts cannot both be stored.
    """

    __tablename__ = "moderation_terms"
    __table_args__ = (
        CheckConstraint("severity BETWEEN 1 AND 3", name="severity_range"),
        UniqueConstraint("term_key", name="uq_moderation_terms_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    term: Mapped[str] = mapped_column(String(64))
    term_key: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(16))
    severity: Mapped[int] = mapped_column(SmallInteger)
    pinyin: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str] = mapped_column(String(200), default="")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LexiconVersion(Base):
    """One row: bumped on every term change; each process reloads when it sees a new one."""

    __tablename__ = "moderation_lexicon_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    # Random per change: a process that served another database with the same version
    # number still sees the change.
    token: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Case(Base):
    """A checked text and its verdict: decided at once (pass / block), or queued for a
    human at ``level`` 1–3 until ``due_at``; an appeal re-opens a decided case at level 3."""

    __tablename__ = "moderation_cases"
    __table_args__ = (
        CheckConstraint(f"subject_kind IN {SUBJECT_KINDS!r}", name="subject_kind_known"),
        CheckConstraint(f"auto_label IN {LABELS!r}", name="auto_label_known"),
        CheckConstraint(f"label IN {LABELS!r}", name="label_known"),
        CheckConstraint(f"state IN {CASE_STATES!r}", name="state_known"),
        CheckConstraint("level IS NULL OR level BETWEEN 1 AND 3", name="level_range"),
        CheckConstraint("(state = 'decided') = (decided_at IS NOT NULL)",
                        name="decided_has_time"),
        UniqueConstraint("subject_kind", "subject_id", name="uq_moderation_cases_subject"),
        Index("ix_moderation_cases_queue", "state", "level", "due_at"),
        Index("ix_moderation_cases_submitted", "submitted_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject_kind: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[str] = mapped_column(String(64))
    brand_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    author_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    text: Mapped[str] = mapped_column(Text)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    auto_label: Mapped[str] = mapped_column(String(8))
    label: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16))
    level: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    assignee: Mapped[str | None] = mapped_column(String(64), nullable=True)
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    categories: Mapped[list[str]] = mapped_column(JSON)
    spans: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    reasons: Mapped[list[str]] = mapped_column(JSON)
    offensive: Mapped[float] = mapped_column(Float)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decided_level: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    decision_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    appeals: Mapped[int] = mapped_column(SmallInteger, default=0)


class CaseAction(Base):
    """One step of a case's audit trail, in order: who did what, at which level, and why."""

    __tablename__ = "moderation_actions"
    __table_args__ = (
        CheckConstraint(f"action IN {ACTIONS!r}", name="action_known"),
        Index("ix_moderation_actions_actor_at", "actor", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("moderation_cases.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))
    level: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    label: Mapped[str | None] = mapped_column(String(8), nullable=True)
    reason: Mapped[str] = mapped_column(String(500), default="")
