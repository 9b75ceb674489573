"""The 18 core metrics (流量质量, 内容互动, 转化效率, 用户流失) per hour and per local day.

Definitions are in docs/metrics.md. :func:`plan` is one pure ibis expression (DuckDB,
PostgreSQL, PySpark) with one row of raw counts per bucket; :func:`compute` turns those
rows into :class:`MetricValue` objects, and :func:`refresh` stores both grains in
``metric_values`` for the console and the alerts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import ibis
import ibis.expr.types as ir

from shequ.analytics.metric_values import GRAINS, Grain, MetricValue, write_values
from shequ.analytics.persons import with_person_id
from shequ.analytics.rollup import DEFAULT_TZ, local_day_bounds
from shequ.analytics.runner import MAX_RANGE_DAYS
from shequ.core.errors import ValidationFailed

if TYPE_CHECKING:
    from shequ.analytics.store import EventStore

MetricUnit = Literal["count", "rate", "seconds", "fen", "ratio"]

VIEWS = ("page_view", "product_view", "post_view")
INTERACTIONS = ("like", "comment", "share")
COUNTED = ("post_view", "like", "comment", "share", "product_view", "add_to_cart",
           "checkout", "payment")  # fmt: skip
INACTIVITY = timedelta(minutes=30)
RETURNING_WITHIN = timedelta(days=30)
HISTORY = timedelta(days=90)
AMOUNT_PATTERN = r'"amount_fen"\s*:\s*(-?[0-9]+)'
_GAP = int(INACTIVITY.total_seconds())
_UNIT = {"hour": 3600, "day": 86400}


@dataclass(frozen=True, slots=True)
class Family:
    """A group of metrics on the board."""

    id: str
    label_zh: str
    label_en: str


@dataclass(frozen=True, slots=True)
class MetricDef:
    """One core metric: where it belongs, how to show it, which direction is good."""

    name: str
    family: str
    label_zh: str
    label_en: str
    unit: MetricUnit
    higher_is_better: bool
    description: str


FAMILIES: dict[str, Family] = {family.id: family for family in (
    Family("traffic", "流量质量", "Traffic quality"),
    Family("content", "内容互动", "Content interaction"),
    Family("conversion", "转化效率", "Conversion efficiency"),
    Family("churn", "用户流失", "Churn"),
)}  # fmt: skip

METRICS: dict[str, MetricDef] = {metric.name: metric for metric in (
    MetricDef("visitors", "traffic", "访客数", "Visitors", "count", True,
              "Distinct persons with any event in the bucket."),
    MetricDef("sessions", "traffic", "会话数", "Sessions", "count", True,
              "Sessions (30 min inactivity split) whose first event is in the bucket."),
    MetricDef("bounce_rate", "traffic", "跳出率", "Bounce rate", "rate", False,
              "Share of the bucket's sessions that have exactly one event."),
    MetricDef("pages_per_session", "traffic", "会话平均浏览页数", "Pages per session", "ratio",
              True, "View events of the bucket's sessions per session."),
    MetricDef("avg_dwell_seconds", "traffic", "平均停留时长", "Average dwell time",
              "seconds", True, "Mean dwell_ms / 1000 of the bucket's views that carry it."),
    MetricDef("post_views", "content", "帖子浏览量", "Post views", "count", True,
              "post_view events in the bucket."),
    MetricDef("interaction_rate", "content", "互动率", "Interaction rate", "rate", True,
              "(like + comment + share) events per post_view event."),
    MetricDef("share_rate", "content", "分享率", "Share rate", "rate", True,
              "share events per post_view event."),
    MetricDef("engaged_visitor_rate", "content", "互动访客占比", "Engaged visitor rate",
              "rate", True, "Share of visitors who liked, commented or shared."),
    MetricDef("view_to_cart_rate", "conversion", "浏览加购率", "View-to-cart rate", "rate",
              True, "add_to_cart events per product_view event."),
    MetricDef("cart_to_checkout_rate", "conversion", "加购下单率", "Cart-to-checkout rate",
              "rate", True, "checkout events per add_to_cart event."),
    MetricDef("payment_rate", "conversion", "支付转化率", "Payment rate", "rate", True,
              "payment events per checkout event."),
    MetricDef("session_conversion_rate", "conversion", "会话转化率",
              "Session conversion rate", "rate", True,
              "Share of the bucket's sessions that contain a payment."),
    MetricDef("gmv_fen", "conversion", "成交额(分)", "GMV (fen)", "fen", True,
              "Sum of amount_fen of the bucket's payment events."),
    MetricDef("returning_visitor_rate", "churn", "回访访客占比", "Returning visitor rate",
              "rate", True, "Share of visitors whose previous event is at most 30 days old."),
    MetricDef("reactivated_visitor_rate", "churn", "召回访客占比",
              "Reactivated visitor rate", "rate", True,
              "Share of visitors whose previous event is 30 to 90 days old."),
    MetricDef("new_visitor_rate", "churn", "新访客占比", "New visitor rate", "rate", True,
              "Share of visitors without any event in the 90 days before the bucket."),
    MetricDef("period_churn_rate", "churn", "环比流失率", "Period churn rate", "rate", False,
              "Share of the previous bucket's visitors who are not visitors of this one."),
)}  # fmt: skip

SESSION_METRICS = frozenset({"sessions", "bounce_rate", "pages_per_session",
                             "session_conversion_rate"})  # fmt: skip
HISTORY_METRICS = frozenset({"returning_visitor_rate", "reactivated_visitor_rate",
                             "new_visitor_rate"})  # fmt: skip


# --- buckets ---------------------------------------------------------------------------------


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _offset_at(zone: ZoneInfo, epoch: int) -> int:
    offset = datetime.fromtimestamp(epoch, zone).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def _offset_runs(zone: ZoneInfo, first: int, last: int) -> list[tuple[int, int]]:
    """``(from_epoch, utc_offset_seconds)`` of each stretch of constant offset of ``zone``
    in ``[first, last]`` (epoch seconds); transitions are found to the second."""
    runs = [(first, _offset_at(zone, first))]
    moment = first
    while moment < last:
        step = min(moment + 86400, last)
        if _offset_at(zone, step) == runs[-1][1]:
            moment = step
            continue
        low, high = moment, step
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if _offset_at(zone, middle) == runs[-1][1] else (
                low, middle)  # fmt: skip
        runs.append((high, _offset_at(zone, high)))
        moment = high
    return runs


def _piecewise(x: ir.IntegerValue, runs: Sequence[tuple[int, int]]) -> ir.IntegerValue:
    """``runs[k][1]`` where ``runs[k][0] <= x < runs[k+1][0]`` (the first run extends down)."""
    if len(runs) == 1:
        return ibis.literal(runs[0][1])
    cases = [(x < nxt, value) for (_, value), (nxt, _) in pairwise(runs)]
    return ibis.cases(*cases, else_=runs[-1][1])


@dataclass(frozen=True)
class Grid:
    """The buckets of a grain over local days: bucket ``b`` (``-1`` is the bucket before the
    range) spans ``[bounds[b + 1], bounds[b + 2])``.

    Hours are the consecutive hours from local midnight of the first day (24 a day in a
    zone without daylight saving); days are local calendar days.
    """

    grain: Grain
    tz: str
    bounds: tuple[datetime, ...]
    offsets: tuple[tuple[int, int], ...]

    @property
    def count(self) -> int:
        """Number of buckets in the range."""
        return len(self.bounds) - 2

    @property
    def start(self) -> datetime:
        """Start of bucket 0."""
        return self.bounds[1]

    @property
    def end(self) -> datetime:
        """End of the last bucket."""
        return self.bounds[-1]

    @property
    def previous_start(self) -> datetime:
        """Start of bucket -1, the bucket before the range."""
        return self.bounds[0]

    def bucket_start(self, bucket: int) -> datetime:
        """The UTC instant where bucket ``bucket`` (-1 … count) starts."""
        return self.bounds[bucket + 1]

    def bucket_of(self, epoch: ir.IntegerValue) -> ir.IntegerValue:
        """The bucket number of instants given as epoch seconds (any integer)."""
        if self.grain == "hour":
            return (epoch - _epoch(self.start)) // _UNIT["hour"]
        first_day = (self.start.astimezone(ZoneInfo(self.tz)).date() - date(1970, 1, 1)).days
        local = epoch + _piecewise(epoch, self.offsets)
        return local // _UNIT["day"] - first_day

    def start_epoch(self, bucket: ir.IntegerValue) -> ir.IntegerValue:
        """Epoch seconds of the start of bucket ``bucket`` (an expression, -1 … count)."""
        unit = _UNIT[self.grain]
        runs: list[tuple[int, int]] = []
        for b in range(-1, self.count + 1):
            shift = _epoch(self.bucket_start(b)) - unit * b
            if not runs or runs[-1][1] != shift:
                runs.append((b, shift))
        return bucket * unit + _piecewise(bucket, runs)


def grid(grain: Grain, day_from: date, day_to: date, tz: str = DEFAULT_TZ) -> Grid:
    """The buckets of ``grain`` over the local days ``day_from..day_to`` in ``tz``."""
    _check_range(grain, day_from, day_to, tz)
    zone = ZoneInfo(tz)
    start, end = local_day_bounds(day_from, day_to, zone)
    if grain == "hour":
        hours = -(-int((end - start).total_seconds()) // 3600)
        bounds = [start + timedelta(hours=k) for k in range(-1, hours)] + [end]
    else:
        days = (day_to - day_from).days + 1
        bounds = [datetime.combine(day_from + timedelta(days=k), time(), zone).astimezone(UTC)
                  for k in range(-1, days + 1)]  # fmt: skip
    reach = timedelta(days=1)
    runs = _offset_runs(zone, _epoch(start - HISTORY - reach), _epoch(end + reach))
    return Grid(grain, tz, tuple(bounds), tuple(runs))


# --- validation ------------------------------------------------------------------------------


def _check_range(grain: str, day_from: date, day_to: date, tz: str) -> None:
    if grain not in GRAINS:
        raise ValidationFailed("unknown_grain", f"grain must be one of {GRAINS}, got {grain!r}",
                               "grain")  # fmt: skip
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationFailed("unknown_timezone", f"unknown time zone {tz!r}", "tz") from exc
    if day_to < day_from:
        raise ValidationFailed("bad_date_range",
                               f"day_to {day_to} is before day_from {day_from}", "day_to")
    days = (day_to - day_from).days + 1
    if days > MAX_RANGE_DAYS:
        raise ValidationFailed("date_range_too_long",
                               f"at most {MAX_RANGE_DAYS} days, got {days}", "day_to")


def _wanted(metrics: Sequence[str] | None) -> tuple[str, ...]:
    if metrics is None:
        return tuple(METRICS)
    if isinstance(metrics, str):
        raise ValidationFailed("unknown_metric", "metrics must be a list of names", "metrics")
    unknown = [name for name in metrics if name not in METRICS]
    if unknown:
        raise ValidationFailed("unknown_metric", f"unknown metric {unknown[0]!r}", "metrics")
    if not metrics:
        raise ValidationFailed("unknown_metric", "name at least one metric", "metrics")
    return tuple(name for name in METRICS if name in set(metrics))


# --- the plan --------------------------------------------------------------------------------


def _events(store: EventStore, first: datetime, last: datetime) -> ibis.Table:
    """Events in ``[first, last)`` with ``person_id``."""
    events = store.table("events")
    events = events.filter(events.ts >= first, events.ts < last)
    return with_person_id(store, events)


def _amount(properties: ir.StringValue) -> ir.IntegerValue:
    """The integer ``amount_fen`` of a JSON properties text (null when absent)."""
    found = properties.re_extract(AMOUNT_PATTERN, 1).nullif("")
    return found.cast("int64")


def _flag(condition: ir.BooleanValue) -> ir.IntegerValue:
    return ibis.ifelse(condition, 1, 0)


def _bucketed(events: ibis.Table, grids: Sequence[Grid], horizon: bool = False) -> ibis.Table:
    """``events`` with ``b_<grain>`` (and ``h_<grain>``: the bucket 30 minutes earlier)."""
    epoch = events.ts.epoch_seconds()
    events = events.mutate(epoch=epoch)
    columns = {f"b_{g.grain}": g.bucket_of(events.epoch) for g in grids}
    if horizon:
        columns |= {f"h_{g.grain}": g.bucket_of(events.epoch - _GAP) for g in grids}
    return events.mutate(**columns).drop("epoch")


def _history(store: EventStore, first: datetime, last: datetime) -> ibis.Table:
    """``old_person, old_last``: each person's latest event in ``[first, last)``.

    Grouped by the raw ids first, so persons are resolved on one row per id pair rather
    than on every event."""
    events = store.table("events")
    events = events.filter(events.ts >= first, events.ts < last)
    pairs = events.group_by("customer_id", "anonymous_id").aggregate(pair_last=events.ts.max())
    pairs = with_person_id(store, pairs)
    return pairs.group_by(old_person=pairs.person_id).aggregate(old_last=pairs.pair_last.max())


def _union(tables: Sequence[ibis.Table]) -> ibis.Table:
    return ibis.union(*tables) if len(tables) > 1 else tables[0]


def _activity(events: ibis.Table, old: ibis.Table | None, grids: Sequence[Grid]) -> ibis.Table:
    """Per grain and bucket: visitors, event counts, dwell, GMV, engaged visitors,
    returning/reactivated/new visitors and visitors lost by the next bucket.

    ``events`` start at or before the bucket before the range; ``old`` holds each person's
    latest event before that (None when the churn shares are not wanted). The grains'
    per-person rows are stacked, so ``old`` is joined once."""
    per = _union([
        events.group_by("person_id", b=events[f"b_{g.grain}"]).aggregate(
            last=events.ts.max(),
            engaged=_flag(events.name.isin(INTERACTIONS)).max(),
            dwell_n=events.dwell.count(),
            dwell_sum=events.dwell.sum(),
            gmv=events.amount.sum(),
            **{f"n_{name}": events.count(where=events.name == name) for name in COUNTED},
        ).mutate(grain=ibis.literal(g.grain))
        for g in grids
    ])  # fmt: skip
    per = per.mutate(last_epoch=per.last.epoch_seconds())
    window = ibis.window(group_by=[per.grain, per.person_id], order_by=per.b)
    before = per.last_epoch.lag().over(window)
    if old is not None:
        per = per.left_join(old, per.person_id == old.old_person)
        before = ibis.coalesce(per.last_epoch.lag().over(window), per.old_last.epoch_seconds())
    starts = grids[0].start_epoch(per.b)
    if len(grids) > 1:
        starts = ibis.cases(*((per.grain == g.grain, g.start_epoch(per.b)) for g in grids))
    per = per.mutate(before=before, starts=starts, next_bucket=per.b.lead().over(window))
    recent = per.starts - int(RETURNING_WITHIN.total_seconds())
    oldest = per.starts - int(HISTORY.total_seconds())
    flagged = per.mutate(
        returning=_flag(per.before >= recent),
        reactivated=_flag((per.before < recent) & (per.before >= oldest)),
        new=_flag(per.before.isnull() | (per.before < oldest)),
        lost=_flag(per.next_bucket.isnull() | (per.next_bucket > per.b + 1)),
    )
    sums = ("engaged", "returning", "reactivated", "new", "lost", "dwell_n", "dwell_sum", "gmv",
            *(f"n_{name}" for name in COUNTED))  # fmt: skip
    return flagged.group_by("grain", "b").aggregate(
        visitors=flagged.count(), **{name: flagged[name].sum() for name in sums}
    )


def _session_marks(store: EventStore, grids: Sequence[Grid]) -> ibis.Table:
    """Events from 30 minutes before the range to 30 minutes after it, each marked with
    ``is_new`` (starts a session), ``alone`` (no other event within 30 minutes after),
    ``paid_before`` (the person's latest earlier payment), ``session_ts`` and, per grain,
    ``s_<grain>``: the bucket where its session starts."""
    first, last = grids[0].start - INACTIVITY, grids[0].end + INACTIVITY
    events = _bucketed(_events(store, first, last), grids, horizon=True)
    events = events.select("person_id", "event_id", "name", "ts",
                           *(c for c in events.columns if c[:2] in ("b_", "h_")),
                           until=events.ts + ibis.interval(seconds=_GAP))  # fmt: skip
    order = [events.ts, events.event_id]
    around = ibis.window(group_by=events.person_id, order_by=order)
    earlier = ibis.window(group_by=events.person_id, order_by=order, rows=(None, -1))
    previous_until = events.until.lag().over(around)
    following = events.ts.lead().over(around)
    marked = events.mutate(
        is_new=previous_until.isnull() | (previous_until < events.ts),
        alone=following.isnull() | (following > events.until),
        paid_before=ibis.ifelse(events.name == "payment", events.ts, None).max().over(earlier),
    )
    running = ibis.cumulative_window(group_by=marked.person_id,
                                     order_by=[marked.ts, marked.event_id])  # fmt: skip
    return marked.mutate(
        session_ts=ibis.ifelse(marked.is_new, marked.ts, None).max().over(running),
        **{f"s_{g.grain}": ibis.ifelse(marked.is_new, marked[f"b_{g.grain}"], None)
           .max().over(running) for g in grids},
    )  # fmt: skip


def _sessions(marked: ibis.Table, grid: Grid) -> ibis.Table:
    """Per bucket of ``grid``: sessions starting in it, their bounces, view events and
    paying sessions, counting a session's events up to 30 minutes after its bucket ends."""
    session_b = marked[f"s_{grid.grain}"]
    owned = marked.filter(session_b >= 0, session_b < grid.count)
    session_b = owned[f"s_{grid.grain}"]
    counted = owned[f"h_{grid.grain}"] <= session_b
    first_payment = (owned.name == "payment") & (
        owned.paid_before.isnull() | (owned.paid_before < owned.session_ts))
    return owned.group_by(session_bucket=session_b).aggregate(
        sessions=owned.count(where=owned.is_new),
        bounces=owned.count(where=owned.is_new & owned.alone),
        session_views=owned.count(where=owned.name.isin(VIEWS) & counted),
        paying_sessions=owned.count(where=first_payment & counted),
    )


def plan(store: EventStore, grain: Grain, day_from: date, day_to: date,
         tz: str = DEFAULT_TZ, metrics: Sequence[str] | None = None) -> ibis.Table:
    """One row of raw counts per bucket with events: ``grain``, ``b`` (0, 1, …; -1 is the
    bucket before the range), ``visitors``, ``sessions``, ``n_payment`` …"""
    wanted = _wanted(metrics)
    return _plan(store, [grid(grain, day_from, day_to, tz)], wanted)


def _plan(store: EventStore, grids: Sequence[Grid], wanted: Sequence[str]) -> ibis.Table:
    """The rows of :func:`plan` for several grains over the same days, in one query: the
    range's events, the earlier history and the session windows are read once."""
    previous = "period_churn_rate" in wanted
    first = min(g.previous_start if previous else g.start for g in grids)
    events = _bucketed(_events(store, first, grids[0].end), grids)
    is_view = events.name.isin(VIEWS)
    events = events.mutate(
        dwell=ibis.ifelse(is_view, events.dwell_ms, None),
        amount=ibis.ifelse(events.name == "payment", _amount(events.properties), None),
    )
    old = None
    if HISTORY_METRICS.intersection(wanted):
        old = _history(store, grids[0].start - HISTORY, first)
    activity = _activity(events, old, grids)
    if not SESSION_METRICS.intersection(wanted):
        return activity
    marked = _session_marks(store, grids)
    sessions = _union([_sessions(marked, g).mutate(session_grain=ibis.literal(g.grain))
                       for g in grids])  # fmt: skip
    joined = activity.left_join(sessions, [activity.grain == sessions.session_grain,
                                           activity.b == sessions.session_bucket])  # fmt: skip
    return joined.drop("session_grain", "session_bucket")


# --- values ----------------------------------------------------------------------------------


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _bucket_values(row: dict[str, Any], before: dict[str, Any]) -> dict[str, float | None]:
    """All 18 values of a bucket from its raw counts (``before``: the previous bucket's)."""
    visitors, sessions, post_views = row["visitors"], row["sessions"], row["n_post_view"]
    interactions = sum(row[f"n_{name}"] for name in INTERACTIONS)
    return {
        "visitors": float(visitors),
        "sessions": float(sessions),
        "bounce_rate": _ratio(row["bounces"], sessions),
        "pages_per_session": _ratio(row["session_views"], sessions),
        "avg_dwell_seconds": _ratio(row["dwell_sum"] / 1000, row["dwell_n"]),
        "post_views": float(post_views),
        "interaction_rate": _ratio(interactions, post_views),
        "share_rate": _ratio(row["n_share"], post_views),
        "engaged_visitor_rate": _ratio(row["engaged"], visitors),
        "view_to_cart_rate": _ratio(row["n_add_to_cart"], row["n_product_view"]),
        "cart_to_checkout_rate": _ratio(row["n_checkout"], row["n_add_to_cart"]),
        "payment_rate": _ratio(row["n_payment"], row["n_checkout"]),
        "session_conversion_rate": _ratio(row["paying_sessions"], sessions),
        "gmv_fen": float(row["gmv"]),
        "returning_visitor_rate": _ratio(row["returning"], visitors),
        "reactivated_visitor_rate": _ratio(row["reactivated"], visitors),
        "new_visitor_rate": _ratio(row["new"], visitors),
        "period_churn_rate": _ratio(before["lost"], before["visitors"]),
    }


def _values(grid: Grid, wanted: Sequence[str], rows: list[dict[str, Any]],
            ended_by: datetime | None = None) -> list[MetricValue]:
    """Values from the rows of :func:`plan`; buckets without a row count as all zeros."""
    by_bucket = {int(row["b"]): {**_ZEROS, **{key: value or 0 for key, value in row.items()
                                              if key != "grain"}}
                 for row in rows}  # fmt: skip
    buckets = [b for b in range(grid.count)
               if ended_by is None or grid.bucket_start(b + 1) <= ended_by]  # fmt: skip
    computed = [_bucket_values(by_bucket.get(b, _ZEROS), by_bucket.get(b - 1, _ZEROS))
                for b in buckets]  # fmt: skip
    return [
        MetricValue(name, grid.grain, grid.bucket_start(b), found[name])
        for name in wanted
        for b, found in zip(buckets, computed, strict=True)
    ]


_ZEROS: dict[str, Any] = dict.fromkeys(
    ("visitors", "sessions", "bounces", "session_views", "paying_sessions", "dwell_n",
     "dwell_sum", "gmv", "engaged", "returning", "reactivated", "new", "lost",
     *(f"n_{name}" for name in COUNTED)),
    0,
)  # fmt: skip


def compute(store: EventStore, grain: Grain, day_from: date, day_to: date,
            tz: str = DEFAULT_TZ, metrics: Sequence[str] | None = None) -> list[MetricValue]:
    """The ``metrics`` (default all 18) of every ``grain`` bucket of the local days
    ``day_from..day_to`` in ``tz``, ordered by metric (as in :data:`METRICS`) then bucket.

    Buckets without events are included: counts 0, rates None.
    """
    wanted = _wanted(metrics)
    buckets = grid(grain, day_from, day_to, tz)
    key = f"metrics:{grain}:{day_from}:{day_to}:{tz}:{','.join(wanted)}"
    rows = store.run_plan(key, lambda: _plan(store, [buckets], wanted)).to_pylist()
    return _values(buckets, wanted, rows)


def refresh(store: EventStore, day_from: date, day_to: date, tz: str, now: datetime) -> int:
    """Compute all 18 metrics of both grains over the local days ``day_from..day_to`` (one
    query) and replace the stored values of those buckets; returns the rows written.

    Idempotent. Only buckets that have ended by ``now`` are written (a running hour or day
    would look like a drop); stored values of the range's later buckets are removed.
    """
    if now.tzinfo is None:
        raise ValidationFailed("naive_now", "now must be timezone-aware", "now")
    grids = [grid(grain, day_from, day_to, tz) for grain in GRAINS]
    wanted = tuple(METRICS)
    key = f"metrics:both:{day_from}:{day_to}:{tz}"
    rows = store.run_plan(key, lambda: _plan(store, grids, wanted)).to_pylist()
    written = 0
    for g in grids:
        mine = [row for row in rows if row["grain"] == g.grain]
        values = _values(g, wanted, mine, ended_by=now)
        written += write_values(store, g.grain, g.start, g.end, values, now)
    return written
