"""Moderation contracts: verdicts, cases and their trail, queue figures, lexicon terms."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Label = Literal["pass", "review", "block"]
FinalLabel = Literal["pass", "block"]
CaseState = Literal["decided", "queued", "appealed"]
SubjectKind = Literal["post", "review", "comment"]
Level = Annotated[int, Field(ge=1, le=3)]
TermCategory = Literal["politics", "pornography", "violence", "gambling", "drugs", "ads",
                       "fraud", "abuse", "other", "allow"]
MAX_TEXT = 20_000
MAX_BATCH = 500
Reason = Annotated[str, Field(min_length=1, max_length=500)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CheckIn(_Input):
    text: Annotated[str, Field(max_length=MAX_TEXT)]


class BatchIn(_Input):
    texts: Annotated[list[Annotated[str, Field(max_length=MAX_TEXT)]],
                     Field(min_length=1, max_length=MAX_BATCH)]


class SubjectIn(BaseModel):
    """An arriving post, review or comment to check (``submitted_at`` defaults to now)."""

    subject_kind: SubjectKind
    subject_id: Annotated[str, Field(min_length=1, max_length=64)]
    text: Annotated[str, Field(max_length=MAX_TEXT * 5)]
    brand_id: int | None = None
    author_id: str | None = None
    submitted_at: datetime | None = None


class SpanOut(BaseModel):
    start: int
    end: int
    text: str
    category: str
    severity: int
    source: Literal["lexicon", "contact"]
    term: str = ""


class VerdictOut(BaseModel):
    """The automatic verdict on one text. ``level`` is the review queue a ``review`` goes
    to (1–3), ``offensive`` the classifier's P(offensive)."""

    label: Label
    level: int | None
    categories: list[str]
    spans: list[SpanOut]
    offensive: float
    reasons: list[str]


class BatchOut(BaseModel):
    verdicts: list[VerdictOut]


class ActionOut(BaseModel):
    at: datetime
    actor: str
    action: str
    level: int | None
    label: str | None
    reason: str


class CaseOut(BaseModel):
    id: int
    subject_kind: SubjectKind
    subject_id: str
    author_id: str | None
    text: str
    submitted_at: datetime
    auto_label: Label
    label: Label
    state: CaseState
    level: int | None
    due_at: datetime | None
    overdue: bool
    assignee: str | None
    categories: list[str]
    spans: list[SpanOut]
    offensive: float
    reasons: list[str]
    decided_at: datetime | None
    decided_by: str | None
    decision_reason: str | None
    appeals: int


class CaseDetail(CaseOut):
    actions: list[ActionOut]


class CasePage(BaseModel):
    items: list[CaseOut]
    total: int


class DecideIn(_Input):
    label: FinalLabel
    reason: Reason


class EscalateIn(_Input):
    reason: Reason


class AppealIn(_Input):
    reason: Reason


class AssignIn(_Input):
    assignee: Annotated[str, Field(min_length=1, max_length=64)]


class ClaimIn(_Input):
    level: Level | None = None
    skip: Annotated[list[Annotated[int, Field(ge=1)]], Field(max_length=100)] = Field(
        default_factory=list, description="cases not to hand out (just put back)")


class ModeratorFigures(BaseModel):
    moderator: str
    decisions: int
    active_hours: float
    per_hour: float
    median_handling_minutes: float | None


class LevelFigures(BaseModel):
    level: int
    waiting: int
    overdue: int
    oldest_waiting_minutes: float | None


class QueueFigures(BaseModel):
    """How moderation went over ``since``–``until`` (cases submitted in the window):
    the share decided without a human, time from submission to the final decision, how
    often a human changed an earlier decision, and each moderator's throughput."""

    since: datetime
    until: datetime
    submitted: int
    decided: int
    auto_decided: int
    auto_share: float | None
    blocked: int
    passed: int
    waiting: int
    p50_minutes: float | None
    p95_minutes: float | None
    human_p50_minutes: float | None
    human_p95_minutes: float | None
    within_sla_share: float | None
    appeals: int
    appeals_decided: int
    overturned: int
    overturn_rate: float | None
    escalations: int
    levels: list[LevelFigures]
    moderators: list[ModeratorFigures]


class TermIn(_Input):
    term: Annotated[str, Field(min_length=1, max_length=64)]
    category: TermCategory
    severity: Annotated[int, Field(ge=1, le=3)] = 1
    pinyin: bool = False
    note: Annotated[str, Field(max_length=200)] = ""


class TermOut(BaseModel):
    id: int
    term: str
    category: str
    severity: int
    pinyin: bool
    note: str
    created_by: str
    created_at: datetime


class LexiconOut(BaseModel):
    version: int
    default_terms: int
    custom_terms: int
    allow_phrases: int
    terms: list[TermOut]


class ImportReport(BaseModel):
    added: int
    skipped: int
    version: int


class SubmitReport(BaseModel):
    checked: int
    passed: int
    queued: int
    blocked: int
    skipped: int
