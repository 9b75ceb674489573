"""Segment use cases: saved rules, their members in the event store, size history,
incremental refresh, member lookups and CSV export (docs/segments.md).

The members of a segment live in the event store's ``segment_members`` (keyed by the
segment's ``key``), where the analytics segment filter reads them; the OLTP ``segments``
row keeps the rule, the size measured by the last refresh and the fingerprint of that
refresh's inputs. Opening a segment reads the stored size, never recomputes it.

A refresh is claimed by a conditional UPDATE (``refresh_token``), so two refreshes of one
segment never interleave; it writes only the difference between the new member set and
the stored one, and records one ``segment_sizes`` row per completed refresh (unique per
version). A refresh whose inputs (events, identity links, customer dimensions, reference
time, rule) are those of the last one is skipped: nothing can have changed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import ibis
import pyarrow as pa
from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shequ.analytics import segments as rules
from shequ.analytics.store import EventStore
from shequ.core.db import transaction
from shequ.core.errors import Conflict, ShequError, ValidationFailed, not_found
from shequ.core.permissions import Principal
from shequ.core.web import Services
from shequ.domains.events.service import event_store
from shequ.domains.segments.models import Segment, SegmentSize
from shequ.domains.segments.schemas import (
    SAMPLE_SIZE,
    MemberPage,
    Preset,
    Preview,
    RefreshReport,
    RefreshStatus,
    RefreshSummary,
    SegmentIn,
    SegmentOut,
    SegmentPatch,
    SizeOut,
)

__all__ = [
    "EXPORT_COLUMNS", "Inputs", "archive", "create_segment", "delete_segment", "export_csv",
    "get_segment", "history", "is_member", "key_exists", "list_segments", "measure_inputs",
    "members", "presets", "preview", "reference_time", "refresh", "refresh_all", "refresh_due",
    "update_segment",
]

EXPORT_COLUMNS = ("customer_id", "city", "rfm_group", "value_tier", "lifecycle_stage",
                  "member_tier")
EXPORT_PAGE = 50_000
MAX_PAGE = 10_000
HISTORY_LIMIT = 1_000
# A refresh that has not reported back for this long died; another may take it over.
STALE_CLAIM = timedelta(minutes=30)
# Rule edits that land while a refresh runs are picked up by that refresh, at most this
# many times (an editor that never stops cannot keep one refresh forever).
MAX_RULE_RETRIES = 3
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
ProgressFn = Callable[[int, int, RefreshReport], None]


# --- guards and lookups ------------------------------------------------------------------

def _staff_only(principal: Principal) -> None:
    principal.refuse_if_partner("platform_wide_segments", "segments group customers of "
                                "every brand; partners cannot see or change them")


def _segment(session: Session, segment_id: int, *, lock: bool = False) -> Segment:
    query = select(Segment).where(Segment.id == segment_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    found = session.scalar(query)
    if found is None:
        raise not_found("segment", segment_id)
    return found


def _active(segment: Segment) -> None:
    if segment.archived:
        raise Conflict("segment_archived", f"segment {segment.id} is archived; unarchive it "
                       "(archived: false) to use its members", "archived")


def _parsed(raw: dict[str, Any], attr: str = "rule") -> rules.Rule:
    """The parsed rule; the language names the faulty part (``rule.all[1].within_days``)."""
    try:
        return rules.parse_rule(raw)
    except ValidationFailed as exc:
        if exc.attr is None:
            raise ValidationFailed(exc.code, exc.detail, attr) from exc
        raise


def _normalised(raw: dict[str, Any]) -> dict[str, Any]:
    return dict(rules.rule_to_json(_parsed(raw)))


def _summary(rule: dict[str, Any]) -> str:
    """The rule in words; a stored rule the language no longer accepts says why, so the
    segment can still be listed and fixed."""
    try:
        return rules.describe(rules.parse_rule(rule))
    except ValidationFailed as exc:
        return f"无效规则 ({exc})"


def _out(segment: Segment) -> SegmentOut:
    return SegmentOut(
        id=segment.id, key=segment.key, name=segment.name, description=segment.description,
        rule=segment.rule, summary=_summary(segment.rule),
        created_by=segment.created_by, created_at=segment.created_at,
        updated_at=segment.updated_at, archived=segment.archived, size=segment.size,
        refreshed_at=segment.refreshed_at, reference_at=segment.reference_at)


def _key_for(name: str) -> str:
    """A slug of an ASCII name, else ``seg-`` and 10 hex digits of the name's digest (so
    the same name always proposes the same key)."""
    slug = _NOT_SLUG.sub("-", name.lower()).strip("-")[:64].strip("-")
    if name.isascii() and slug:
        return slug
    return "seg-" + hashlib.sha256(name.encode()).hexdigest()[:10]


def _clear_members(store: EventStore, key: str) -> None:
    # The key matches ^[a-z0-9][a-z0-9_-]*$ (schema and _key_for), so it is safe to inline.
    store.replace_rows("segment_members", pa.table({"segment": pa.array([], pa.string()),
                                                    "customer_id": pa.array([], pa.string())}),
                       where=f"segment = '{key}'")


# --- inputs and reference time -----------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Inputs:
    """What a member set depends on besides its rule: the reference time of the windows
    and a digest of the event store's inputs to rules."""

    reference: datetime
    digest: str

    def fingerprint(self, rule: dict[str, Any]) -> str:
        """The fingerprint of a refresh of ``rule`` on these inputs."""
        canonical = json.dumps(rule, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(f"{self.digest}|{canonical}".encode()).hexdigest()


def _event_bounds(store: EventStore) -> tuple[int, datetime | None]:
    events = store.table("events")
    count = int(store.to_arrow(events.count()).as_py())
    # Not max(ts): ibis types it as non-null like ts, which an empty table breaks.
    latest = store.to_arrow(events.select("ts").order_by(ibis.desc("ts")).limit(1))
    return count, (latest["ts"][0].as_py() if latest.num_rows else None)


def reference_time(services: Services) -> datetime:
    """The end of the data: the latest event's time, or now when that is later than now
    or there are no events. Rule windows (``within_days``) end here."""
    now = services.clock.now()
    _count, last = _event_bounds(event_store(services))
    return now if last is None else min(now, last)


def measure_inputs(services: Services) -> Inputs:
    """The reference time and a digest of every input a rule reads: the count and latest
    time of the events, the identity links, and the full content of ``dim_customers`` and
    ``dim_customer_tags`` (so a changed RFM group or tag is seen)."""
    store = event_store(services)
    count, last = _event_bounds(store)
    now = services.clock.now()
    reference = now if last is None else min(now, last)
    links = int(store.to_arrow(store.table("identity_links").count()).as_py())
    customers = store.table("dim_customers").order_by("customer_id")
    tags = store.table("dim_customer_tags").order_by(["customer_id", "kind", "value"])
    parts = [str(count), "" if last is None else last.isoformat(), str(links),
             store.digest(customers), store.digest(tags), reference.isoformat()]
    return Inputs(reference, hashlib.sha256("|".join(parts).encode()).hexdigest())


# --- saved segments ----------------------------------------------------------------------

def _save(session: Session, segment: Segment) -> None:
    try:
        with session.begin_nested():
            session.add(segment)
            session.flush()
    except IntegrityError as exc:  # a concurrent request took the key first
        raise Conflict("segment_key_taken", f"a segment with key {segment.key!r} exists",
                       "key") from exc


def create_segment(services: Services, principal: Principal, data: SegmentIn) -> SegmentOut:
    """Save a segment (the rule is validated first) and compute its members."""
    _staff_only(principal)
    rule = _normalised(data.rule)
    key = data.key or _key_for(data.name)
    now = services.clock.now()
    with transaction(services.sessions, principal.actor, services.clock) as session:
        if session.scalar(select(Segment.id).where(Segment.key == key)) is not None:
            raise Conflict("segment_key_taken", f"a segment with key {key!r} exists", "key")
        segment = Segment(key=key, name=data.name, description=data.description, rule=rule,
                          rule_revision=1, created_by=principal.actor, created_at=now,
                          updated_at=now, archived=False, version=0)
        _save(session, segment)
        segment_id = segment.id
    refresh(services, segment_id)
    return get_segment(services, principal, segment_id)


def update_segment(services: Services, principal: Principal, segment_id: int,
                   patch: SegmentPatch) -> SegmentOut:
    """Change the fields ``patch`` sends. A new rule recomputes the members (a refresh
    running meanwhile picks the new rule up); archiving removes the members from the event
    store, unarchiving computes them again."""
    _staff_only(principal)
    changes = patch.model_dump(exclude_unset=True)
    for name in ("name", "rule", "archived"):
        if name in changes and changes[name] is None:
            raise ValidationFailed("null_not_allowed", f"{name} cannot be null", name)
    rule = _normalised(changes["rule"]) if "rule" in changes else None
    with transaction(services.sessions, principal.actor, services.clock) as session:
        segment = _segment(session, segment_id, lock=True)
        if "name" in changes:
            segment.name = changes["name"]
        if changes.get("description") is not None:
            segment.description = changes["description"]
        if rule is not None and rule != segment.rule:
            segment.rule = rule
            segment.rule_revision += 1
            segment.inputs_fingerprint = None
        archived = changes.get("archived", segment.archived)
        if archived != segment.archived:
            segment.archived = archived
            segment.inputs_fingerprint = None
            if archived:
                segment.size = 0
        needs_refresh = segment.inputs_fingerprint is None and not segment.archived
        if session.is_modified(segment):
            segment.updated_at = services.clock.now()
        session.flush()
        if segment.archived:
            _clear_members(event_store(services), segment.key)
    if needs_refresh:
        refresh(services, segment_id)
    return get_segment(services, principal, segment_id)


def archive(services: Services, principal: Principal, segment_id: int) -> SegmentOut:
    """Archive a segment: its members leave the event store, its history stays."""
    return update_segment(services, principal, segment_id, SegmentPatch(archived=True))


def delete_segment(services: Services, principal: Principal, segment_id: int) -> None:
    """Delete a segment, its size history and its members in the event store (the OLTP
    rows are only committed once the members are gone)."""
    _staff_only(principal)
    with transaction(services.sessions, principal.actor, services.clock) as session:
        segment = _segment(session, segment_id, lock=True)
        key = segment.key
        session.execute(delete(SegmentSize).where(SegmentSize.segment_id == segment_id))
        session.delete(segment)
        session.flush()
        _clear_members(event_store(services), key)


def get_segment(services: Services, principal: Principal, segment_id: int) -> SegmentOut:
    """One segment with its stored size."""
    _staff_only(principal)
    with transaction(services.sessions) as session:
        return _out(_segment(session, segment_id))


def list_segments(services: Services, principal: Principal, *,
                  archived: bool | None = False) -> list[SegmentOut]:
    """The segments by id (active ones by default; ``archived=None`` for all)."""
    _staff_only(principal)
    query = select(Segment).order_by(Segment.id)
    if archived is not None:
        query = query.where(Segment.archived.is_(archived))
    with transaction(services.sessions) as session:
        return [_out(segment) for segment in session.scalars(query)]


def presets(principal: Principal) -> list[Preset]:
    """The ready-made rules an operator can start from."""
    _staff_only(principal)
    return [Preset(key=key, name=value["name"], description=value["description"],
                   rule=value["rule"]) for key, value in rules.PRESETS.items()]


def preview(services: Services, principal: Principal, raw: dict[str, Any]) -> Preview:
    """What ``raw`` selects now, without saving: its size and the first customer ids."""
    _staff_only(principal)
    rule = _parsed(raw)
    store = event_store(services)
    reference = reference_time(services)
    ids = rules.compile_rule(store, rule, reference=reference).select("customer_id").distinct()
    sample = store.to_arrow(ids.order_by("customer_id").limit(SAMPLE_SIZE))
    return Preview(size=rules.count(store, rule, reference=reference),
                   sample=[str(v) for v in sample["customer_id"].to_pylist()],
                   summary=rules.describe(rule), reference_at=reference)


# --- refresh -------------------------------------------------------------------------------

def _claim(services: Services, segment_id: int) -> str | None:
    """Take the refresh of a segment; None when another refresh holds it."""
    token = uuid.uuid4().hex
    now = services.clock.now()
    with transaction(services.sessions) as session:
        claimed = session.execute(
            update(Segment).where(Segment.id == segment_id, Segment.archived.is_(False),
                                  or_(Segment.refresh_token.is_(None),
                                      Segment.refresh_claimed_at < now - STALE_CLAIM))
            .values(refresh_token=token, refresh_claimed_at=now)
            .execution_options(synchronize_session=False))
        return token if claimed.rowcount == 1 else None  # type: ignore[attr-defined]


def _release(services: Services, segment_id: int, token: str) -> None:
    with transaction(services.sessions) as session:
        session.execute(update(Segment).where(Segment.id == segment_id,
                                              Segment.refresh_token == token)
                        .values(refresh_token=None, refresh_claimed_at=None)
                        .execution_options(synchronize_session=False))


@dataclass(frozen=True, slots=True)
class _Measured:
    size: int
    added: int
    removed: int


def _finish(services: Services, segment_id: int, token: str, revision: int,
            inputs: Inputs, rule: dict[str, Any], measured: _Measured) -> bool:
    """Record a completed refresh if this refresh still holds the segment and its rule is
    the one evaluated; one size-history row per version."""
    now = services.clock.now()
    with transaction(services.sessions) as session:
        version = session.scalar(select(Segment.version).where(
            Segment.id == segment_id, Segment.refresh_token == token,
            Segment.rule_revision == revision, Segment.archived.is_(False)).with_for_update())
        if version is None:
            return False
        session.execute(
            update(Segment).where(Segment.id == segment_id, Segment.refresh_token == token)
            .values(size=measured.size, refreshed_at=now, reference_at=inputs.reference,
                    inputs_fingerprint=inputs.fingerprint(rule), version=version + 1,
                    refresh_token=None, refresh_claimed_at=None)
            .execution_options(synchronize_session=False))
        session.add(SegmentSize(segment_id=segment_id, version=version + 1, measured_at=now,
                                reference_at=inputs.reference, size=measured.size,
                                added=measured.added, removed=measured.removed))
    return True


def _report(segment: Segment, status: RefreshStatus, measured: _Measured | None = None,
            error: str | None = None) -> RefreshReport:
    return RefreshReport(segment_id=segment.id, key=segment.key, status=status,
                         size=measured.size if measured else segment.size,
                         added=measured.added if measured else 0,
                         removed=measured.removed if measured else 0,
                         reference_at=segment.reference_at, error=error)


def _snapshot(services: Services, segment_id: int) -> Segment | None:
    with transaction(services.sessions) as session:
        found = session.get(Segment, segment_id)
        if found is not None:
            session.expunge(found)
        return found


def _sync(services: Services, segment: Segment, inputs: Inputs) -> _Measured:
    store = event_store(services)
    rule = rules.parse_rule(segment.rule)
    ids = rules.compile_rule(store, rule, reference=inputs.reference)
    found = store.to_arrow(ids.select(ids.customer_id.cast("string")).distinct())
    added, removed = store.sync_members(segment.key, found)
    return _Measured(found.num_rows, added, removed)


def refresh(services: Services, segment_id: int, *, principal: Principal | None = None,
            inputs: Inputs | None = None, force: bool = False) -> RefreshReport:
    """Bring a segment's members up to date and record its size.

    ``unchanged`` (nothing written) when the inputs and rule are those of the last refresh,
    unless ``force``; ``busy`` when another refresh holds the segment. Otherwise only the
    members who left are deleted and the new ones inserted, and one ``segment_sizes`` row
    records size, added and removed. ``inputs`` lets a batch measure them once;
    ``principal`` is the caller of a requested refresh (None: the scheduler).
    """
    if principal is not None:
        _staff_only(principal)
    current = _snapshot(services, segment_id)
    if current is None:
        raise not_found("segment", segment_id)
    _active(current)
    inputs = inputs or measure_inputs(services)
    if not force and current.inputs_fingerprint == inputs.fingerprint(current.rule):
        return _report(current, "unchanged")
    token = _claim(services, segment_id)
    if token is None:
        return _report(current, "busy")
    try:
        claimed = _snapshot(services, segment_id)
        if claimed is None:
            raise not_found("segment", segment_id)
        if not force and claimed.inputs_fingerprint == inputs.fingerprint(claimed.rule):
            return _report(claimed, "unchanged")  # a refresh that ended meanwhile did it
        current = claimed
        for _attempt in range(MAX_RULE_RETRIES):
            measured = _sync(services, current, inputs)
            if _finish(services, segment_id, token, current.rule_revision, inputs,
                       current.rule, measured):
                done = _snapshot(services, segment_id)
                return _report(done or current, "refreshed", measured)
            latest = _snapshot(services, segment_id)
            if latest is None or latest.archived:  # deleted or archived meanwhile
                _clear_members(event_store(services), current.key)
                return _report(current, "busy")
            if latest.refresh_token != token:  # taken over as stale
                return _report(latest, "busy")
            current = latest  # the rule changed while we ran: evaluate the new one
        return _report(current, "busy")
    finally:
        _release(services, segment_id, token)


def refresh_all(services: Services, *, force: bool = False,
                on_progress: ProgressFn | None = None) -> RefreshSummary:
    """Refresh every active segment (inputs measured once); one segment's failure (say a
    stored rule the language no longer accepts) is reported and does not stop the rest.
    ``on_progress(done, total, report)`` follows each segment."""
    with transaction(services.sessions) as session:
        active = list(session.execute(select(Segment.id, Segment.key).where(
            Segment.archived.is_(False)).order_by(Segment.id)).tuples())
    inputs = measure_inputs(services) if active else None
    reports: list[RefreshReport] = []
    for done, (segment_id, key) in enumerate(active, start=1):
        try:
            report = refresh(services, segment_id, inputs=inputs, force=force)
        except ShequError as exc:
            report = RefreshReport(segment_id=segment_id, key=key, status="failed", size=None,
                                   reference_at=None, error=str(exc))
        reports.append(report)
        if on_progress is not None:
            on_progress(done, len(active), report)
    return RefreshSummary(
        refreshed=sum(r.status == "refreshed" for r in reports),
        unchanged=sum(r.status == "unchanged" for r in reports),
        busy=sum(r.status == "busy" for r in reports),
        failed=sum(r.status == "failed" for r in reports), segments=reports)


def refresh_due(services: Services, *, on_progress: ProgressFn | None = None
                ) -> RefreshSummary:
    """The scheduled (hourly) refresh: every active segment whose inputs changed."""
    return refresh_all(services, on_progress=on_progress)


# --- members -------------------------------------------------------------------------------

def _active_key(services: Services, principal: Principal, segment_id: int) -> str:
    _staff_only(principal)
    with transaction(services.sessions) as session:
        segment = _segment(session, segment_id)
        _active(segment)
        return segment.key


def members(services: Services, principal: Principal, segment_id: int, *,
            after: str | None = None, limit: int = 100) -> MemberPage:
    """Members in customer-id order after ``after`` (keyset paging: each page costs the
    same however deep, over the primary key of ``segment_members``)."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationFailed("bad_limit", f"limit is 1 to {MAX_PAGE}, got {limit}", "limit")
    key = _active_key(services, principal, segment_id)
    store = event_store(services)
    table = store.table("segment_members")
    query = table.filter(table.segment == key)
    if after is not None:
        query = query.filter(table.customer_id > after)
    found = store.to_arrow(query.select("customer_id").order_by("customer_id")
                           .limit(limit + 1))["customer_id"].to_pylist()
    items = [str(v) for v in found[:limit]]
    return MemberPage(items=items, next_after=items[-1] if len(found) > limit else None)


def is_member(services: Services, principal: Principal, segment_id: int,
              customer_external_id: str) -> bool:
    """Whether the customer was in the segment at its last refresh."""
    key = _active_key(services, principal, segment_id)
    store = event_store(services)
    table = store.table("segment_members")
    hits = store.to_arrow(table.filter(table.segment == key,
                                       table.customer_id == customer_external_id).count())
    return int(hits.as_py()) > 0


def export_csv(services: Services, principal: Principal, segment_id: int
               ) -> tuple[str, Iterator[str]]:
    """The file name and the CSV text (UTF-8 with a BOM, for Excel) of the members with
    their city, RFM group, value tier, lifecycle stage and membership tier, streamed in
    pages of :data:`EXPORT_PAGE` (one join of members and ``dim_customers`` each)."""
    key = _active_key(services, principal, segment_id)
    store = event_store(services)

    def rows() -> Iterator[str]:
        members_table = store.table("segment_members")
        customers = store.table("dim_customers")
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(EXPORT_COLUMNS)
        yield "\ufeff" + buffer.getvalue()
        after: str | None = None
        while True:
            chosen = members_table.filter(members_table.segment == key)
            if after is not None:
                chosen = chosen.filter(members_table.customer_id > after)
            joined = chosen.left_join(customers, "customer_id").select(
                members_table.customer_id, *(customers[c] for c in EXPORT_COLUMNS[1:]))
            page = store.to_arrow(joined.order_by("customer_id").limit(EXPORT_PAGE))
            if page.num_rows == 0:
                return
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerows(zip(*(page[c].to_pylist() for c in EXPORT_COLUMNS), strict=True))
            yield buffer.getvalue()
            after = str(page["customer_id"][-1].as_py())

    return f"segment-{key}.csv", rows()


def history(services: Services, principal: Principal, segment_id: int) -> list[SizeOut]:
    """The sizes measured by the segment's refreshes, newest first."""
    _staff_only(principal)
    with transaction(services.sessions) as session:
        _segment(session, segment_id)
        found = session.scalars(select(SegmentSize).where(SegmentSize.segment_id == segment_id)
                                .order_by(SegmentSize.version.desc()).limit(HISTORY_LIMIT))
        return [SizeOut.model_validate(row, from_attributes=True) for row in found]


def key_exists(session: Session, key: str) -> bool:
    """Whether a saved segment (archived or not) has ``key`` (for references from other
    domains, such as a lifecycle stage's strategy)."""
    return session.scalar(select(Segment.id).where(Segment.key == key)) is not None
