"""Dwell time: how long people stay on a page, product or post view.

Semantics (see docs/analytics.md): a view's dwell is its ``dwell_ms`` when the client sent
one; otherwise the time to the person's next event when that event continues the session
(at most 30 minutes later, the rule of :mod:`shequ.analytics.sessions`); otherwise it is
unknown. Counts, mean, exact quantiles and the histogram are computed in the database
(``percentile_cont`` semantics, which ibis compiles alike for DuckDB, PostgreSQL and PySpark),
so one row per group leaves it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import ibis
import ibis.expr.types as ir
from pydantic import BaseModel

from shequ.analytics.pages import PageGrouping, grouped_page
from shequ.analytics.persons import with_person_id
from shequ.analytics.runner import SCOPED_RULES, QueryRunner, Rule, ScopedQuery, scoped_events
from shequ.analytics.sessions import INACTIVITY

if TYPE_CHECKING:
    from datetime import datetime

    from shequ.analytics.store import EventStore

DwellBy = Literal["page", "content_type"]
CONTENT_TYPES = {"page_view": "page", "product_view": "product", "post_view": "post"}
VIEWS = tuple(CONTENT_TYPES)
NO_PAGE = ""
MAX_LIMIT = 100
# Bin edges in seconds: [0, 1), [1, 3), … [180, 600), [600, ∞).
BIN_EDGES = (0.0, 1.0, 3.0, 10.0, 30.0, 60.0, 180.0, 600.0)
QUANTILES = {"median": 0.5, "p75": 0.75, "p90": 0.9}
MICROS = 1_000_000


class DwellQuery(ScopedQuery):
    """Dwell of the range's views, grouped ``by`` page (template or exact) or content type."""

    by: DwellBy = "page"
    page_grouping: PageGrouping = "template"
    limit: int = 20


class DwellBin(BaseModel):
    """Views whose dwell is in ``[lower, upper)`` seconds (``upper`` None: no bound)."""

    label: str
    lower: float
    upper: float | None
    views: int


class DwellGroup(BaseModel):
    """The views of one group and the spread of their known dwell, in seconds."""

    group: str
    views: int
    with_dwell: int
    unknown: int
    median_seconds: float | None
    p75_seconds: float | None
    p90_seconds: float | None
    mean_seconds: float | None
    histogram: list[DwellBin]


class DwellResult(BaseModel):
    """The ``limit`` groups with the most views, most first (ties by group)."""

    by: DwellBy
    groups: list[DwellGroup]


def _limit_in_range(query: DwellQuery) -> str | None:
    if not 1 <= query.limit <= MAX_LIMIT:
        return f"limit must be between 1 and {MAX_LIMIT}, got {query.limit}"
    return None


DWELL_RULES: tuple[Rule[Any], ...] = (
    *SCOPED_RULES,
    Rule("limit_out_of_range", "limit", _limit_in_range),
)


class DwellRunner(QueryRunner[DwellQuery, DwellResult]):
    """Dwell per group (``build``: the whole summary of each group, in the database)."""

    query_type = DwellQuery
    rules = DWELL_RULES

    def build(self, store: EventStore) -> ibis.Table:
        """A row per group, the ``limit`` groups with the most views first (ties by group):
        ``group, views, with_dwell, mean_us, median_us, p75_us, p90_us, bin_0 … bin_7``.

        A view's dwell is ``dwell_ms * 1000`` µs, else the exact microseconds to the person's
        next event (``lead`` over ``(ts, event_id)``) when it is at most 30 minutes later.
        """
        query = self.query
        start, end = query.bounds()
        views = view_dwell(store, start, end, VIEWS, "page")
        if query.channels is not None or query.devices is not None or query.segment is not None:
            scoped = scoped_events(store, query)
            views = views.filter(views.event_id.isin(scoped.event_id))
        return dwell_summary(views.mutate(group=_group(views, query))).limit(query.limit)

    def run(self, store: EventStore) -> DwellResult:
        """Execute the plan; seconds and bins are shaped here."""
        rows = self.execute(store).to_pylist()
        return DwellResult(by=self.query.by, groups=[summary(row) for row in rows])


def view_dwell(store: EventStore, start: datetime, end: datetime, names: tuple[str, ...],
               column: str) -> ibis.Table:
    """The views named ``names`` in ``[start, end)`` with ``event_id, name, ts, person_id``,
    ``column`` (e.g. ``page`` or ``properties``) and ``dwell_us``: ``dwell_ms * 1000`` µs,
    else the exact microseconds to the person's next event (``lead`` over
    ``(ts, event_id)``) when it is at most 30 minutes later."""
    events = store.table("events")
    events = events.filter(events.ts >= start, events.ts < end + INACTIVITY)
    events = events.select("event_id", "name", "ts", "customer_id", "anonymous_id", column,
                           "dwell_ms")  # fmt: skip
    timeline = with_person_id(store, events)
    timeline = timeline.select("event_id", "name", "ts", "person_id", column, "dwell_ms")
    timeline = timeline.mutate(following=timeline.ts.lead().over(
        group_by=timeline.person_id, order_by=[timeline.ts, timeline.event_id]
    ))  # fmt: skip
    gap = ibis.interval(seconds=int(INACTIVITY.total_seconds()))
    within = timeline.following <= timeline.ts + gap
    to_next = timeline.following.delta(timeline.ts, unit="microsecond")
    timeline = timeline.mutate(next_us=ibis.ifelse(within, to_next, ibis.null()))
    views = timeline.filter(timeline.name.isin(names), timeline.ts < end)
    return views.mutate(dwell_us=ibis.coalesce(views.dwell_ms * 1000, views.next_us))


def dwell_summary(views: ibis.Table) -> ibis.Table:
    """A row per ``group`` of ``views`` (from :func:`view_dwell` plus a ``group`` column),
    the most viewed first (ties by group): ``group, views, with_dwell, mean_us, median_us,
    p75_us, p90_us, bin_0 … bin_7``; :func:`summary` shapes one row."""
    dwell = views.dwell_us
    known = dwell.notnull()
    edges = [int(edge * MICROS) for edge in BIN_EDGES[1:]]
    bins = {
        f"bin_{k}": views.count(where=known & _in_bin(dwell, edges, k))
        for k in range(len(BIN_EDGES))
    }
    groups = views.group_by("group").aggregate(
        views=views.count(),
        with_dwell=dwell.count(),
        mean_us=dwell.cast("float64").mean(),
        **{f"{name}_us": dwell.quantile(p) for name, p in QUANTILES.items()},
        **bins,
    )
    return groups.order_by([groups.views.desc(), groups.group])


def _group(views: ibis.Table, query: DwellQuery) -> ir.StringValue:
    if query.by == "content_type":
        return views.name.substitute(CONTENT_TYPES)
    return ibis.coalesce(grouped_page(views.page, query.page_grouping), ibis.literal(NO_PAGE))


def _in_bin(dwell: ir.IntegerValue, edges: list[int], k: int) -> ir.BooleanValue:
    """Whether ``dwell`` (µs) is in bin ``k``: below the first edge for bin 0 (a negative
    dwell cannot be sent, so bin 0 is ``[0, 1 s)``), at least the last edge for the last."""
    if k == 0:
        return dwell < edges[0]
    if k == len(edges):
        return dwell >= edges[-1]
    return (dwell >= edges[k - 1]) & (dwell < edges[k])


def _seconds(micros: float | None) -> float | None:
    return None if micros is None else float(micros) / MICROS


def summary(row: dict[str, Any]) -> DwellGroup:
    """One group of the result from one row of :meth:`DwellRunner.build`."""
    bins = []
    for k, lower in enumerate(BIN_EDGES):
        upper = BIN_EDGES[k + 1] if k + 1 < len(BIN_EDGES) else None
        label = f"{lower:g}-{upper:g}" if upper is not None else f"{lower:g}+"
        bins.append(DwellBin(label=label, lower=lower, upper=upper, views=row[f"bin_{k}"]))
    return DwellGroup(
        group=row["group"], views=row["views"], with_dwell=row["with_dwell"],
        unknown=row["views"] - row["with_dwell"],
        median_seconds=_seconds(row["median_us"]), p75_seconds=_seconds(row["p75_us"]),
        p90_seconds=_seconds(row["p90_us"]), mean_seconds=_seconds(row["mean_us"]),
        histogram=bins,
    )  # fmt: skip
