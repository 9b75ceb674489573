"""Crisis incident contracts: the incident shapes other domains and entrypoints see."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

ScopeKind = Literal["product", "brand", "topic"]
IncidentState = Literal["monitor", "assess", "respond", "review", "closed"]
Severity = Literal["low", "medium", "high"]
EventKind = Literal["opened", "burst", "state_changed", "owner_set", "note", "linked",
                    "report"]
SubjectKind = Literal["review", "post"]
Outcome = Literal["opened", "updated", "unchanged", "covered", "closed_before"]

OwnerName = Annotated[str, Field(min_length=1, max_length=64)]
Note = Annotated[str, Field(min_length=1, max_length=4000)]
LongText = Annotated[str, Field(min_length=1, max_length=20_000)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class DetectIn(_Input):
    """A detection run: texts up to ``as_of`` (default now); windows ending after
    ``since`` (default: 7 days before ``as_of``) are tested."""

    as_of: AwareDatetime | None = None
    since: AwareDatetime | None = None


class OwnerIn(_Input):
    """The person who owns the incident (a console user name); null releases it."""

    owner: OwnerName | None


class AdvanceIn(_Input):
    """Move an incident one step along monitor → assess → respond → review → closed."""

    to_state: IncidentState
    note: Note


class NoteIn(_Input):
    note: Note


class ReviewIn(_Input):
    """The operator's part of the post-incident review."""

    root_cause: LongText
    actions: LongText


class IncidentOut(BaseModel):
    """An incident: its scope, state, owner, 24-hour response SLA and the bursts behind
    it: ``window_*`` spans every burst it absorbed (its texts are linked), ``peak_*`` is
    the sharpest stretch of the strongest, which ``observed`` … ``z`` describe."""

    key: str
    scope_kind: ScopeKind
    scope_key: str
    scope_name: str
    brand_id: int | None
    state: IncidentState
    severity: Severity
    owner: str | None
    opened_at: datetime
    sla_due_at: datetime
    responded_at: datetime | None
    closed_at: datetime | None
    sla_breached: bool
    window_start: datetime
    window_end: datetime
    peak_start: datetime
    peak_end: datetime
    observed: int
    expected: float
    p_value: float
    z: float
    summary: str
    linked: int


class IncidentEventOut(BaseModel):
    at: datetime
    actor: str
    kind: EventKind
    from_state: IncidentState | None
    to_state: IncidentState | None
    note: str | None


class IncidentLinkOut(BaseModel):
    """A linked review or post: when it was written, an excerpt, its negative aspects."""

    subject_kind: SubjectKind
    subject_id: str
    created_at: datetime
    linked_at: datetime
    excerpt: str
    aspects: list[str]


class IncidentDetail(IncidentOut):
    timeline: list[IncidentEventOut]
    links: list[IncidentLinkOut]
    root_cause: str | None
    actions: str | None


class IncidentPage(BaseModel):
    total: int
    items: list[IncidentOut]


class DetectedBurst(BaseModel):
    """A burst found by a detection run and what became of it: ``window_*`` spans its
    flagged windows, ``peak_*`` is its sharpest stretch, which ``observed`` … ``z``
    describe."""

    scope_kind: ScopeKind
    scope_key: str
    scope_name: str
    channel: SubjectKind
    window_start: datetime
    window_end: datetime
    peak_start: datetime
    peak_end: datetime
    observed: int
    expected: float
    p_value: float
    z: float
    outcome: Outcome
    incident_key: str | None


class DetectionReport(BaseModel):
    as_of: datetime
    since: datetime
    negative_texts: int
    series: int
    bursts: list[DetectedBurst]
    opened: int
    updated: int


class CountRow(BaseModel):
    """An aspect, term or clause and in how many linked texts it is a complaint."""

    label: str
    name: str
    texts: int


class PeriodCounts(BaseModel):
    """The scope's negative texts in the window and in spans of equal length around it."""

    hours: int
    before: int
    during: int
    after: int
    after_complete: bool


class IncidentReport(BaseModel):
    """The post-incident review: generated figures plus the operator's root cause and
    actions."""

    incident: IncidentOut
    generated_at: datetime
    timeline: list[IncidentEventOut]
    sla_hours: int
    hours_to_respond: float | None
    sla_met: bool | None
    hours_open: float
    linked_reviews: int
    linked_posts: int
    top_aspects: list[CountRow]
    top_terms: list[CountRow]
    top_clauses: list[CountRow]
    counts: PeriodCounts
    root_cause: str | None
    actions: str | None
