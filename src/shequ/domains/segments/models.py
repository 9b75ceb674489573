"""Segment tables: the saved segments and the size each refresh measured."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from shequ.core.db import Base, UTCDateTime


class Segment(Base):
    """A saved rule and the state of its member set in the event store.

    ``key`` is the value of ``segment_members.segment`` (what the analytics segment filter
    reads), so it never changes. ``rule_revision`` counts rule changes and ``version``
    completed refreshes; ``refresh_token`` / ``refresh_claimed_at`` mark a refresh in
    progress (claimed by a conditional UPDATE, so two refreshes never interleave).
    ``inputs_fingerprint`` is the digest of the event-store inputs and the rule of the last
    refresh: equal inputs mean an unchanged member set, so the refresh is skipped.
    """

    __tablename__ = "segments"
    __table_args__ = (Index("ix_segments_archived", "archived"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    rule: Mapped[dict[str, Any]] = mapped_column(JSON)
    rule_revision: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reference_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    inputs_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    refresh_token: Mapped[str | None] = mapped_column(String(32), nullable=True)
    refresh_claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SegmentSize(Base):
    """One completed refresh: the size it measured and how many members came and went.

    Unique per (segment, version): a refresh records its row once, however often it is
    retried or raced.
    """

    __tablename__ = "segment_sizes"
    __table_args__ = (
        UniqueConstraint("segment_id", "version", name="uq_segment_sizes_segment_id_version"),
        Index("ix_segment_sizes_segment_id_measured_at", "segment_id", "measured_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    measured_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reference_at: Mapped[datetime] = mapped_column(UTCDateTime)
    size: Mapped[int] = mapped_column(Integer)
    added: Mapped[int] = mapped_column(Integer)
    removed: Mapped[int] = mapped_column(Integer)
