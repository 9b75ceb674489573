"""Funnels: how many people reach each step of a sequence of events, and where they drop.

Semantics (see docs/analytics.md): a person's **anchor** is their first qualifying event in
the local date range (``steps[0]``; any step for ``any_order``); the person counts once, at
the deepest step reached from that anchor within ``window``. A person's events are ordered
by ``(ts, event_id)``, so ties in time are broken by ``event_id``.
"""

from __future__ import annotations

import statistics
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

import ibis
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
        span = _span(store, self.query)
        anchors = _anchors(store, span, self.query)
        if self.query.order == "any_order":
            return _any_order(span, anchors, self.query)
        return _in_order(span, anchors, self.query)

    def run(self, store: EventStore) -> FunnelResult:
        """Execute the plan and aggregate per step (and per breakdown value)."""
        rows = store.to_arrow(self.build(store)).to_pylist()
        return aggregate(self.query, rows)


def _window(query: FunnelQuery) -> ibis.IntervalScalar:
    return ibis.interval(seconds=int(query.window.total_seconds()))


def _span(store: EventStore, query: FunnelQuery) -> ibis.Table:
    """Events that may take part, with ``person_id`` and ``seq`` (0, 1, … by ts, event_id).

    ``strict`` keeps every event (any other event breaks the chain); the other modes keep
    only the steps' events.
    """
    start, end = query.bounds()
    events = scoped_events(store, query, start, end + query.window)
    if query.order != "strict":
        events = events.filter(events.name.isin(query.steps))
    order = [events.ts, events.event_id]
    seq = ibis.row_number().over(group_by=events.person_id, order_by=order)
    return events.select("person_id", "name", "ts", "channel", "device_id", "properties",
                         seq=seq)  # fmt: skip


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
    """Ordered/strict: step k is the earliest ``steps[k]`` event after step k-1 (strict:
    the very next event), no later than ``ts_0 + window``. Earliest is optimal: it leaves
    the most room for the steps after it."""
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
    return joined.group_by(list(reached.columns)).aggregate(
        **{f"seq_{k}": joined.c_seq.min(), f"ts_{k}": joined.c_ts.min()}
    )


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


def aggregate(query: FunnelQuery, rows: list[dict[str, Any]]) -> FunnelResult:
    """The result from per-person rows (``person_id, breakdown, ts_0 …``) of
    :meth:`FunnelRunner.build`; a person with several breakdown values (segments) has one
    row per value and counts once in the overall steps."""
    series: dict[str, list[dict[str, Any]]] = {}
    persons: dict[str, dict[str, Any]] = {}
    for row in rows:
        series.setdefault(row["breakdown"], []).append(row)
        persons.setdefault(row["person_id"], row)
    breakdown = [
        FunnelSeries(breakdown_value=value, steps=_steps(query.steps, members))
        for value, members in series.items()
    ]
    breakdown.sort(key=lambda s: (-s.steps[0].count, s.breakdown_value))
    return FunnelResult(
        order=query.order,
        steps=_steps(query.steps, list(persons.values())),
        breakdown=breakdown if query.breakdown is not None else [],
    )


def _depth(row: dict[str, Any], steps: int) -> int:
    for k in range(steps):
        if row[f"ts_{k}"] is None:
            return k
    return steps


def _steps(names: list[str], rows: list[dict[str, Any]]) -> list[FunnelStep]:
    depths = [_depth(row, len(names)) for row in rows]
    counts = [sum(1 for d in depths if d > k) for k in range(len(names))]
    result = []
    for k, name in enumerate(names):
        previous = counts[k - 1] if k else counts[0]
        gaps = [
            (row[f"ts_{k}"] - row[f"ts_{k - 1}"]).total_seconds()
            for row, depth in zip(rows, depths, strict=True)
            if k and depth > k
        ]
        result.append(FunnelStep(
            order=k, name=name, count=counts[k],
            conversion_from_previous=_ratio(counts[k], previous),
            conversion_from_first=_ratio(counts[k], counts[0]),
            dropped_from_previous=previous - counts[k],
            median_seconds_from_previous=statistics.median(gaps) if gaps else None,
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
