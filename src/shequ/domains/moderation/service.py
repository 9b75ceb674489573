"""Moderation use cases (docs/moderation.md): verdicts on texts, the three-level review
queue with SLA timers, decisions, escalations and appeals with their audit trail, the
queue's figures, and the lexicon operators manage on top of the shipped one.

Other domains call :func:`submit` / :func:`submit_many` when a post, review or comment
arrives, and register with :func:`on_decision` to hear when a human decides, so this
module never imports them.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Select, func, insert, select
from sqlalchemy.orm import Session

from shequ.core.clock import Clock
from shequ.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from shequ.core.permissions import Principal
from shequ.domains.moderation.decisions import Verdict, verdicts
from shequ.domains.moderation.models import Case, CaseAction, LexiconTerm, LexiconVersion
from shequ.domains.moderation.schemas import (
    ActionOut,
    CaseDetail,
    CaseOut,
    CasePage,
    ImportReport,
    LevelFigures,
    LexiconOut,
    ModeratorFigures,
    QueueFigures,
    SpanOut,
    SubjectIn,
    SubmitReport,
    TermIn,
    TermOut,
    VerdictOut,
)
from shequ.text.lexicon import Lexicon, Term, term_key

# How long a queued case may wait at each level before it is overdue.
SLA_MINUTES = {1: 15, 2: 60, 3: 240}
MAX_APPEALS = 1
AUTO = "auto"
RELOAD_EVERY_S = 1.0  # how often a process looks for a new lexicon version
_INSERT_CHUNK = 2_000

Handler = Callable[[Session, dict[str, list[str]]], None]
_HANDLERS: dict[str, Handler] = {}


def on_decision(kind: str, handler: Handler) -> None:
    """Call ``handler(session, {label: [subject ids]})`` whenever subjects of ``kind``
    get a verdict or a human decision (in the same transaction)."""
    _HANDLERS[kind] = handler


def _notify(session: Session, kind: str, by_label: dict[str, list[str]]) -> None:
    handler = _HANDLERS.get(kind)
    if handler is not None and any(by_label.values()):
        handler(session, by_label)


# --- the lexicon in use: the shipped one plus the operators' terms ------------------------


class _RuntimeLexicon:
    """The process's lexicon; rebuilt when the version row changes (checked at most once
    per ``RELOAD_EVERY_S``), so a term added in the console reaches every API worker
    within about a second, without a restart."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._default: Lexicon | None = None
        self._lexicon: Lexicon | None = None
        self._version: tuple[int, str] | None = None
        self._checked = 0.0

    def default(self) -> Lexicon:
        with self._lock:
            if self._default is None:
                self._default = Lexicon.default()
            return self._default

    def get(self, session: Session, *, force: bool = False) -> Lexicon:
        now = time.monotonic()
        if not force and self._lexicon is not None and now - self._checked < RELOAD_EVERY_S:
            return self._lexicon
        version = _stamp(session)
        if self._lexicon is not None and version == self._version:
            self._checked = now
            return self._lexicon
        base = self.default()
        rows = session.execute(select(LexiconTerm)).scalars().all()
        terms = list(base.terms) + [Term(r.term, r.category, r.severity, pinyin=r.pinyin)
                                    for r in rows if r.category != "allow"]
        allow = list(base.allow) + [r.term for r in rows if r.category == "allow"]
        lexicon = Lexicon(terms, allow) if rows else base
        with self._lock:
            self._lexicon, self._version, self._checked = lexicon, version, now
        return lexicon


    def current(self, sessions: Callable[[], Session]) -> Lexicon:
        """``get`` for the real-time path: a database session is opened only when the
        version is due to be checked (about once a second), not on every request."""
        lexicon = self._lexicon
        if lexicon is not None and time.monotonic() - self._checked < RELOAD_EVERY_S:
            return lexicon
        with sessions() as session:
            return self.get(session)


LEXICON = _RuntimeLexicon()


def _stamp(session: Session) -> tuple[int, str]:
    found = session.execute(select(LexiconVersion.version, LexiconVersion.token)).first()
    return (0, "") if found is None else (int(found.version), str(found.token))


def _version(session: Session) -> int:
    return _stamp(session)[0]


def _bump(session: Session, clock: Clock) -> int:
    row = session.execute(select(LexiconVersion).with_for_update()).scalar()
    if row is None:
        row = LexiconVersion(id=1, version=0, token="", updated_at=clock.now())
        session.add(row)
    row.version += 1
    row.token = uuid.uuid4().hex
    row.updated_at = clock.now()
    session.flush()
    return row.version


# --- verdicts ------------------------------------------------------------------------------


def _verdict_out(verdict: Verdict) -> VerdictOut:
    return VerdictOut(label=verdict.label,
                      level=verdict.level, categories=verdict.categories,
                      spans=[SpanOut(**asdict(s)) for s in verdict.spans],
                      offensive=round(verdict.offensive, 4), reasons=verdict.reasons)


def check(session: Session, text: str) -> VerdictOut:
    """The verdict on one text; nothing is stored."""
    return check_batch(session, [text])[0]


def check_batch(session: Session, texts: Sequence[str]) -> list[VerdictOut]:
    """Verdicts on many texts, in order; nothing is stored."""
    return [_verdict_out(v) for v in verdicts(list(texts), LEXICON.get(session))]


def check_live(sessions: Callable[[], Session], texts: Sequence[str]) -> list[VerdictOut]:
    """``check_batch`` for the API's real-time path: no database session per request (the
    lexicon version is looked up at most once a second)."""
    return [_verdict_out(v) for v in verdicts(list(texts), LEXICON.current(sessions))]


# --- cases: submission on arrival ---------------------------------------------------------


def _due(at: datetime, level: int) -> datetime:
    return at + timedelta(minutes=SLA_MINUTES[level])


def submit(session: Session, now: datetime | None, item: SubjectIn) -> VerdictOut:
    """Check an arriving post, review or comment and open its case (idempotent: a subject
    already checked keeps its case, and its current label is returned)."""
    return _submit(session, now, [item])[1][0]


def submit_many(session: Session, now: datetime | None,
                items: Sequence[SubjectIn]) -> SubmitReport:
    """``submit`` for many subjects at once (bulk imports and the demo); subjects already
    checked are skipped."""
    report, _ = _submit(session, now, items)
    return report


def _submit(session: Session, now: datetime | None, items: Sequence[SubjectIn]
            ) -> tuple[SubmitReport, list[VerdictOut]]:
    by_kind: dict[str, set[str]] = defaultdict(set)
    for item in items:
        by_kind[item.subject_kind].add(item.subject_id)
    known: dict[tuple[str, str], Case] = {}
    for kind, ids in by_kind.items():
        for chunk in _chunks(sorted(ids), _INSERT_CHUNK):
            for row in session.execute(select(Case).where(
                    Case.subject_kind == kind, Case.subject_id.in_(chunk))).scalars():
                known[(row.subject_kind, row.subject_id)] = row
    fresh = [i for i in items if (i.subject_kind, i.subject_id) not in known]
    fresh = list({(i.subject_kind, i.subject_id): i for i in reversed(fresh)}.values())[::-1]
    found = dict(zip([(i.subject_kind, i.subject_id) for i in fresh],
                     verdicts([i.text for i in fresh], LEXICON.get(session, force=True)),
                     strict=True))
    now = now or datetime.now(UTC)
    cases, by_label = [], defaultdict(lambda: defaultdict(list))  # type: ignore[var-annotated]
    for item in fresh:
        verdict = found[(item.subject_kind, item.subject_id)]
        at = item.submitted_at or now
        decided = verdict.label != "review"
        cases.append({
            "subject_kind": item.subject_kind, "subject_id": item.subject_id,
            "brand_id": item.brand_id, "author_id": item.author_id, "text": item.text,
            "submitted_at": at, "auto_label": verdict.label, "label": verdict.label,
            "state": "decided" if decided else "queued", "level": verdict.level,
            "due_at": None if decided else _due(at, verdict.level or 1),
            "assignee": None, "assigned_at": None, "categories": verdict.categories,
            "spans": [asdict(s) for s in verdict.spans], "reasons": verdict.reasons,
            "offensive": round(verdict.offensive, 4),
            "decided_at": at if decided else None, "decided_by": AUTO if decided else None,
            "decided_level": None, "decision_reason": "; ".join(verdict.reasons) or None,
            "appeals": 0,
        })
        by_label[item.subject_kind][verdict.label].append(item.subject_id)
    for chunk in _chunks(cases, _INSERT_CHUNK):
        session.execute(insert(Case), chunk)
    if cases:
        _trail_new(session, fresh)
    for kind, labels in by_label.items():
        _notify(session, kind, {k: list(v) for k, v in labels.items()})
    outs = []
    for item in items:
        key = (item.subject_kind, item.subject_id)
        if key in found:
            outs.append(_verdict_out(found[key]))
        else:
            outs.append(_case_verdict(known[key]))
    counts = [c["label"] for c in cases]
    report = SubmitReport(checked=len(cases), passed=counts.count("pass"),
                          queued=counts.count("review"), blocked=counts.count("block"),
                          skipped=len(items) - len(cases))
    return report, outs


def _trail_new(session: Session, items: Sequence[SubjectIn]) -> None:
    ids: dict[tuple[str, str], tuple[int, str, int | None, datetime, str]] = {}
    for kind in {i.subject_kind for i in items}:
        wanted = [i.subject_id for i in items if i.subject_kind == kind]
        for chunk in _chunks(wanted, _INSERT_CHUNK):
            for row in session.execute(select(
                    Case.id, Case.subject_id, Case.label, Case.level, Case.submitted_at,
                    Case.reasons).where(Case.subject_kind == kind,
                                        Case.subject_id.in_(chunk))):
                ids[(kind, row.subject_id)] = (row.id, row.label, row.level, row.submitted_at,
                                               "; ".join(row.reasons))
    actions = []
    for (_, _), (case_id, label, level, at, reason) in ids.items():
        action = "queued" if label == "review" else "auto_decided"
        actions.append({"case_id": case_id, "at": at, "actor": AUTO, "action": action,
                        "level": level, "label": label, "reason": reason[:500]})
    for chunk in _chunks(actions, _INSERT_CHUNK):
        session.execute(insert(CaseAction), chunk)


def _chunks(values: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _case_verdict(row: Case) -> VerdictOut:
    return VerdictOut(label=row.label,
                      level=row.level, categories=list(row.categories),
                      spans=[SpanOut(**s) for s in row.spans], offensive=row.offensive,
                      reasons=list(row.reasons))


# --- reading cases ----------------------------------------------------------------------


def _case_out(row: Case, now: datetime) -> CaseOut:
    return CaseOut(
        id=row.id, subject_kind=row.subject_kind,
        subject_id=row.subject_id, author_id=row.author_id, text=row.text,
        submitted_at=row.submitted_at, auto_label=row.auto_label,
        label=row.label, state=row.state,
        level=row.level, due_at=row.due_at,
        overdue=row.state != "decided" and row.due_at is not None and row.due_at < now,
        assignee=row.assignee, categories=list(row.categories),
        spans=[SpanOut(**s) for s in row.spans], offensive=row.offensive,
        reasons=list(row.reasons), decided_at=row.decided_at, decided_by=row.decided_by,
        decision_reason=row.decision_reason, appeals=row.appeals)


def _visible(principal: Principal, query: Select[Any]) -> Select[Any]:
    if principal.brand_ids is not None:
        return query.where(Case.brand_id.in_(sorted(principal.brand_ids)))
    return query


def list_cases(session: Session, clock: Clock, principal: Principal, *,
               state: str | None = None, level: int | None = None, label: str | None = None,
               kind: str | None = None, assignee: str | None = None,
               overdue: bool | None = None, limit: int = 50, offset: int = 0) -> CasePage:
    """Cases, the waiting ones by how soon they fall due, the decided ones newest first."""
    now = clock.now()
    query = _visible(principal, select(Case))
    if state == "waiting":
        query = query.where(Case.state.in_(("queued", "appealed")))
    elif state is not None:
        query = query.where(Case.state == state)
    for column, value in ((Case.level, level), (Case.label, label),
                          (Case.subject_kind, kind), (Case.assignee, assignee)):
        if value is not None:
            query = query.where(column == value)
    if overdue is not None:
        late = (Case.state != "decided") & (Case.due_at < now)
        query = query.where(late if overdue else ~late)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    order = ((Case.due_at, Case.id) if state in ("queued", "appealed", "waiting")
             else (Case.submitted_at.desc(), Case.id.desc()))
    rows = session.execute(query.order_by(*order).limit(limit).offset(offset)).scalars()
    return CasePage(items=[_case_out(r, now) for r in rows], total=int(total))


def _load(session: Session, principal: Principal, case_id: int, *,
          lock: bool = False) -> Case:
    query = select(Case).where(Case.id == case_id)
    if lock:
        query = query.with_for_update()
    row = session.execute(query).scalar()
    if row is None or not principal.sees_brand(row.brand_id):
        raise NotFound("case_not_found", f"no moderation case {case_id}", "case_id")
    return row


def get_case(session: Session, clock: Clock, principal: Principal, case_id: int) -> CaseDetail:
    """A case with its whole audit trail, oldest step first."""
    row = _load(session, principal, case_id)
    actions = session.execute(select(CaseAction).where(CaseAction.case_id == case_id)
                              .order_by(CaseAction.at, CaseAction.id)).scalars()
    return CaseDetail(**_case_out(row, clock.now()).model_dump(), actions=[
        ActionOut(at=a.at, actor=a.actor, action=a.action, level=a.level, label=a.label,
                  reason=a.reason) for a in actions])


def case_of(session: Session, clock: Clock, principal: Principal, kind: str,
            subject_id: str) -> CaseDetail:
    """The case of one post, review or comment."""
    found = session.execute(select(Case.id).where(Case.subject_kind == kind,
                                                  Case.subject_id == subject_id)).scalar()
    if found is None:
        raise NotFound("case_not_found", f"no moderation case for {kind} {subject_id!r}",
                       "subject_id")
    return get_case(session, clock, principal, int(found))


# --- working the queue -------------------------------------------------------------------


def _act(session: Session, row: Case, at: datetime, actor: str, action: str,
         reason: str = "", label: str | None = None) -> None:
    session.add(CaseAction(case_id=row.id, at=at, actor=actor, action=action,
                           level=row.level, label=label, reason=reason[:500]))


def _waiting(row: Case) -> None:
    if row.state == "decided":
        raise Conflict("case_decided", f"case {row.id} is already decided ({row.label})",
                       "case_id")


def _moderator(principal: Principal) -> str:
    if not principal.can("moderation:write"):
        raise PermissionDenied("forbidden", "needs the moderation:write permission")
    return principal.name[:64]


def claim_next(session: Session, clock: Clock, principal: Principal,
               level: int | None = None, skip: Collection[int] = ()) -> CaseOut | None:
    """Assign the waiting case that falls due first (at ``level``, or any; never one of
    ``skip``, the cases the caller just put back) to the caller; a case already assigned
    to the caller comes first. None when the queue is empty.

    Two moderators claiming at once never get the same case: on PostgreSQL the candidate
    row is locked with ``SKIP LOCKED`` and re-checked; SQLite serialises writers.
    """
    who = _moderator(principal)
    now = clock.now()
    base = _visible(principal, select(Case).where(Case.state.in_(("queued", "appealed"))))
    if level is not None:
        base = base.where(Case.level == level)
    if skip:
        base = base.where(Case.id.not_in(sorted(skip)))
    mine = session.execute(base.where(Case.assignee == who)
                           .order_by(Case.due_at, Case.id).limit(1)).scalar()
    if mine is not None:
        return _case_out(mine, now)
    query = base.where(Case.assignee.is_(None)).order_by(Case.due_at, Case.id).limit(1)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    row = session.execute(query).scalar()
    if row is None:
        return None
    row.assignee, row.assigned_at = who, now
    _act(session, row, now, who, "assigned", f"claimed by {who}")
    session.flush()
    return _case_out(row, now)


def assign(session: Session, clock: Clock, principal: Principal, case_id: int,
           assignee: str) -> CaseOut:
    """Give a waiting case to a moderator (or take it back from one)."""
    who = _moderator(principal)
    row = _load(session, principal, case_id, lock=True)
    _waiting(row)
    now = clock.now()
    row.assignee, row.assigned_at = assignee, now
    _act(session, row, now, who, "assigned", f"assigned to {assignee}")
    session.flush()
    return _case_out(row, now)


def release(session: Session, clock: Clock, principal: Principal, case_id: int) -> CaseOut:
    """Put a waiting case back in the queue unassigned."""
    who = _moderator(principal)
    row = _load(session, principal, case_id, lock=True)
    _waiting(row)
    now = clock.now()
    row.assignee, row.assigned_at = None, None
    _act(session, row, now, who, "released")
    session.flush()
    return _case_out(row, now)


def decide(session: Session, clock: Clock, principal: Principal, case_id: int, label: str,
           reason: str) -> CaseOut:
    """A human's final decision (pass or block) on a waiting case, with the reason.

    The case row is locked, so of two moderators deciding at once exactly one succeeds;
    the other gets ``case_decided``. The subject (post, review, comment) follows the label.
    """
    who = _moderator(principal)
    if label not in ("pass", "block"):
        raise ValidationFailed("invalid_label", "must be 'pass' or 'block'", "label")
    row = _load(session, principal, case_id, lock=True)
    _waiting(row)
    now = clock.now()
    row.label, row.state = label, "decided"
    row.decided_at, row.decided_by, row.decided_level = now, who, row.level
    row.decision_reason = reason
    _act(session, row, now, who, "decided", reason, label)
    row.assignee = None
    session.flush()
    _notify(session, row.subject_kind, {label: [row.subject_id]})
    return _case_out(row, now)


def escalate(session: Session, clock: Clock, principal: Principal, case_id: int,
             reason: str) -> CaseOut:
    """Send a waiting case one level up (1 → 2 → 3), with a new SLA timer."""
    who = _moderator(principal)
    row = _load(session, principal, case_id, lock=True)
    _waiting(row)
    level = row.level or 1
    if level >= 3:
        raise Conflict("top_level", "level 3 is the last level: decide the case", "case_id")
    now = clock.now()
    row.level, row.due_at = level + 1, _due(now, level + 1)
    row.assignee, row.assigned_at = None, None
    _act(session, row, now, who, "escalated", reason)
    session.flush()
    return _case_out(row, now)


def appeal(session: Session, clock: Clock, principal: Principal, case_id: int,
           reason: str) -> CaseOut:
    """Appeal a block: the case re-opens at level 3 (once per case); until level 3
    decides, the block stands."""
    if not principal.can("moderation:write"):
        raise PermissionDenied("forbidden", "needs the moderation:write permission")
    row = _load(session, principal, case_id, lock=True)
    if row.appeals >= MAX_APPEALS:
        raise Conflict("appeal_used", f"case {case_id} was already appealed", "case_id")
    if row.state != "decided":
        raise Conflict("case_waiting", f"case {case_id} is still waiting for a decision",
                       "case_id")
    if row.label != "block":
        raise Conflict("not_blocked", f"only a block can be appealed; case {case_id} is "
                                      f"{row.label}", "case_id")
    now = clock.now()
    row.state, row.level, row.due_at = "appealed", 3, _due(now, 3)
    row.decided_at = None
    row.appeals += 1
    row.assignee, row.assigned_at = None, None
    _act(session, row, now, principal.name[:64], "appealed", reason)
    session.flush()
    return _case_out(row, now)


# --- figures ---------------------------------------------------------------------------------


def _quantile(values: list[float], q: float) -> float | None:
    return round(float(np.quantile(values, q)), 2) if values else None


def figures(session: Session, clock: Clock, principal: Principal, since: datetime,
            until: datetime) -> QueueFigures:
    """How moderation went for the cases submitted in ``[since, until)`` (docs/moderation.md
    defines each figure)."""
    if until <= since:
        raise ValidationFailed("invalid_window", "must end after it starts", "until")
    now = clock.now()
    rows = session.execute(_visible(principal, select(
        Case.id, Case.state, Case.label, Case.submitted_at, Case.decided_at, Case.decided_by,
        Case.due_at, Case.level)).where(Case.submitted_at >= since,
                                        Case.submitted_at < until)).all()
    decided = [r for r in rows if r.state == "decided"]
    auto = [r for r in decided if r.decided_by == AUTO]
    waits = [(r.decided_at - r.submitted_at).total_seconds() / 60 for r in decided]
    human = [r for r in decided if r.decided_by != AUTO]
    human_waits = [(r.decided_at - r.submitted_at).total_seconds() / 60 for r in human]
    in_sla = [r for r in human if r.due_at is not None and r.decided_at <= r.due_at]
    ids = [r.id for r in rows]
    trail: dict[int, list[Any]] = defaultdict(list)
    for chunk in _chunks(ids, _INSERT_CHUNK):
        for action in session.execute(select(
                CaseAction.case_id, CaseAction.action, CaseAction.actor, CaseAction.at,
                CaseAction.label).where(CaseAction.case_id.in_(chunk))
                .order_by(CaseAction.case_id, CaseAction.id)):
            trail[action.case_id].append(action)
    appeals = appeals_decided = overturned = escalations = 0
    per_mod: dict[str, list[datetime]] = defaultdict(list)
    handling: dict[str, list[float]] = defaultdict(list)
    for actions in trail.values():
        label, appealed, assigned = None, False, {}
        for a in actions:
            if a.action in ("auto_decided", "decided"):
                if appealed:
                    appeals_decided += 1
                    overturned += int(a.label != label)
                    appealed = False
                label = a.label
            if a.action == "appealed":
                appeals += 1
                appealed = True
            elif a.action == "escalated":
                escalations += 1
            elif a.action == "assigned":
                assigned[a.actor] = a.at
            if a.action == "decided":
                per_mod[a.actor].append(a.at)
                if a.actor in assigned:
                    handling[a.actor].append((a.at - assigned[a.actor]).total_seconds() / 60)
    moderators = []
    for who, stamps in sorted(per_mod.items()):
        hours = len({s.replace(minute=0, second=0, microsecond=0) for s in stamps})
        moderators.append(ModeratorFigures(
            moderator=who, decisions=len(stamps), active_hours=float(hours),
            per_hour=round(len(stamps) / hours, 2),
            median_handling_minutes=_quantile(handling[who], 0.5)))
    levels = []
    waiting_now = session.execute(_visible(principal, select(
        Case.level, Case.due_at, Case.submitted_at)).where(
            Case.state.in_(("queued", "appealed")))).all()
    for level in (1, 2, 3):
        at = [w for w in waiting_now if w.level == level]
        oldest = min((w.submitted_at for w in at), default=None)
        levels.append(LevelFigures(
            level=level, waiting=len(at),
            overdue=sum(1 for w in at if w.due_at is not None and w.due_at < now),
            oldest_waiting_minutes=None if oldest is None
            else round((now - oldest).total_seconds() / 60, 1)))
    return QueueFigures(
        since=since, until=until, submitted=len(rows), decided=len(decided),
        auto_decided=len(auto),
        auto_share=round(len(auto) / len(decided), 4) if decided else None,
        blocked=sum(1 for r in decided if r.label == "block"),
        passed=sum(1 for r in decided if r.label == "pass"),
        waiting=len(rows) - len(decided),
        p50_minutes=_quantile(waits, 0.5), p95_minutes=_quantile(waits, 0.95),
        human_p50_minutes=_quantile(human_waits, 0.5),
        human_p95_minutes=_quantile(human_waits, 0.95),
        within_sla_share=round(len(in_sla) / len(human), 4) if human else None,
        appeals=appeals, appeals_decided=appeals_decided, overturned=overturned,
        overturn_rate=round(overturned / appeals_decided, 4) if appeals_decided else None,
        escalations=escalations, levels=levels, moderators=moderators)


# --- the managed lexicon -------------------------------------------------------------------


def _term_out(row: LexiconTerm) -> TermOut:
    return TermOut(id=row.id, term=row.term, category=row.category, severity=row.severity,
                   pinyin=row.pinyin, note=row.note, created_by=row.created_by,
                   created_at=row.created_at)


def lexicon_summary(session: Session, principal: Principal) -> LexiconOut:
    """The operators' terms and allow-list phrases, newest first, and the version in use."""
    principal.refuse_if_partner("forbidden", "the lexicon is platform-wide")
    rows = session.execute(select(LexiconTerm).order_by(LexiconTerm.id.desc())).scalars().all()
    return LexiconOut(version=_version(session), default_terms=len(LEXICON.default()),
                      custom_terms=sum(1 for r in rows if r.category != "allow"),
                      allow_phrases=sum(1 for r in rows if r.category == "allow"),
                      terms=[_term_out(r) for r in rows])


def _key(term: str) -> str:
    key = term_key(term)
    if not key:
        raise ValidationFailed("invalid_term", "has no letters or characters left after "
                               "normalisation", "term")
    return key


def add_term(session: Session, clock: Clock, principal: Principal, data: TermIn) -> TermOut:
    """Add a term (or an allow-list phrase); every process picks it up within a second."""
    principal.refuse_if_partner("forbidden", "the lexicon is platform-wide")
    key = _key(data.term)
    taken = session.execute(select(LexiconTerm).where(LexiconTerm.term_key == key)).scalar()
    if taken is not None:
        raise Conflict("term_exists", f"{data.term!r} matches the same texts as "
                                      f"{taken.term!r} (id {taken.id})", "term")
    row = LexiconTerm(term=data.term, term_key=key, category=data.category,
                      severity=data.severity, pinyin=data.pinyin, note=data.note,
                      created_by=principal.name[:64], created_at=clock.now())
    session.add(row)
    session.flush()
    _bump(session, clock)
    return _term_out(row)


def delete_term(session: Session, clock: Clock, principal: Principal, term_id: int) -> None:
    """Remove an operator's term or allow-list phrase."""
    principal.refuse_if_partner("forbidden", "the lexicon is platform-wide")
    row = session.get(LexiconTerm, term_id)
    if row is None:
        raise NotFound("term_not_found", f"no lexicon term {term_id}", "term_id")
    session.delete(row)
    session.flush()
    _bump(session, clock)


def import_terms(session: Session, clock: Clock, principal: Principal,
                 terms: Sequence[TermIn]) -> ImportReport:
    """Add many terms at once (all or nothing); terms already present are skipped."""
    principal.refuse_if_partner("forbidden", "the lexicon is platform-wide")
    keys = {r for (r,) in session.execute(select(LexiconTerm.term_key))}
    added = skipped = 0
    now = clock.now()
    for number, data in enumerate(terms, start=1):
        try:
            key = _key(data.term)
        except ValidationFailed as exc:
            raise ValidationFailed(exc.code, f"row {number}: {exc.detail}", "term") from exc
        if key in keys:
            skipped += 1
            continue
        keys.add(key)
        session.add(LexiconTerm(term=data.term, term_key=key, category=data.category,
                                severity=data.severity, pinyin=data.pinyin, note=data.note,
                                created_by=principal.name[:64], created_at=now))
        added += 1
    session.flush()
    version = _bump(session, clock) if added else _version(session)
    return ImportReport(added=added, skipped=skipped, version=version)


def reset_subject_statuses(session: Session) -> None:
    """Tell every registered domain the current label of each of its subjects (used after
    a bulk load replaced the subjects' rows)."""
    for kind in _HANDLERS:
        by_label: dict[str, list[str]] = defaultdict(list)
        for subject_id, label in session.execute(select(Case.subject_id, Case.label).where(
                Case.subject_kind == kind, Case.label != "pass")):
            by_label[label].append(subject_id)
        _notify(session, kind, dict(by_label))


__all__ = [
    "LEXICON",
    "SLA_MINUTES",
    "add_term",
    "appeal",
    "assign",
    "case_of",
    "check",
    "check_batch",
    "check_live",
    "claim_next",
    "decide",
    "delete_term",
    "escalate",
    "figures",
    "get_case",
    "import_terms",
    "lexicon_summary",
    "list_cases",
    "on_decision",
    "release",
    "reset_subject_statuses",
    "submit",
    "submit_many",
]
