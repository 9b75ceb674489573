"""Funnels: how many people reach each step of a sequence of events, and where they drop.

Semantics (see docs/analytics.md): a person's **anchor** is their first qualifying event in
the local date range (``steps[0]``; any step for ``any_order``); the person counts once, at
the deepest step reached from that anchor within ``window``. A person's events are ordered
by ``(ts, event_id)``, so ties in time are broken by ``event_id``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

import ibis
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel

from shequ.analytics.runner import SCOPED_RULES, QueryRunner, Rule, ScopedQuery, scoped_events
from shequ.core.errors import ValidationFailed

if TYPE_CHECKING:
    from shequ.analytics.store import EventStore

FunnelOrder = Literal["strict", "ordered", "any_order"]
Breakdown = Literal["channel", "device", "brand", "segment"]
MIN_STEPS, MAX_STEPS = 2, 10
MAX_WINDOW = timedelta(days=90)
NO_VALUE = ""


class FunnelQuery(ScopedQuery):
    """Steps (2-10 event names), conversion window, order mode, optional breakdown.

    Breakdowns are read off the person's first step (the anchor): its ``channel``, the kind
    of its device (``dim_devices``), the brand of the product it names (``properties.sku``
    → ``dim_products``), or the saved segments the person belongs to (``segment_members``;
    only ``breakdown_segments`` when given). A person in two segments is in both series.
    """

    steps: list[str]
    window: timedelta = timedelta(days=14)
    order: FunnelOrder = "ordered"
    breakdown: Breakdown | None = None
    breakdown_segments: list[str] | None = None


class FunnelStep(BaseModel):
    """One step: who reached it, conversion, drop-off and median time from the last step."""

    order: int
    name: str
    count: int
    conversion_from_previous: float
    conversion_from_first: float
    dropped_from_previous: int
    median_seconds_from_previous: float | None


class FunnelSeries(BaseModel):
    """The funnel of one breakdown value (``""`` = events without one)."""

    breakdown_value: str
    steps: list[FunnelStep]


class FunnelResult(BaseModel):
    """The whole funnel, and one series per breakdown value (largest first) if asked."""

    order: FunnelOrder
    steps: list[FunnelStep]
    breakdown: list[FunnelSeries]


class StepDiagnosis(BaseModel):
    """The step whose loss rate deviates most (upwards) from the baseline's."""

    order: int
    name: str
    loss_rate: float
    baseline_loss_rate: float
    deviation: float


def _step_count(query: FunnelQuery) -> str | None:
    if len(query.steps) < MIN_STEPS:
        return f"a funnel needs at least {MIN_STEPS} steps, got {len(query.steps)}"
    return None


def _not_too_many(query: FunnelQuery) -> str | None:
    count = len(query.steps)
    return f"at most {MAX_STEPS} steps, got {count}" if count > MAX_STEPS else None


def _window_positive(query: FunnelQuery) -> str | None:
    seconds = query.window.total_seconds()
    if seconds < 1 or seconds != int(seconds):
        return "the window must be a positive whole number of seconds"
    return None


def _window_short(query: FunnelQuery) -> str | None:
    return f"at most {MAX_WINDOW.days} days" if query.window > MAX_WINDOW else None


def _distinct_when_unordered(query: FunnelQuery) -> str | None:
    if query.order == "any_order" and len(set(query.steps)) != len(query.steps):
        return "an any_order funnel cannot repeat a step"
    return None


def _segments_need_segment_breakdown(query: FunnelQuery) -> str | None:
    if query.breakdown_segments is not None and query.breakdown != "segment":
        return "breakdown_segments needs breakdown='segment'"
    return None


FUNNEL_RULES: tuple[Rule[Any], ...] = (
    *SCOPED_RULES,
    Rule("funnel_needs_two_steps", "steps", _step_count),
    Rule("funnel_too_many_steps", "steps", _not_too_many),
    Rule("window_not_positive", "window", _window_positive),
    Rule("window_too_long", "window", _window_short),
    Rule("any_order_repeated_step", "steps", _distinct_when_unordered),
    Rule("segments_without_segment_breakdown", "breakdown_segments",
         _segments_need_segment_breakdown),
)


class FunnelRunner(QueryRunner[FunnelQuery, FunnelResult]):
    """Counts people per funnel step (``build``: one row per person, ``ts_k`` per step)."""

    query_type = FunnelQuery
    rules = FUNNEL_RULES

    def build(self, store: EventStore) -> ibis.Table:
        """``person_id, breakdown, ts_0 … ts_{n-1}``: when the person reached each step
        (null from the first step not reached)."""
        if self.query.order == "ordered":
            span = _span(store, self.query, numbered=False)
            return _ordered(span, _first_by_position(store, span, self.query), self.query)
        span = _span(store, self.query, numbered=True)
        anchors = _anchors(store, span, self.query)
        if self.query.order == "any_order":
            return _any_order(span, anchors, self.query)
        return _in_order(span, anchors, self.query)

    def run(self, store: EventStore) -> FunnelResult:
        """Execute the plan and aggregate per step (and per breakdown value)."""
        return aggregate_arrow(self.query, self.execute(store))


def _window(query: FunnelQuery) -> ibis.IntervalScalar:
    return ibis.interval(seconds=int(query.window.total_seconds()))


def _span(store: EventStore, query: FunnelQuery, *, numbered: bool) -> ibis.Table:
    """Events that may take part, with ``person_id`` and, when ``numbered``, ``seq``
    (0, 1, … by ts, event_id: what strict and any-order funnels compare).

    ``strict`` keeps every event (any other event breaks the chain); the other modes keep
    only the steps' events.
    """
    start, end = query.bounds()
    events = scoped_events(store, query, start, end + query.window)
    if query.order != "strict":
        events = events.filter(events.name.isin(query.steps))
    # Only the column the breakdown reads rides along: wide columns (``properties``) would
    # multiply the cost of the per-person sort and of the joins.
    extra = {"channel": ["channel"], "device": ["device_id"], "brand": ["properties"]}
    columns = ["person_id", "name", "ts", "event_id", *extra.get(query.breakdown or "", [])]
    if not numbered:
        return events.select(*columns)
    order = [events.ts, events.event_id]
    seq = ibis.row_number().over(group_by=events.person_id, order_by=order)
    return events.select(*columns, seq=seq)


def _not_before(ts: ibis.Value, event_id: ibis.Value, prev_ts: ibis.Value,
                prev_id: ibis.Value) -> ibis.BooleanValue:
    """With ``ts >= prev_ts`` already a join condition: ``(ts, event_id) > (prev_ts,
    prev_id)``. Kept out of the join (an aggregate filter instead) so the join stays an
    equi-join on the person plus simple range conditions, which every engine hashes."""
    return (ts > prev_ts) | (event_id > prev_id)


def _first_by_position(store: EventStore, span: ibis.Table, query: FunnelQuery) -> ibis.Table:
    """Ordered funnels: each person's first ``steps[0]`` event in the date range (smallest
    ``(ts, event_id)``), found by aggregation instead of numbering every event."""
    _, end = query.bounds()
    first = span.filter(span.name == query.steps[0], span.ts < end)
    earliest = first.group_by("person_id").aggregate(m_ts=first.ts.min())
    earliest = earliest.select(m_person=earliest.person_id, m_ts=earliest.m_ts)
    tied = first.join(earliest, [first.person_id == earliest.m_person, first.ts == earliest.m_ts])
    ids = tied.group_by("person_id").aggregate(a_id=tied.event_id.min())
    anchor = first.join(ids.select(a_id=ids.a_id), first.event_id == ids.a_id)
    anchor = _with_breakdown(store, anchor, query)
    return anchor.select("person_id", "breakdown", ts_0=anchor.ts, id_0=anchor.event_id)


def _ordered(span: ibis.Table, reached: ibis.Table, query: FunnelQuery) -> ibis.Table:
    """Ordered: step k is the ``steps[k]`` event with the smallest ``(ts, event_id)`` after
    step k-1's, no later than ``ts_0 + window`` (the earliest leaves the most room for the
    steps after it). One join per step: the candidates at or after ``ts_{k-1}``; a window
    ``min`` over the person's candidates gives the earliest time, so the same aggregate
    also takes the smallest id at that time (it only matters against an event of the next
    step at the very same instant)."""
    last = len(query.steps) - 1
    for k in range(1, last + 1):
        steps = span.filter(span.name == query.steps[k])
        steps = steps.select(c_person=steps.person_id, c_ts=steps.ts, c_id=steps.event_id)
        joined = reached.left_join(steps, [reached.person_id == steps.c_person,
                                           steps.c_ts >= reached[f"ts_{k - 1}"],
                                           steps.c_ts <= reached.ts_0 + _window(query)])
        joined = joined.mutate(c_after=_not_before(joined.c_ts, joined.c_id,
                                                   joined[f"ts_{k - 1}"], joined[f"id_{k - 1}"]))
        found = {f"ts_{k}": joined.c_ts.min(where=joined.c_after)}
        if k < last:
            earliest = joined.c_ts.min(where=joined.c_after).over(
                group_by=[joined.person_id, joined.breakdown])
            joined = joined.mutate(c_earliest=earliest)
            found = {f"ts_{k}": joined.c_ts.min(where=joined.c_after),
                     f"id_{k}": joined.c_id.min(where=joined.c_after
                                                & (joined.c_ts == joined.c_earliest))}
        reached = _regroup(joined, reached, **found)
    return reached.select("person_id", "breakdown", *(f"ts_{k}" for k in range(last + 1)))


def _regroup(joined: ibis.Table, reached: ibis.Table, **new: ibis.Value) -> ibis.Table:
    """Back to one row per (person, breakdown): the reached columns are constant within
    the group (``min`` is the portable way to carry them), plus the ``new`` aggregates."""
    carried = {name: joined[name].min() for name in reached.columns
               if name not in ("person_id", "breakdown")}
    return joined.group_by(["person_id", "breakdown"]).aggregate(**carried, **new)


def _anchors(store: EventStore, span: ibis.Table, query: FunnelQuery) -> ibis.Table:
    """Each person's first event in the date range that can start the funnel (``steps[0]``;
    any step for ``any_order``), with the breakdown value(s) read off it."""
    _, end = query.bounds()
    names = list(query.steps) if query.order == "any_order" else [query.steps[0]]
    first = span.filter(span.name.isin(names), span.ts < end)
    first = first.mutate(first_seq=first.seq.min().over(group_by=first.person_id))
    first = first.filter(first.seq == first.first_seq)
    return _with_breakdown(store, first, query).select(
        "person_id", "breakdown", seq_0=first.seq, ts_0=first.ts
    )


SKU_PATTERN = r'"sku"\s*:\s*"([^"]*)"'


def _with_breakdown(store: EventStore, first: ibis.Table, query: FunnelQuery) -> ibis.Table:
    """``first`` plus ``breakdown`` (``""`` when the anchor has no value)."""
    none = ibis.literal(NO_VALUE)
    if query.breakdown is None:
        return first.mutate(breakdown=none)
    if query.breakdown == "channel":
        return first.mutate(breakdown=ibis.coalesce(first.channel, none))
    if query.breakdown == "device":
        devices = store.table("dim_devices")
        devices = devices.select(d_device=devices.device_id, d_kind=devices.kind)
        joined = first.left_join(devices, first.device_id == devices.d_device)
        return joined.mutate(breakdown=ibis.coalesce(joined.d_kind, none))
    if query.breakdown == "brand":
        products = store.table("dim_products")
        products = products.select(p_sku=products.sku, p_brand=products.brand_id)
        sku = first.properties.re_extract(SKU_PATTERN, 1)
        joined = first.left_join(products, sku == products.p_sku)
        return joined.mutate(breakdown=ibis.coalesce(joined.p_brand, none))
    members = store.table("segment_members")
    if query.breakdown_segments is not None:
        members = members.filter(members.segment.isin(query.breakdown_segments))
    members = members.select(m_customer=members.customer_id, m_segment=members.segment)
    joined = first.left_join(members, first.person_id == members.m_customer)
    return joined.mutate(breakdown=ibis.coalesce(joined.m_segment, none))


def _in_order(span: ibis.Table, reached: ibis.Table, query: FunnelQuery) -> ibis.Table:
    """Strict: step k is the event right after step k-1 (by ``seq``) if it is ``steps[k]``,
    no later than ``ts_0 + window``."""
    for k in range(1, len(query.steps)):
        reached = _next_step(reached, span, query, k)
    names = [f"ts_{k}" for k in range(len(query.steps))]
    return reached.select("person_id", "breakdown", *names)


def _next_step(reached: ibis.Table, span: ibis.Table, query: FunnelQuery, k: int) -> ibis.Table:
    steps = span.filter(span.name == query.steps[k])
    steps = steps.select(c_person=steps.person_id, c_seq=steps.seq, c_ts=steps.ts)
    previous = reached[f"seq_{k - 1}"]
    follows = steps.c_seq == previous + 1 if query.order == "strict" else steps.c_seq > previous
    joined = reached.left_join(
        steps,
        [reached.person_id == steps.c_person, follows, steps.c_ts <= reached.ts_0 + _window(query)],
    )
    # seq follows (ts, event_id), so the smallest seq is also the earliest ts.
    return _regroup(joined, reached, **{f"seq_{k}": joined.c_seq.min(),
                                        f"ts_{k}": joined.c_ts.min()})


def _any_order(span: ibis.Table, anchors: ibis.Table, query: FunnelQuery) -> ibis.Table:
    """Any order: the anchor is the first event of any step; level k is reached when the
    (k+1)-th distinct step is first done within ``ts_0 + window``."""
    anchors = anchors.select(a_person=anchors.person_id, a_seq=anchors.seq_0,
                             a_ts=anchors.ts_0, breakdown=anchors.breakdown)  # fmt: skip
    joined = span.join(
        anchors,
        [span.person_id == anchors.a_person, span.seq >= anchors.a_seq,
         span.ts <= anchors.a_ts + _window(query)],
    )  # fmt: skip
    firsts = joined.group_by(["person_id", "breakdown", "name"]).aggregate(
        first_seq=joined.seq.min(), first_ts=joined.ts.min()
    )
    level = ibis.row_number().over(group_by=firsts.person_id, order_by=firsts.first_seq)
    leveled = firsts.mutate(level=level)
    return leveled.group_by(["person_id", "breakdown"]).aggregate(
        **{
            f"ts_{k}": leveled.first_ts.max(where=leveled.level == k)
            for k in range(len(query.steps))
        }
    )


def aggregate_arrow(query: FunnelQuery, table: pa.Table) -> FunnelResult:
    """The result from the Arrow table of :meth:`FunnelRunner.build` (counts, ratios and
    medians, vectorised).

    The table has one row per person and breakdown value; a person in several segments
    counts once in the overall steps.
    """
    persons = table
    if query.breakdown == "segment":
        ordered = table.take(pc.sort_indices(table, [("person_id", "ascending")]))
        ids = ordered.column("person_id").to_numpy(zero_copy_only=False)
        first = np.ones(len(ids), dtype=bool)
        first[1:] = ids[1:] != ids[:-1]
        persons = ordered.filter(pa.array(first))
    breakdown = []
    if query.breakdown is not None:
        for value in pc.unique(table.column("breakdown")).to_pylist():
            members = table.filter(pc.equal(table.column("breakdown"), value))
            breakdown.append(FunnelSeries(breakdown_value=value,
                                          steps=_arrow_steps(query.steps, members)))
        breakdown.sort(key=lambda s: (-s.steps[0].count, s.breakdown_value))
    return FunnelResult(order=query.order, steps=_arrow_steps(query.steps, persons),
                        breakdown=breakdown)


def _arrow_steps(names: list[str], table: pa.Table) -> list[FunnelStep]:
    # ts_k is null from the first step not reached on, so a step's count is its non-nulls.
    micros = [table.column(f"ts_{k}").cast(pa.int64()) for k in range(len(names))]
    counts = [table.num_rows - column.null_count for column in micros]
    result = []
    for k, name in enumerate(names):
        previous = counts[k - 1] if k else counts[0]
        median = None
        if k and counts[k]:
            gaps = pc.drop_null(pc.subtract(micros[k], micros[k - 1]))
            median = float(np.median(gaps.to_numpy(zero_copy_only=False))) / 1e6
        result.append(FunnelStep(
            order=k, name=name, count=counts[k],
            conversion_from_previous=_ratio(counts[k], previous),
            conversion_from_first=_ratio(counts[k], counts[0]),
            dropped_from_previous=previous - counts[k],
            median_seconds_from_previous=median,
        ))  # fmt: skip
    return result


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def diagnose(result: FunnelResult, baseline: FunnelResult) -> StepDiagnosis:
    """The step (after the first) whose loss rate rose most above the baseline's.

    Loss rate at step k is ``1 - conversion_from_previous``. Both funnels must have the
    same steps; the answer is the largest ``loss - baseline loss``, even when every step
    improved (then the deviation is negative).
    """
    names = [step.name for step in result.steps]
    if names != [step.name for step in baseline.steps]:
        raise ValidationFailed("funnel_steps_differ", "the baseline has other steps", "baseline")
    pairs = list(zip(result.steps[1:], baseline.steps[1:], strict=True))
    step, base = max(
        pairs,
        key=lambda p: (1 - p[0].conversion_from_previous) - (1 - p[1].conversion_from_previous),
    )
    loss, base_loss = 1 - step.conversion_from_previous, 1 - base.conversion_from_previous
    return StepDiagnosis(order=step.order, name=step.name, loss_rate=loss,
                         baseline_loss_rate=base_loss, deviation=loss - base_loss)  # fmt: skip
