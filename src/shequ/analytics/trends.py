"""Trends: one event counted, its persons counted, or a numeric property summed, per local
hour, day or week, with a point for every bucket of the range.

Semantics (see docs/analytics.md): buckets are wall-clock periods in ``tz`` (weeks start on
Monday); buckets without events are 0. ``unique_persons`` counts a person once per bucket,
and the series total counts them once over the whole range.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

import ibis
import ibis.expr.types as ir
from pydantic import BaseModel

from shequ.analytics.rollup import days_between, local_time
from shequ.analytics.runner import SCOPED_RULES, QueryRunner, Rule, ScopedQuery, scoped_events

if TYPE_CHECKING:
    from shequ.analytics.store import EventStore

Measure = Literal["count", "unique_persons", "sum"]
Interval = Literal["hour", "day", "week"]
MAX_HOURLY_DAYS = 31
NO_VALUE = ""
EVENT_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
PROPERTY_NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}")
_TRUNCATE = {"hour": "h", "day": "D", "week": "W"}
# Sub-hour steps find every local hour even in zones whose offset or DST shift is 30 minutes.
_HOUR_PROBE = timedelta(minutes=15)


class TrendsQuery(ScopedQuery):
    """One event per local ``interval``, measured by ``measure`` (``sum`` needs ``property``)."""

    event: str
    measure: Measure = "count"
    property: str | None = None
    interval: Interval = "day"
    breakdown: Literal["channel"] | None = None


class TrendPoint(BaseModel):
    """One bucket: its local start (aware, in the query's zone) and its value."""

    start: datetime
    value: int | float


class TrendSeries(BaseModel):
    """The points of one breakdown value (``""``: no breakdown, or events without a channel)."""

    breakdown_value: str
    points: list[TrendPoint]
    total: int | float


class TrendsResult(BaseModel):
    """One series, or one per breakdown value (largest total first)."""

    event: str
    measure: Measure
    interval: Interval
    series: list[TrendSeries]


def _event_name(query: TrendsQuery) -> str | None:
    if EVENT_NAME.fullmatch(query.event) is None:
        return f"{query.event!r} is not an event name ([a-z][a-z0-9_]*, at most 64 characters)"
    return None


def _sum_has_property(query: TrendsQuery) -> str | None:
    if query.measure == "sum" and query.property is None:
        return "measure 'sum' needs the numeric property to add up"
    return None


def _property_only_for_sum(query: TrendsQuery) -> str | None:
    if query.measure != "sum" and query.property is not None:
        return f"a property is only used by measure 'sum', not {query.measure!r}"
    return None


def _property_name(query: TrendsQuery) -> str | None:
    if query.property is not None and PROPERTY_NAME.fullmatch(query.property) is None:
        return f"{query.property!r} is not a property name ([a-z_][a-z0-9_]*, at most 64)"
    return None


def _bucket_count(query: TrendsQuery) -> str | None:
    days = (query.date_to - query.date_from).days + 1
    if query.interval == "hour" and days > MAX_HOURLY_DAYS:
        return f"hourly trends cover at most {MAX_HOURLY_DAYS} days, got {days}"
    return None


TRENDS_RULES: tuple[Rule[Any], ...] = (
    *SCOPED_RULES,
    Rule("bad_event_name", "event", _event_name),
    Rule("sum_needs_property", "property", _sum_has_property),
    Rule("property_needs_sum", "property", _property_only_for_sum),
    Rule("bad_property_name", "property", _property_name),
    Rule("too_many_buckets", "date_to", _bucket_count),
)


def numeric_property(properties: ir.StringValue, name: str) -> ir.FloatingValue:
    """The number under key ``name`` in the JSON text ``properties`` (null if absent).

    A portable regex (DuckDB, PostgreSQL and PySpark spell ``re_extract`` alike): the first
    ``"name": <number>`` in the text. ``name`` must already match ``[a-z_][a-z0-9_]*``, so
    it needs no escaping. DuckDB answers ``''`` when nothing matches, hence the ``nullif``.
    """
    pattern = rf'"{name}"\s*:\s*(-?\d+(\.\d+)?([eE][+-]?\d+)?)'
    return properties.re_extract(pattern, 1).nullif("").cast("float64")


class TrendsRunner(QueryRunner[TrendsQuery, TrendsResult]):
    """Per-bucket values of one event (``build``: a row per breakdown value and bucket, and
    a total row per breakdown value with a null bucket)."""

    query_type = TrendsQuery
    rules = TRENDS_RULES

    def build(self, store: EventStore) -> ibis.Table:
        """``breakdown, bucket, value``: ``bucket`` is the local start (naive wall clock) of
        a bucket with events, or null on the breakdown value's total over the range."""
        query = self.query
        events = scoped_events(store, query)
        events = events.filter(events.name == query.event)
        bucket = local_time(query.tz, events.ts).truncate(_TRUNCATE[query.interval])
        breakdown = ibis.coalesce(events.channel, ibis.literal(NO_VALUE))
        if query.breakdown is None:
            breakdown = ibis.literal(NO_VALUE)
        events = events.mutate(breakdown=breakdown, bucket=bucket)
        value = _measure(events, query)
        buckets = events.group_by(["breakdown", "bucket"]).aggregate(value=value)
        totals = events.group_by("breakdown").aggregate(value=value)
        totals = totals.select("breakdown", bucket=ibis.null().cast(bucket.type()),
                               value=totals.value)  # fmt: skip
        return buckets.union(totals)

    def run(self, store: EventStore) -> TrendsResult:
        """Execute the plan and zero-fill every bucket of the range."""
        rows = self.execute(store).to_pylist()
        return assemble(self.query, rows)


def _measure(events: ibis.Table, query: TrendsQuery) -> ir.NumericScalar:
    if query.measure == "count":
        return events.count()
    if query.measure == "unique_persons":
        return events.person_id.nunique()
    assert query.property is not None  # a rule guarantees it
    return numeric_property(events.properties, query.property).sum()


def bucket_starts(query: TrendsQuery) -> list[datetime]:
    """The naive local start of every bucket of the range, in order.

    Hours are the wall-clock hours that occur in the range (a DST gap skips one, a DST
    fold shows one once); a week starts on the Monday on or before ``date_from``.
    """
    zone = ZoneInfo(query.tz)
    if query.interval == "hour":
        return list(dict.fromkeys(_local_hours(query, zone)))
    if query.interval == "day":
        return [datetime.combine(day, time()) for day in
                days_between(query.date_from, query.date_to)]  # fmt: skip
    monday = query.date_from - timedelta(days=query.date_from.weekday())
    weeks = (query.date_to - monday).days // 7 + 1
    return [datetime.combine(monday + timedelta(weeks=k), time())
            for k in range(weeks)]  # fmt: skip


def _local_hours(query: TrendsQuery, zone: ZoneInfo) -> Iterator[datetime]:
    moment, end = query.bounds()
    while moment < end:
        yield moment.astimezone(zone).replace(minute=0, second=0, microsecond=0, tzinfo=None)
        moment += _HOUR_PROBE


def assemble(query: TrendsQuery, rows: list[dict[str, Any]]) -> TrendsResult:
    """The result from the rows (``breakdown, bucket, value``) of :meth:`TrendsRunner.build`."""
    zone = ZoneInfo(query.tz)
    starts = bucket_starts(query)
    empty: int | float = 0.0 if query.measure == "sum" else 0
    values: dict[str, dict[datetime | None, int | float]] = {}
    for row in rows:
        found = row["value"] if row["value"] is not None else empty
        values.setdefault(row["breakdown"], {})[row["bucket"]] = found
    if query.breakdown is None:
        values.setdefault(NO_VALUE, {})
    series = [
        TrendSeries(
            breakdown_value=value,
            points=[TrendPoint(start=start.replace(tzinfo=zone), value=found.get(start, empty))
                    for start in starts],
            total=found.get(None, empty),
        )
        for value, found in values.items()
    ]  # fmt: skip
    series.sort(key=lambda s: (-s.total, s.breakdown_value))
    return TrendsResult(event=query.event, measure=query.measure, interval=query.interval,
                        series=series)  # fmt: skip
