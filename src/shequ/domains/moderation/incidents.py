"""Crisis response (SPEC M7.3): negative-sentiment bursts open incidents that move through
monitor → assess → respond → review → closed, with an owner, a timeline, linked reviews
and posts, a 24-hour response SLA and a post-incident review report (docs/crisis.md).

Detection (:func:`detect_bursts`) counts negative reviews and posts per hour for every
product, brand and topic (aspect), separately per channel (reviews, posts), and tests them
with :func:`shequ.stats.bursts.detect`; each channel's texts of any sentiment are its
exposure. It is idempotent: a scope has at most one incident that is not closed, which
absorbs every later burst of that scope; a burst overlapping a closed incident opens
nothing; a brand or topic burst that would be no burst without the texts of an incident
(open or closed) is reported as covered by it. Concurrent runs agree through the unique
``open_scope``.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shequ.core.clock import Clock
from shequ.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from shequ.core.permissions import CLI_PRINCIPAL, Principal
from shequ.domains.content import service as content
from shequ.domains.content.signal_schemas import NegativeText, SentimentSignal
from shequ.domains.moderation.incident_models import Incident, IncidentEvent, IncidentLink
from shequ.domains.moderation.incident_schemas import (
    AdvanceIn,
    CountRow,
    DetectedBurst,
    DetectIn,
    DetectionReport,
    IncidentDetail,
    IncidentEventOut,
    IncidentLinkOut,
    IncidentOut,
    IncidentPage,
    IncidentReport,
    IncidentState,
    NoteIn,
    OwnerIn,
    PeriodCounts,
    ReviewIn,
    ScopeKind,
)
from shequ.stats import bursts
from shequ.text.aspects import ASPECTS, AspectMention, aspect_mentions, score_mentions

__all__ = [
    "NEXT_STATE", "RESPONSE_SLA", "add_note", "advance", "detect_bursts", "get_incident",
    "incident_report", "list_incidents", "report_markdown", "set_owner", "write_review",
]

HOUR = timedelta(hours=1)
RESPONSE_SLA = timedelta(hours=24)
DEFAULT_LOOKBACK = timedelta(days=7)
MAX_PERIOD = timedelta(days=366)
CLOCK_SKEW = timedelta(minutes=5)
# A clause is a complaint when its sentiment (P(positive)) lies in the content domain's
# negative band, the threshold texts are judged by.
NEGATIVE_CLAUSE_BELOW = 0.4
DETECTOR = "detection"
NEXT_STATE: dict[str, IncidentState] = {
    "monitor": "assess", "assess": "respond", "respond": "review", "review": "closed"}
SCOPE_ORDER: tuple[ScopeKind, ...] = ("product", "brand", "topic")
EXCERPT = 200
CLAUSE_CHARS = 80
MAX_CLAUSES = 5
TOP = 10


# --- permissions and small helpers -----------------------------------------------------------


def _require(principal: Principal, permission: str) -> None:
    if not principal.can(permission):
        raise PermissionDenied("permission_denied", f"this needs the {permission} permission")


def _staff_only(principal: Principal) -> None:
    principal.refuse_if_partner("platform_wide_incidents", "incidents are run by the "
                                "platform's staff; partners may only read their brands'")


def _floor_hour(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _hours(delta: timedelta) -> float:
    return delta.total_seconds() / 3600


def _severity(observed: int, expected: float) -> str:
    """``high``: at least 15 texts and ten times the expectation; ``medium``: five times,
    or at least 10 texts; ``low`` otherwise."""
    ratio = observed / max(expected, 1e-9)
    if observed >= 15 and ratio >= 10:
        return "high"
    if ratio >= 5 or observed >= 10:
        return "medium"
    return "low"


SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2}


# --- the scopes of negative texts -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scope:
    kind: ScopeKind
    key: str
    name: str
    brand_id: int | None


@dataclass(slots=True)
class Complaints:
    """The negative aspects, their terms and the negative clauses of one text."""

    aspects: list[str] = field(default_factory=list)
    terms: list[str] = field(default_factory=list)
    clauses: list[str] = field(default_factory=list)


def _complaints(texts: Sequence[NegativeText]) -> list[Complaints]:
    """Per text, the aspects mentioned in clauses scoring in the negative band (one
    sentiment call for every clause)."""
    scored = score_mentions(aspect_mentions([t.text for t in texts]))
    found = []
    for per_text in scored:
        item = Complaints()
        for mention in per_text:
            if mention.score < NEGATIVE_CLAUSE_BELOW:
                _add(item, mention.mention)
        found.append(item)
    return found


def _add(item: Complaints, mention: AspectMention) -> None:
    if mention.aspect not in item.aspects:
        item.aspects.append(mention.aspect)
    if mention.term not in item.terms:
        item.terms.append(mention.term)
    clause = mention.clause[:CLAUSE_CHARS]
    if clause not in item.clauses and len(item.clauses) < MAX_CLAUSES:
        item.clauses.append(clause)


def _scopes_of(text: NegativeText, complaints: Complaints) -> list[Scope]:
    scopes = []
    if text.sku is not None:
        scopes.append(Scope("product", text.sku, text.product_name or text.sku, text.brand_id))
    if text.brand_external_id is not None:
        scopes.append(Scope("brand", text.brand_external_id,
                            text.brand_name or text.brand_external_id, text.brand_id))
    scopes.extend(Scope("topic", aspect, ASPECTS[aspect].name, None)
                  for aspect in complaints.aspects)
    return scopes


# --- detection ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Found:
    """A burst of one scope's texts in one channel, in time: ``start``/``end`` its span,
    ``peak_*`` its sharpest stretch."""

    scope: Scope
    channel: str
    start: datetime
    end: datetime
    peak_start: datetime
    peak_end: datetime
    burst: bursts.Burst


def _period(clock: Clock, data: DetectIn) -> tuple[datetime, datetime]:
    now = clock.now()
    as_of = data.as_of.astimezone(UTC) if data.as_of is not None else now
    if as_of > now + CLOCK_SKEW:
        raise ValidationFailed("as_of_in_future", "as_of lies in the future", "as_of")
    since = data.since.astimezone(UTC) if data.since is not None else as_of - DEFAULT_LOOKBACK
    if since >= as_of:
        raise ValidationFailed("empty_period", "since must lie before as_of", "since")
    if as_of - since > MAX_PERIOD:
        raise ValidationFailed("period_too_long", "at most 366 days are tested at once",
                               "since")
    return since, as_of


def _find(signal: SentimentSignal, grid_start: datetime, test_from: int,
          settings: bursts.BurstSettings
          ) -> tuple[list[Found], dict[Scope, list[int]], list[Complaints], int]:
    """Bursts of every (channel, scope) series, the texts of every scope (indexes into
    ``signal.negative``), the complaints per text and the number of series tested."""
    texts = signal.negative
    complaints = _complaints(texts)
    volume = {"review": np.asarray(signal.review_hours, dtype=np.float64),
              "post": np.asarray(signal.post_hours, dtype=np.float64)}
    size = volume["review"].size
    series: dict[tuple[str, Scope], np.ndarray] = {}
    members: dict[Scope, list[int]] = defaultdict(list)
    for index, (text, found) in enumerate(zip(texts, complaints, strict=True)):
        hour = int(_hours(text.created_at - grid_start))
        volume[text.kind][hour] -= 1  # exposure: the channel's other texts
        for scope in _scopes_of(text, found):
            counts = series.setdefault((text.kind, scope), np.zeros(size, dtype=np.int64))
            counts[hour] += 1
            members[scope].append(index)
    result = []
    for (channel, scope), counts in series.items():
        if counts[test_from:].sum() == 0 or counts.sum() < settings.min_count:
            continue
        for burst in bursts.detect(counts, test_from, settings, exposure=volume[channel]):
            result.append(Found(scope, channel, grid_start + burst.span_start * HOUR,
                                grid_start + burst.span_end * HOUR,
                                grid_start + burst.start * HOUR,
                                grid_start + burst.end * HOUR, burst))
    result.sort(key=lambda f: (SCOPE_ORDER.index(f.scope.kind), f.scope.key, f.start,
                               f.channel))
    return result, members, complaints, len(series)


def detect_bursts(session: Session, clock: Clock, data: DetectIn | None = None, *,
                  principal: Principal = CLI_PRINCIPAL,
                  settings: bursts.BurstSettings = bursts.DEFAULT_SETTINGS
                  ) -> DetectionReport:
    """Find negative-sentiment bursts in the windows ending in ``[since, as_of]`` and open,
    update or skip incidents for them (module docstring); platform-wide, staff only."""
    _require(principal, "moderation:write")
    _staff_only(principal)
    since, as_of = _period(clock, data or DetectIn())
    baseline = timedelta(hours=settings.baseline_hours)
    grid_start = _floor_hour(since) - baseline
    signal = content.sentiment_signal(session, grid_start, as_of)
    found, members, complaints, tested = _find(signal, grid_start, settings.baseline_hours,
                                               settings)
    texts = signal.negative
    report = []
    for item in found:
        inside = [i for i in members[item.scope]
                  if item.start <= texts[i].created_at < item.end]
        outcome, key = _apply(session, clock.now(), item,
                              [(texts[i], complaints[i]) for i in inside], settings)
        b = item.burst
        report.append(DetectedBurst(
            scope_kind=item.scope.kind, scope_key=item.scope.key, scope_name=item.scope.name,
            channel="review" if item.channel == "review" else "post",
            window_start=item.start, window_end=item.end, peak_start=item.peak_start,
            peak_end=item.peak_end, observed=b.observed,
            expected=round(b.expected, 4), p_value=b.p_value, z=round(b.z, 3),
            outcome=outcome, incident_key=key))
    return DetectionReport(as_of=as_of, since=since, negative_texts=len(texts), series=tested,
                           bursts=report,
                           opened=sum(1 for r in report if r.outcome == "opened"),
                           updated=sum(1 for r in report if r.outcome == "updated"))


def _summary(scope: Scope, observed: int, expected: float, start: datetime,
             end: datetime) -> str:
    return (f"{scope.name} ({scope.kind} {scope.key}): {observed} negative texts from "
            f"{start:%Y-%m-%d %H:00} to {end:%Y-%m-%d %H:00} UTC, {expected:.2f} expected")


def _burst_note(item: Found) -> str:
    b = item.burst
    return (f"{item.channel} burst {item.start:%Y-%m-%d %H:00}–{item.end:%Y-%m-%d %H:00} UTC, "
            f"sharpest {item.peak_start:%Y-%m-%d %H:00}–{item.peak_end:%Y-%m-%d %H:00}: "
            f"{b.observed} negative vs {b.expected:.2f} expected (p={b.p_value:.2g}, "
            f"z={b.z:.1f})")


def _open_incident(session: Session, scope: Scope) -> Incident | None:
    # Locks the row on PostgreSQL: concurrent detections absorb bursts one after another.
    return session.scalars(select(Incident).where(
        Incident.open_scope == f"{scope.kind}:{scope.key}").with_for_update()).first()


def _apply(session: Session, now: datetime, item: Found,
           texts: list[tuple[NegativeText, Complaints]],
           settings: bursts.BurstSettings) -> tuple[str, str | None]:
    """Open, update or skip the incident of ``item``'s scope; ``(outcome, incident key)``."""
    scope = item.scope
    incident = _open_incident(session, scope)
    if incident is None:
        closed = session.scalars(select(Incident).where(
            Incident.scope_kind == scope.kind, Incident.scope_key == scope.key,
            Incident.state == "closed", Incident.window_start <= item.end,
            Incident.window_end >= item.start).order_by(Incident.id)).first()
        if closed is not None:
            return "closed_before", closed.key
        if scope.kind != "product":
            covering = _covering(session, item, texts, settings)
            if covering is not None:
                _event_once(session, covering, now, "burst",
                            f"also on {scope.kind} {scope.key}: {_burst_note(item)}")
                return "covered", covering.key
        opened = _opened(session, now, item, texts)
        if opened is not None:
            return "opened", opened.key
        incident = _open_incident(session, scope)  # a concurrent run opened it first
        if incident is None:
            return "unchanged", None
    return ("updated" if _absorb(session, now, incident, item, texts) else "unchanged",
            incident.key)


def _covering(session: Session, item: Found, texts: list[tuple[NegativeText, Complaints]],
              settings: bursts.BurstSettings) -> Incident | None:
    """The incident (open or closed) holding most of the burst's peak texts, when the
    peak's other texts would not make a burst on their own: the burst is its echo."""
    keys = {(t.kind, t.external_id) for t, _ in texts
            if t.kind == item.channel and item.peak_start <= t.created_at < item.peak_end}
    if not keys:
        return None
    rows = session.execute(
        select(IncidentLink.incident_id, IncidentLink.subject_kind, IncidentLink.subject_id)
        .where(IncidentLink.subject_id.in_(sorted({k for _, k in keys})))).all()
    per: Counter[int] = Counter(i for i, kind, key in rows if (kind, key) in keys)
    if not per:
        return None
    best, count = min(per.items(), key=lambda kv: (-kv[1], kv[0]))
    rest = item.burst.observed - count
    if bursts.passes(rest, item.burst.expected, settings):
        return None
    return session.get(Incident, best)


def _opened(session: Session, now: datetime, item: Found,
            texts: list[tuple[NegativeText, Complaints]]) -> Incident | None:
    scope, b = item.scope, item.burst
    incident = Incident(
        key=f"{scope.kind}:{scope.key}:{item.start:%Y%m%d%H}", scope_kind=scope.kind,
        scope_key=scope.key, scope_name=scope.name, brand_id=scope.brand_id,
        open_scope=f"{scope.kind}:{scope.key}", state="monitor",
        severity=_severity(b.observed, b.expected), owner=None, opened_at=now,
        sla_due_at=now + RESPONSE_SLA, window_start=item.start, window_end=item.end,
        peak_start=item.peak_start, peak_end=item.peak_end,
        observed=b.observed, expected=b.expected, p_value=b.p_value, z=b.z,
        summary=_summary(scope, b.observed, b.expected, item.peak_start, item.peak_end),
        updated_at=now)
    try:
        with session.begin_nested():
            session.add(incident)
            session.flush()
    except IntegrityError:
        return None
    linked = _link(session, now, incident, texts)
    _event(session, incident, now, DETECTOR, "opened", to_state="monitor",
           note=f"{_burst_note(item)}; {linked} texts linked")
    return incident


def _absorb(session: Session, now: datetime, incident: Incident, item: Found,
            texts: list[tuple[NegativeText, Complaints]]) -> bool:
    b = item.burst
    start = min(incident.window_start, item.start)
    end = max(incident.window_end, item.end)
    widened = (start, end) != (incident.window_start, incident.window_end)
    incident.window_start, incident.window_end = start, end
    if b.p_value < incident.p_value:
        incident.observed, incident.expected = b.observed, b.expected
        incident.p_value, incident.z = b.p_value, b.z
        incident.peak_start, incident.peak_end = item.peak_start, item.peak_end
        incident.summary = _summary(item.scope, b.observed, b.expected, item.peak_start,
                                    item.peak_end)
    severity = _severity(b.observed, b.expected)
    if SEVERITY_RANK[severity] > SEVERITY_RANK[incident.severity]:
        incident.severity = severity
    linked = _link(session, now, incident, texts)
    if not widened and not linked:
        return False
    incident.updated_at = now
    _event(session, incident, now, DETECTOR, "burst",
           note=f"{_burst_note(item)}; {linked} new texts linked")
    return True


def _link(session: Session, now: datetime, incident: Incident,
          texts: Iterable[tuple[NegativeText, Complaints]]) -> int:
    """Link the texts not linked yet; a concurrent link of the same text is ignored."""
    known = set(session.execute(select(IncidentLink.subject_kind, IncidentLink.subject_id)
                                .where(IncidentLink.incident_id == incident.id)).tuples())
    rows = [{"incident_id": incident.id, "subject_kind": t.kind, "subject_id": t.external_id,
             "created_at": t.created_at, "linked_at": now, "excerpt": t.text[:EXCERPT],
             "aspects": c.aspects, "terms": c.terms, "clauses": c.clauses}
            for t, c in texts if (t.kind, t.external_id) not in known]
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    maker = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = maker(IncidentLink).on_conflict_do_nothing(
        index_elements=["incident_id", "subject_kind", "subject_id"])
    session.execute(statement, rows)
    return len(rows)


def _event(session: Session, incident: Incident, at: datetime, actor: str, kind: str, *,
           from_state: str | None = None, to_state: str | None = None,
           note: str | None = None) -> None:
    session.add(IncidentEvent(incident_id=incident.id, at=at, actor=actor[:64], kind=kind,
                              from_state=from_state, to_state=to_state, note=note))
    session.flush()


def _event_once(session: Session, incident: Incident, at: datetime, kind: str,
                note: str) -> None:
    seen = session.scalar(select(IncidentEvent.id).where(
        IncidentEvent.incident_id == incident.id, IncidentEvent.kind == kind,
        IncidentEvent.note == note))
    if seen is None:
        _event(session, incident, at, DETECTOR, kind, note=note)


# --- reading -------------------------------------------------------------------------------------


def _linked_counts(session: Session, ids: Sequence[int]) -> dict[int, int]:
    if not ids:
        return {}
    return dict(session.execute(
        select(IncidentLink.incident_id, func.count(IncidentLink.id))
        .where(IncidentLink.incident_id.in_(ids)).group_by(IncidentLink.incident_id)
    ).tuples().all())


def _out(incident: Incident, linked: int, now: datetime) -> IncidentOut:
    answered = incident.responded_at or now
    return IncidentOut(
        key=incident.key, scope_kind=incident.scope_kind,
        scope_key=incident.scope_key, scope_name=incident.scope_name,
        brand_id=incident.brand_id, state=incident.state,
        severity=incident.severity,
        owner=incident.owner, opened_at=incident.opened_at, sla_due_at=incident.sla_due_at,
        responded_at=incident.responded_at, closed_at=incident.closed_at,
        sla_breached=answered > incident.sla_due_at, window_start=incident.window_start,
        window_end=incident.window_end, peak_start=incident.peak_start,
        peak_end=incident.peak_end, observed=incident.observed,
        expected=incident.expected, p_value=incident.p_value, z=incident.z,
        summary=incident.summary, linked=linked)


def _visible(session: Session, principal: Principal, key: str, *,
             lock: bool = False) -> Incident:
    query = select(Incident).where(Incident.key == key)
    if lock:
        query = query.with_for_update()
    incident = session.scalars(query).first()
    if incident is None or (principal.brand_ids is not None
                            and not principal.sees_brand(incident.brand_id)):
        raise NotFound("incident_not_found", f"no incident {key!r}", "key")
    return incident


def list_incidents(session: Session, clock: Clock, *, principal: Principal = CLI_PRINCIPAL,
                   state: IncidentState | None = None, scope_kind: ScopeKind | None = None,
                   open_only: bool = False, limit: int = 50, offset: int = 0
                   ) -> IncidentPage:
    """Incidents newest first, filtered by state, scope kind or open (not closed); a
    partner sees its brands' product and brand incidents only."""
    _require(principal, "moderation:read")
    if not 1 <= limit <= 500:
        raise ValidationFailed("limit_out_of_range", "limit must be between 1 and 500",
                               "limit")
    if offset < 0:
        raise ValidationFailed("offset_negative", "offset may not be negative", "offset")
    query = select(Incident)
    if principal.brand_ids is not None:
        query = query.where(Incident.brand_id.in_(sorted(principal.brand_ids)))
    if state is not None:
        query = query.where(Incident.state == state)
    if scope_kind is not None:
        query = query.where(Incident.scope_kind == scope_kind)
    if open_only:
        query = query.where(Incident.state != "closed")
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = list(session.scalars(query.order_by(Incident.opened_at.desc(), Incident.id.desc())
                                .limit(limit).offset(offset)))
    counts = _linked_counts(session, [r.id for r in rows])
    now = clock.now()
    return IncidentPage(total=total, items=[_out(r, counts.get(r.id, 0), now) for r in rows])


def _timeline(session: Session, incident: Incident) -> list[IncidentEventOut]:
    return [IncidentEventOut(at=e.at, actor=e.actor, kind=e.kind,
                             from_state=e.from_state,
                             to_state=e.to_state, note=e.note)
            for e in session.scalars(select(IncidentEvent)
                                     .where(IncidentEvent.incident_id == incident.id)
                                     .order_by(IncidentEvent.at, IncidentEvent.id))]


def _links(session: Session, incident: Incident) -> list[IncidentLink]:
    return list(session.scalars(select(IncidentLink)
                                .where(IncidentLink.incident_id == incident.id)
                                .order_by(IncidentLink.created_at, IncidentLink.id)))


def _detail(session: Session, incident: Incident, now: datetime) -> IncidentDetail:
    links = _links(session, incident)
    return IncidentDetail(
        **_out(incident, len(links), now).model_dump(),
        timeline=_timeline(session, incident),
        links=[IncidentLinkOut(subject_kind=link.subject_kind,
                               subject_id=link.subject_id, created_at=link.created_at,
                               linked_at=link.linked_at, excerpt=link.excerpt,
                               aspects=list(link.aspects or [])) for link in links],
        root_cause=incident.root_cause, actions=incident.actions)


def get_incident(session: Session, clock: Clock, key: str, *,
                 principal: Principal = CLI_PRINCIPAL) -> IncidentDetail:
    """One incident with its timeline (oldest first) and linked texts."""
    _require(principal, "moderation:read")
    return _detail(session, _visible(session, principal, key), clock.now())


# --- the workflow ----------------------------------------------------------------------------


def _writable(session: Session, principal: Principal, key: str) -> Incident:
    _require(principal, "moderation:write")
    _staff_only(principal)
    return _visible(session, principal, key, lock=True)


def _refuse_closed(incident: Incident) -> None:
    if incident.state == "closed":
        raise Conflict("incident_closed", f"incident {incident.key!r} is closed", "key")


def set_owner(session: Session, clock: Clock, key: str, data: OwnerIn, *,
              principal: Principal = CLI_PRINCIPAL) -> IncidentDetail:
    """Give the incident an owner (or none); closed incidents keep theirs."""
    incident = _writable(session, principal, key)
    _refuse_closed(incident)
    now = clock.now()
    if data.owner != incident.owner:
        before = incident.owner
        incident.owner, incident.updated_at = data.owner, now
        _event(session, incident, now, principal.name, "owner_set",
               note=f"{before or '—'} → {data.owner or '—'}")
    return _detail(session, incident, now)


def advance(session: Session, clock: Clock, key: str, data: AdvanceIn, *,
            principal: Principal = CLI_PRINCIPAL) -> IncidentDetail:
    """Move the incident one step along monitor → assess → respond → review → closed, with
    a note. Entering ``respond`` stops the SLA clock; closing needs the written review
    (:func:`write_review`) and stores the report."""
    incident = _writable(session, principal, key)
    _refuse_closed(incident)
    wanted = NEXT_STATE[incident.state]
    if data.to_state != wanted:
        raise Conflict("illegal_transition", f"an incident in {incident.state} moves on to "
                       f"{wanted} only, not {data.to_state}", "to_state")
    if wanted == "closed" and not (incident.root_cause and incident.actions):
        raise Conflict("review_missing", "write the root cause and the actions of the "
                       "post-incident review before closing", "root_cause")
    now = clock.now()
    before = incident.state
    incident.state, incident.updated_at = wanted, now
    if wanted == "respond":
        incident.responded_at = now
    if wanted == "closed":
        incident.closed_at, incident.open_scope = now, None
    _event(session, incident, now, principal.name, "state_changed", from_state=before,
           to_state=wanted, note=data.note)
    if wanted == "closed":
        incident.report = _report(session, incident, now).model_dump(mode="json")
    return _detail(session, incident, now)


def add_note(session: Session, clock: Clock, key: str, data: NoteIn, *,
             principal: Principal = CLI_PRINCIPAL) -> IncidentDetail:
    """Add a note to the timeline (also after closing)."""
    incident = _writable(session, principal, key)
    now = clock.now()
    _event(session, incident, now, principal.name, "note", note=data.note)
    return _detail(session, incident, now)


def write_review(session: Session, clock: Clock, key: str, data: ReviewIn, *,
                 principal: Principal = CLI_PRINCIPAL) -> IncidentReport:
    """Write (or rewrite) the root cause and actions of an incident in ``review``."""
    incident = _writable(session, principal, key)
    if incident.state != "review":
        raise Conflict("not_in_review", f"incident {key!r} is in {incident.state}; the "
                       "post-incident review is written in the review state", "key")
    now = clock.now()
    incident.root_cause, incident.actions, incident.updated_at = (data.root_cause,
                                                                  data.actions, now)
    _event(session, incident, now, principal.name, "report",
           note="post-incident review written")
    return _report(session, incident, now)


# --- the post-incident review report ---------------------------------------------------------


def incident_report(session: Session, clock: Clock, key: str, *,
                    principal: Principal = CLI_PRINCIPAL) -> IncidentReport:
    """The post-incident review of an incident, generated from its data now (a closed
    incident's is the one stored when it closed)."""
    _require(principal, "moderation:read")
    incident = _visible(session, principal, key)
    if incident.state == "closed" and incident.report is not None:
        return IncidentReport.model_validate(incident.report)
    return _report(session, incident, clock.now())


def _top(counter: Counter[str], names: dict[str, str] | None = None) -> list[CountRow]:
    ranked = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]
    return [CountRow(label=label, name=(names or {}).get(label, label), texts=count)
            for label, count in ranked]


def _scope_counts(session: Session, incident: Incident, now: datetime) -> PeriodCounts:
    """Negative texts of the incident's scope in its window and in the spans of the same
    length just before and after it (the one after cut at ``now``)."""
    start = _floor_hour(incident.window_start)
    hours = max(1, math.ceil(_hours(incident.window_end - start)))
    span = timedelta(hours=hours)
    until = min(start + 2 * span, now)
    if until <= start - span:
        return PeriodCounts(hours=hours, before=0, during=0, after=0, after_complete=False)
    signal = content.sentiment_signal(session, start - span, until)
    texts = signal.negative
    scope = (incident.scope_kind, incident.scope_key)
    complaints = (_complaints(texts) if incident.scope_kind == "topic"
                  else [Complaints() for _ in texts])
    times = [t.created_at for t, c in zip(texts, complaints, strict=True)
             if scope in {(s.kind, s.key) for s in _scopes_of(t, c)}]
    return PeriodCounts(
        hours=hours, before=sum(1 for at in times if at < start),
        during=sum(1 for at in times if start <= at < start + span),
        after=sum(1 for at in times if at >= start + span),
        after_complete=start + 2 * span <= now)


def _report(session: Session, incident: Incident, now: datetime) -> IncidentReport:
    links = _links(session, incident)
    responded = incident.responded_at
    to_respond = None if responded is None else round(_hours(responded - incident.opened_at),
                                                      2)
    if responded is not None:
        sla_met: bool | None = responded <= incident.sla_due_at
    else:
        sla_met = None if now <= incident.sla_due_at else False
    aspects: Counter[str] = Counter()
    terms: Counter[str] = Counter()
    clauses: Counter[str] = Counter()
    for link in links:
        aspects.update(set(link.aspects or []))
        terms.update(set(link.terms or []))
        clauses.update(set(link.clauses or []))
    return IncidentReport(
        incident=_out(incident, len(links), now), generated_at=now,
        timeline=_timeline(session, incident), sla_hours=int(_hours(RESPONSE_SLA)),
        hours_to_respond=to_respond, sla_met=sla_met,
        hours_open=round(_hours((incident.closed_at or now) - incident.opened_at), 2),
        linked_reviews=sum(1 for link in links if link.subject_kind == "review"),
        linked_posts=sum(1 for link in links if link.subject_kind == "post"),
        top_aspects=_top(aspects, {key: a.name for key, a in ASPECTS.items()}),
        top_terms=_top(terms), top_clauses=_top(clauses),
        counts=_scope_counts(session, incident, now), root_cause=incident.root_cause,
        actions=incident.actions)


def _when(at: datetime | None) -> str:
    return "—" if at is None else f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def report_markdown(report: IncidentReport) -> str:
    """The post-incident review as a Markdown document."""
    inc = report.incident
    sla = ("met" if report.sla_met else "breached" if report.sla_met is False
           else "running")
    lines = [
        f"# Post-incident review: {inc.scope_name}", "",
        f"- Incident: `{inc.key}` ({inc.scope_kind} {inc.scope_key}), severity "
        f"**{inc.severity}**, state **{inc.state}**",
        f"- Owner: {inc.owner or '—'}",
        f"- Opened {_when(inc.opened_at)}; responded {_when(inc.responded_at)}; closed "
        f"{_when(inc.closed_at)}",
        f"- Response SLA {report.sla_hours} h (due {_when(inc.sla_due_at)}): **{sla}**"
        + ("" if report.hours_to_respond is None
           else f", responded after {report.hours_to_respond:.2f} h"),
        f"- Detected burst: {inc.observed} negative texts vs {inc.expected:.2f} expected "
        f"(p = {inc.p_value:.2g}, z = {inc.z:.1f}) from {_when(inc.peak_start)} to "
        f"{_when(inc.peak_end)}; texts linked from {_when(inc.window_start)} to "
        f"{_when(inc.window_end)}",
        f"- Linked texts: {report.linked_reviews} reviews, {report.linked_posts} posts",
        "", "## Negative texts around the window", "",
        f"| {report.counts.hours} h before | during | {report.counts.hours} h after |",
        "|---:|---:|---:|",
        f"| {report.counts.before} | {report.counts.during} | {report.counts.after}"
        f"{'' if report.counts.after_complete else ' (so far)'} |",
        "", "## Top complaints", "",
    ]
    for title, rows in (("Aspects", report.top_aspects), ("Terms", report.top_terms),
                        ("Clauses", report.top_clauses)):
        lines.append(f"**{title}:** " + ("; ".join(f"{r.name} ({r.texts})" for r in rows)
                                         or "—"))
        lines.append("")
    lines += ["## Root cause", "", report.root_cause or "_not written yet_", "",
              "## Actions", "", report.actions or "_not written yet_", "",
              "## Timeline", "", "| at | by | what | note |", "|---|---|---|---|"]
    for event in report.timeline:
        what = event.kind if event.to_state is None else (
            f"{event.kind}: {event.from_state or '—'} → {event.to_state}")
        note = (event.note or "").replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {_when(event.at)} | {event.actor} | {what} | {note} |")
    return "\n".join(lines) + "\n"

