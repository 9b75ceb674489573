"""Segment contracts: the only segment shapes other domains and entrypoints see."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SegmentKey = Annotated[str, Field(min_length=1, max_length=64,
                                  pattern=r"^[a-z0-9][a-z0-9_-]*$")]
SegmentName = Annotated[str, Field(min_length=1, max_length=100)]
Description = Annotated[str, Field(max_length=2000)]
Rule = dict[str, Any]
RefreshStatus = Literal["refreshed", "unchanged", "busy", "failed"]
SAMPLE_SIZE = 20


class SegmentIn(BaseModel):
    """A new segment. Without ``key`` one is derived from the name (a slug of an ASCII
    name, else ``seg-`` and a digest of the name)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: SegmentName
    rule: Rule
    key: SegmentKey | None = None
    description: Description = ""


class SegmentPatch(BaseModel):
    """A partial update: only the fields sent change. A new ``rule`` recomputes the
    members; ``archived: true`` removes them from the event store, ``false`` brings them
    back."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: SegmentName | None = None
    description: Description | None = None
    rule: Rule | None = None
    archived: bool | None = None


class RuleIn(BaseModel):
    """A rule to try without saving it."""

    model_config = ConfigDict(extra="forbid")

    rule: Rule


class SegmentOut(BaseModel):
    """A saved segment with its stored size (measured by the last refresh, never
    recomputed on reading)."""

    id: int
    key: str
    name: str
    description: str
    rule: Rule
    summary: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    archived: bool
    size: int | None
    refreshed_at: datetime | None
    reference_at: datetime | None


class Preview(BaseModel):
    """What a rule selects now: its size and the first customer ids (sorted)."""

    size: int
    sample: list[str]
    summary: str
    reference_at: datetime


class Preset(BaseModel):
    key: str
    name: str
    description: str
    rule: Rule


class RefreshReport(BaseModel):
    """One segment's refresh: ``unchanged`` when its inputs were those of the last
    refresh, ``busy`` when another refresh held it, ``failed`` with the ``error``."""

    segment_id: int
    key: str
    status: RefreshStatus
    size: int | None
    added: int = 0
    removed: int = 0
    reference_at: datetime | None
    error: str | None = None


class RefreshSummary(BaseModel):
    refreshed: int
    unchanged: int
    busy: int
    failed: int
    segments: list[RefreshReport]


class MemberPage(BaseModel):
    """Customer external ids in order; pass ``next_after`` as ``after`` for the next page
    (null on the last page)."""

    items: list[str]
    next_after: str | None


class Membership(BaseModel):
    member: bool


class SizeOut(BaseModel):
    version: int
    measured_at: datetime
    reference_at: datetime
    size: int
    added: int
    removed: int
