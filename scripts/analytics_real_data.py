"""Behaviour analytics on real public data: the Taobao log and the UCI shoppers sessions.

Runs the project's query runners (funnels, paths, retention, trends, sessions, dwell) on the
Taobao UserBehavior head loaded into a throw-away DuckDB event store, and computes dwell and
session figures of the UCI Online Shoppers Purchasing Intention sessions with pandas (and,
as a check, with the dwell runner on synthetic events expanded from them).

    python scripts/analytics_real_data.py [--data DIR] [--out FILE.md]

``--data`` defaults to ``$SHEQU_EVAL_DATA``, else ``../shared/data`` next to the repository.
``--out`` writes the generated results block; when the file already holds the block's
markers (as docs/analytics-on-real-data.md does), only the text between them is replaced.
See docs/analytics-on-real-data.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from doc_blocks import DocBlock

from shequ.analytics.dwell import BIN_EDGES, DwellGroup, DwellQuery, DwellRunner
from shequ.analytics.events import EVENT_SCHEMA
from shequ.analytics.funnels import (
    FunnelOrder,
    FunnelQuery,
    FunnelResult,
    FunnelRunner,
    StepDiagnosis,
    aggregate_arrow,
    diagnose,
)
from shequ.analytics.paths import (
    PathsQuery,
    PathsResult,
    PathsRunner,
    page_steps,
    scoped_session_events,
)
from shequ.analytics.retention import RetentionQuery, RetentionResult, RetentionRunner
from shequ.analytics.rollup import days_between, local_time
from shequ.analytics.runner import ScopedQuery, scoped_events
from shequ.analytics.sessions import SessionsQuery, SessionsResult, SessionsRunner
from shequ.analytics.store import EventStore
from shequ.analytics.taobao import BEHAVIOUR_TO_EVENT, TAOBAO_RELATIVE, taobao_to_arrow
from shequ.analytics.trends import TrendsQuery, TrendsResult, TrendsRunner

DEFAULT_DATA = Path(
    os.environ.get("SHEQU_EVAL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
SHOPPERS_RELATIVE = Path("events/online_shoppers_intention/online_shoppers_intention.csv")
TZ = "Asia/Shanghai"
FUNNEL_STEPS = ["product_view", "add_to_cart", "payment"]
EVENT_NAMES = list(BEHAVIOUR_TO_EVENT.values())
# A local day belongs to the log's main range when it holds at least this share of events.
MAIN_RANGE_SHARE = 0.01
RECENT_DAYS = 2
DIAGNOSIS_WINDOW = timedelta(days=1)
FUNNELS: tuple[tuple[FunnelOrder, int], ...] = (
    ("ordered", 1), ("ordered", 7), ("any_order", 1), ("any_order", 7),
)
MAX_PATH_DEPTH = 10
TOP_PATHS = 10
TOP_PATH_DEPTH = 5
BLOCK = DocBlock("scripts/analytics_real_data.py")
BEGIN, END = BLOCK.begin, BLOCK.end

PAGE_TYPES = ("Administrative", "Informational", "ProductRelated")
# Synthetic expansion: one view per page, on a page per type (see synthetic_shopper_events).
SYNTHETIC_VIEWS = {
    "Administrative": ("page_view", "/administrative"),
    "Informational": ("page_view", "/informational"),
    "ProductRelated": ("product_view", "/product_related"),
}
SYNTHETIC_DAY = date(2000, 1, 3)
BIN_LABELS = [
    f"{lower:g}-{BIN_EDGES[k + 1]:g} s" if k + 1 < len(BIN_EDGES) else f"{lower:g}+ s"
    for k, lower in enumerate(BIN_EDGES)
]


# --------------------------------------------------------------------------- Taobao


@dataclass(frozen=True)
class LogRange:
    """Events per local day, the main range (days with ≥ 1 % of events) and the rest."""

    per_day: dict[date, int]
    first: date
    last: date
    outside: int
    earliest: datetime
    latest: datetime

    def outside_days(self) -> list[date]:
        """The local days with events outside the main range."""
        return [day for day in self.per_day if not self.first <= day <= self.last]


def local_days(table: pa.Table, tz: str = TZ) -> pd.Series:
    """The local calendar day of every event's ``ts``, in table order."""
    moments = pd.Series(table.column("ts").to_pandas()).dt.tz_convert(tz)
    return moments.dt.date


def log_range(table: pa.Table, tz: str = TZ) -> LogRange:
    """Count events per local day and find the contiguous days holding ≥ 1 % each."""
    days = local_days(table, tz)
    per_day = {day: int(n) for day, n in sorted(Counter(days).items())}
    total = sum(per_day.values())
    main = [day for day, n in per_day.items() if n >= MAIN_RANGE_SHARE * total]
    first, last = main[0], main[-1]
    if len(main) != (last - first).days + 1:
        raise ValueError(f"the busy days {main} are not contiguous")
    inside = sum(n for day, n in per_day.items() if first <= day <= last)
    ts = table.column("ts")
    return LogRange(per_day=per_day, first=first, last=last, outside=total - inside,
                    earliest=pc.min(ts).as_py(), latest=pc.max(ts).as_py())  # fmt: skip


@dataclass(frozen=True)
class FunnelRun:
    """One funnel query and its result."""

    order: FunnelOrder
    window_days: int
    result: FunnelResult


@dataclass(frozen=True)
class Diagnosis:
    """The last days' funnel against the days before, and the step that got worse."""

    recent: tuple[date, date]
    baseline: tuple[date, date]
    recent_result: FunnelResult
    baseline_result: FunnelResult
    step: StepDiagnosis
    recent_cut_short: int


@dataclass(frozen=True)
class PathFigures:
    """Paths with templates, session depths (exact items) and the top exact paths."""

    template: PathsResult
    depths: dict[int, int]
    distinct_items: int
    top: list[TopPath]
    top_multi: list[TopPath]


@dataclass(frozen=True)
class DailyRow:
    """One local day: events per name, persons with any event, payers."""

    day: date
    events: dict[str, int]
    persons: int
    payers: int


@dataclass(frozen=True)
class TaobaoReport:
    """Every Taobao figure the report prints."""

    events: int
    persons: int
    per_name: dict[str, int]
    distinct_session_ids: int
    range: LogRange
    sessions_all: SessionsResult
    sessions_main: SessionsResult
    daily: list[DailyRow]
    totals: dict[str, int]
    persons_total: int
    payers_total: int
    funnels: list[FunnelRun]
    diagnosis: Diagnosis
    paths: PathFigures
    retention_any: RetentionResult
    retention_pay: RetentionResult
    dwell: DwellGroup


@contextmanager
def taobao_store(path: Path) -> Iterator[tuple[EventStore, pa.Table]]:
    """The log mapped by ``taobao_to_arrow`` in a DuckDB event store of a temporary folder."""
    table = taobao_to_arrow(path)
    with tempfile.TemporaryDirectory(prefix="shequ-real-data-") as folder:
        store = EventStore.open(f"duckdb://{folder}/taobao.duckdb")
        try:
            store.ingest_arrow(table)
            yield store, table
        finally:
            store.close()


def run_funnel(store: EventStore, first: date, last: date, order: FunnelOrder,
               window: timedelta) -> FunnelRunner:
    """The product_view → add_to_cart → payment funnel runner over ``first..last``."""
    return FunnelRunner(FunnelQuery(steps=FUNNEL_STEPS, window=window, order=order,
                                    date_from=first, date_to=last, tz=TZ))  # fmt: skip


def funnels(store: EventStore, first: date, last: date) -> list[FunnelRun]:
    """The funnel in every order mode and window of :data:`FUNNELS`."""
    return [
        FunnelRun(order, days, run_funnel(store, first, last, order, timedelta(days=days))
                  .run(store))
        for order, days in FUNNELS
    ]  # fmt: skip


def funnel_diagnosis(store: EventStore, first: date, last: date, latest: datetime) -> Diagnosis:
    """Ordered 1-day funnel of the last :data:`RECENT_DAYS` days against the days before.

    ``recent_cut_short`` counts recent anchors whose window runs past ``latest`` (the last
    event of the log), so that part of their window was never observed.
    """
    recent_first = last - timedelta(days=RECENT_DAYS - 1)
    baseline_last = recent_first - timedelta(days=1)
    recent = run_funnel(store, recent_first, last, "ordered", DIAGNOSIS_WINDOW)
    rows = recent.execute(store)
    recent_result = aggregate_arrow(recent.query, rows)
    baseline_result = run_funnel(store, first, baseline_last, "ordered",
                                 DIAGNOSIS_WINDOW).run(store)  # fmt: skip
    anchors = rows.column("ts_0").to_pylist()
    cut_short = sum(1 for ts in anchors if ts + DIAGNOSIS_WINDOW > latest)
    return Diagnosis(recent=(recent_first, last), baseline=(first, baseline_last),
                     recent_result=recent_result, baseline_result=baseline_result,
                     step=diagnose(recent_result, baseline_result),
                     recent_cut_short=cut_short)  # fmt: skip


@dataclass(frozen=True)
class SessionPath:
    """One session's exact path (items in visit order, repeats collapsed) and its start."""

    person_id: str
    start: datetime
    pages: list[str]


def session_paths(store: EventStore, first: date, last: date) -> list[SessionPath]:
    """Every session's exact path, from the paths runner's own ``page_steps`` and
    ``scoped_session_events`` (for the session's first event)."""
    query = PathsQuery(date_from=first, date_to=last, tz=TZ, page_grouping="exact")
    steps = page_steps(store, query)
    rows = store.to_arrow(steps.order_by(["person_id", "session_no", "step"])).to_pylist()
    numbered = scoped_session_events(store, query)
    starts = numbered.group_by(["person_id", "session_no"]).aggregate(start=numbered.ts.min())
    began = {(row["person_id"], int(row["session_no"])): row["start"]
             for row in store.to_arrow(starts).to_pylist()}  # fmt: skip
    paths: dict[tuple[str, int], SessionPath] = {}
    for row in rows:
        key = (row["person_id"], int(row["session_no"]))
        if key not in paths:
            paths[key] = SessionPath(person_id=key[0], start=began[key], pages=[])
        paths[key].pages.append(row["page"])
    return list(paths.values())


@dataclass(frozen=True)
class TopPath:
    """A path (its first items), the sessions and persons that took it, and when the first
    and the last of those sessions began."""

    pages: tuple[str, ...]
    sessions: int
    persons: int
    first_start: datetime
    last_start: datetime


def top_paths(sessions: list[SessionPath], depth: int) -> list[TopPath]:
    """Distinct paths truncated to ``depth`` items, most sessions first, then by pages."""
    grouped: dict[tuple[str, ...], list[SessionPath]] = {}
    for session in sessions:
        grouped.setdefault(tuple(session.pages[:depth]), []).append(session)
    ranked = sorted(grouped.items(), key=lambda item: (-len(item[1]), item[0]))
    return [
        TopPath(pages=pages, sessions=len(members),
                persons=len({member.person_id for member in members}),
                first_start=min(member.start for member in members),
                last_start=max(member.start for member in members))
        for pages, members in ranked
    ]  # fmt: skip


def path_figures(store: EventStore, first: date, last: date) -> PathFigures:
    """Template paths (runner), depth per session (runner rows, depth 10) and the top exact
    paths of up to 5 items with the persons who took them (``page_steps``)."""
    template = PathsRunner(PathsQuery(date_from=first, date_to=last, tz=TZ,
                                      page_grouping="template")).run(store)  # fmt: skip
    exact = PathsRunner(PathsQuery(date_from=first, date_to=last, tz=TZ, page_grouping="exact",
                                   depth=MAX_PATH_DEPTH))  # fmt: skip
    depths: Counter[int] = Counter()
    for row in exact.execute(store).to_pylist():
        length = sum(1 for k in range(MAX_PATH_DEPTH) if row[f"page_{k}"] is not None)
        depths[length] += int(row["sessions"])
    sessions = session_paths(store, first, last)
    ranked = top_paths(sessions, TOP_PATH_DEPTH)
    repeated = [path for path in ranked if len(path.pages) > 1 and path.sessions > 1]
    return PathFigures(template=template, depths=dict(sorted(depths.items())),
                       distinct_items=len({page for s in sessions for page in s.pages}),
                       top=ranked[:TOP_PATHS], top_multi=repeated[:TOP_PATHS])


def daily_rows(store: EventStore, first: date, last: date) -> tuple[list[DailyRow],
                                                                    dict[str, int], int, int]:
    """Daily events per name and payers (trends runner), persons with any event per day (an
    ibis count over ``scoped_events``, as the runner counts one event only); and totals."""
    counts: dict[str, TrendsResult] = {
        name: TrendsRunner(TrendsQuery(event=name, date_from=first, date_to=last, tz=TZ))
        .run(store)
        for name in EVENT_NAMES
    }  # fmt: skip
    payers = TrendsRunner(TrendsQuery(event="payment", measure="unique_persons", date_from=first,
                                      date_to=last, tz=TZ)).run(store)  # fmt: skip
    events = scoped_events(store, ScopedQuery(date_from=first, date_to=last, tz=TZ))
    events = events.mutate(day=local_time(TZ, events.ts).date())
    active = store.to_arrow(events.group_by("day").aggregate(persons=events.person_id.nunique()))
    by_day = dict(zip(active["day"].to_pylist(), active["persons"].to_pylist(), strict=True))
    persons_total = store.to_arrow(events.aggregate(n=events.person_id.nunique()))["n"][0]
    rows = []
    for k, day in enumerate(days_between(first, last)):
        rows.append(DailyRow(
            day=day,
            events={name: int(counts[name].series[0].points[k].value) for name in EVENT_NAMES},
            persons=int(by_day.get(day, 0)),
            payers=int(payers.series[0].points[k].value),
        ))  # fmt: skip
    totals = {name: int(counts[name].series[0].total) for name in EVENT_NAMES}
    return rows, totals, int(persons_total.as_py()), int(payers.series[0].total)


def retention(store: EventStore, first: date, last: date, start_event: str | None = None,
              return_event: str | None = None) -> RetentionResult:
    """Daily cohorts over ``first..last``, one period per day of the range."""
    periods = (last - first).days + 1
    return RetentionRunner(RetentionQuery(date_from=first, date_to=last, tz=TZ, period="day",
                                          periods=periods, start_event=start_event,
                                          return_event=return_event)).run(store)  # fmt: skip


def taobao_report(path: Path) -> TaobaoReport:
    """Load the log into a temporary DuckDB store and run every Taobao query of the report."""
    with taobao_store(path) as (store, table):
        span = log_range(table)
        first, last = span.first, span.last
        names = Counter(table.column("name").to_pylist())
        all_days = SessionsQuery(date_from=min(span.per_day), date_to=max(span.per_day), tz=TZ)
        main_days = SessionsQuery(date_from=first, date_to=last, tz=TZ)
        daily, totals, persons_total, payers_total = daily_rows(store, first, last)
        dwell = DwellRunner(DwellQuery(date_from=first, date_to=last, tz=TZ,
                                       by="content_type")).run(store)  # fmt: skip
        return TaobaoReport(
            events=table.num_rows,
            persons=pc.count_distinct(table.column("customer_id")).as_py(),
            per_name={name: names[name] for name in EVENT_NAMES},
            distinct_session_ids=pc.count_distinct(table.column("session_id")).as_py(),
            range=span,
            sessions_all=SessionsRunner(all_days).run(store),
            sessions_main=SessionsRunner(main_days).run(store),
            daily=daily, totals=totals, persons_total=persons_total, payers_total=payers_total,
            funnels=funnels(store, first, last),
            diagnosis=funnel_diagnosis(store, first, last, span.latest),
            paths=path_figures(store, first, last),
            retention_any=retention(store, first, last),
            retention_pay=retention(store, first, last, "product_view", "payment"),
            dwell=dwell.groups[0],
        )


# --------------------------------------------------------------------------- shoppers


def read_shoppers(path: Path) -> pd.DataFrame:
    """The UCI sessions; ``Revenue`` and ``Weekend`` as booleans (the file may spell them
    ``TRUE``/``FALSE`` or ``1``/``0``)."""
    frame = pd.read_csv(path)
    for column in ("Revenue", "Weekend"):
        text = frame[column].astype(str).str.strip().str.upper()
        if not text.isin(["TRUE", "FALSE", "1", "0"]).all():
            raise ValueError(f"{column}: unexpected values {sorted(set(text))[:5]}")
        frame[column] = text.isin(["TRUE", "1"])
    for kind in PAGE_TYPES:
        if (frame[kind] < 0).any() or (frame[f"{kind}_Duration"] < 0).any():
            raise ValueError(f"{kind}: negative pages or duration")
    return frame


def per_page_ms(frame: pd.DataFrame, kind: str) -> pd.Series:
    """Mean duration of one page of ``kind`` per session, in whole milliseconds (0 pages:
    0 ms, and such sessions have no views of that kind)."""
    pages = frame[kind].to_numpy()
    seconds = frame[f"{kind}_Duration"].to_numpy(dtype=float)
    mean = np.divide(seconds, pages, out=np.zeros_like(seconds), where=pages > 0)
    return pd.Series(np.rint(mean * 1000).astype(np.int64), index=frame.index)


def weighted_views_ms(frame: pd.DataFrame, kind: str) -> np.ndarray:
    """One value per page of ``kind``: its session's mean per-page duration in ms."""
    return np.repeat(per_page_ms(frame, kind).to_numpy(), frame[kind].to_numpy())


def histogram(dwell_ms: np.ndarray) -> list[int]:
    """Views per bin of :data:`BIN_EDGES` (``[lower, upper)`` seconds, last bin open)."""
    edges = np.array(BIN_EDGES) * 1000
    bins = np.searchsorted(edges, dwell_ms, side="right") - 1
    return [int(n) for n in np.bincount(bins, minlength=len(BIN_EDGES))]


@dataclass(frozen=True)
class PageTypeFigures:
    """One page type over all sessions."""

    kind: str
    sessions_with_pages: int
    pages: int
    seconds: float
    pooled_mean_seconds: float
    median_per_page_seconds: float
    zero_duration_sessions: int
    zero_duration_single_page: int
    histogram: list[int]


@dataclass(frozen=True)
class GroupFigures:
    """Sessions of buyers or non-buyers."""

    label: str
    sessions: int
    median_session_seconds: float
    p90_session_seconds: float
    median_product_pages: float
    pooled_product_seconds: float
    median_product_seconds: float


@dataclass(frozen=True)
class RunnerCheck:
    """The dwell runner on the synthetic events of one page type, and whether it agrees
    with pandas on the same per-page values."""

    kind: str
    page: str
    group: DwellGroup
    pandas_median: float
    pandas_p90: float
    pandas_mean: float
    pandas_histogram: list[int]

    @property
    def agrees(self) -> bool:
        """Same views and bins, and statistics within a microsecond."""
        group = self.group
        close = all(
            value is not None and abs(value - expected) < 1e-6
            for value, expected in ((group.median_seconds, self.pandas_median),
                                    (group.p90_seconds, self.pandas_p90),
                                    (group.mean_seconds, self.pandas_mean))
        )  # fmt: skip
        bins = [b.views for b in group.histogram]
        return close and bins == self.pandas_histogram and group.with_dwell == group.views


@dataclass(frozen=True)
class ShoppersReport:
    """Every UCI sessions figure the report prints."""

    sessions: int
    duplicate_rows: int
    buyers: int
    weekend: int
    no_pages: int
    session_mean: float
    session_median: float
    session_p90: float
    zero_duration: int
    types: list[PageTypeFigures]
    groups: list[GroupFigures]
    checks: list[RunnerCheck] = field(default_factory=list)
    synthetic_events: int = 0


def session_seconds(frame: pd.DataFrame) -> pd.Series:
    """A session's duration: the sum of its three page-type durations, in seconds."""
    return sum((frame[f"{kind}_Duration"] for kind in PAGE_TYPES), pd.Series(0.0, frame.index))


def page_type_figures(frame: pd.DataFrame, kind: str) -> PageTypeFigures:
    """Pages, durations and per-page dwell of one page type."""
    pages = frame[kind]
    seconds = frame[f"{kind}_Duration"]
    viewed = frame[pages > 0]
    per_page = viewed[f"{kind}_Duration"] / viewed[kind]
    zero = viewed[viewed[f"{kind}_Duration"] == 0]
    return PageTypeFigures(
        kind=kind, sessions_with_pages=len(viewed), pages=int(pages.sum()),
        seconds=float(seconds.sum()),
        pooled_mean_seconds=float(seconds.sum() / pages.sum()),
        median_per_page_seconds=float(per_page.median()),
        zero_duration_sessions=len(zero), zero_duration_single_page=int((zero[kind] == 1).sum()),
        histogram=histogram(weighted_views_ms(frame, kind)),
    )  # fmt: skip


def group_figures(frame: pd.DataFrame, label: str) -> GroupFigures:
    """Session length and product-page dwell of a group of sessions."""
    total = session_seconds(frame)
    viewed = frame[frame.ProductRelated > 0]
    per_page = viewed.ProductRelated_Duration / viewed.ProductRelated
    return GroupFigures(
        label=label, sessions=len(frame), median_session_seconds=float(total.median()),
        p90_session_seconds=float(total.quantile(0.9)),
        median_product_pages=float(frame.ProductRelated.median()),
        pooled_product_seconds=float(frame.ProductRelated_Duration.sum()
                                     / frame.ProductRelated.sum()),
        median_product_seconds=float(per_page.median()),
    )  # fmt: skip


def synthetic_shopper_events(frame: pd.DataFrame) -> pa.Table:
    """Synthetic events: per session ``i`` (customer ``osi_<i>``), one view per page, with
    ``dwell_ms`` = the session's mean per-page duration of that type (whole ms).

    Everything but the counts and durations is made up: all sessions start at local
    midnight of :data:`SYNTHETIC_DAY`, pages follow each other without gaps in the order
    administrative, informational, product-related (the data does not record the order).
    """
    start = datetime(SYNTHETIC_DAY.year, SYNTHETIC_DAY.month, SYNTHETIC_DAY.day,
                     tzinfo=UTC) - timedelta(hours=8)  # local midnight in Asia/Shanghai
    customers, names, pages, dwell, session = [], [], [], [], []
    for kind in PAGE_TYPES:
        count = frame[kind].to_numpy()
        rows = np.repeat(np.arange(len(frame)), count)
        customers.append(rows)
        session.append(rows)
        view, path = SYNTHETIC_VIEWS[kind]
        names.append(np.full(len(rows), view, dtype=object))
        pages.append(np.full(len(rows), path, dtype=object))
        dwell.append(weighted_views_ms(frame, kind))
    row = np.concatenate(customers)
    dwell_ms = np.concatenate(dwell)
    order = np.argsort(row, kind="stable")  # per session, types in PAGE_TYPES order
    row, dwell_ms = row[order], dwell_ms[order]
    name = np.concatenate(names)[order]
    page = np.concatenate(pages)[order]
    # Offset of each view: the dwell of the session's earlier views.
    cumulative = np.cumsum(dwell_ms) - dwell_ms
    first_of_row = np.searchsorted(row, row)
    offset_ms = cumulative - cumulative[first_of_row]
    base_us = int(start.timestamp()) * 1_000_000
    position = np.arange(len(row)) - first_of_row
    columns = {
        "event_id": pa.array([f"osi-{r}-{p}" for r, p in zip(row, position, strict=True)]),
        "name": pa.array(name.tolist(), pa.string()),
        "ts": pa.array(base_us + offset_ms * 1000, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "customer_id": pa.array([f"osi_{r}" for r in row], pa.string()),
        "page": pa.array(page.tolist(), pa.string()),
        "channel": pa.array(["uci"] * len(row), pa.string()),
        "dwell_ms": pa.array(dwell_ms, pa.int64()),
    }
    n = len(row)
    arrays = [columns[f.name].cast(f.type) if f.name in columns else pa.nulls(n, f.type)
              for f in EVENT_SCHEMA]  # fmt: skip
    return pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA)


def runner_checks(frame: pd.DataFrame) -> tuple[list[RunnerCheck], int]:
    """The dwell runner (by exact page) on the synthetic events, against pandas."""
    events = synthetic_shopper_events(frame)
    longest = float(session_seconds(frame).max())
    last = SYNTHETIC_DAY + timedelta(days=int(longest // 86_400) + 1)
    with tempfile.TemporaryDirectory(prefix="shequ-real-data-") as folder:
        store = EventStore.open(f"duckdb://{folder}/shoppers.duckdb")
        try:
            store.ingest_arrow(events)
            result = DwellRunner(DwellQuery(date_from=SYNTHETIC_DAY, date_to=last, tz=TZ,
                                            by="page", page_grouping="exact")).run(store)
        finally:
            store.close()
    groups = {group.group: group for group in result.groups}
    checks = []
    for kind in PAGE_TYPES:
        values = weighted_views_ms(frame, kind) / 1000
        page = SYNTHETIC_VIEWS[kind][1]
        checks.append(RunnerCheck(
            kind=kind, page=page, group=groups[page],
            pandas_median=float(np.percentile(values, 50)),
            pandas_p90=float(np.percentile(values, 90)),
            pandas_mean=float(values.mean()),
            pandas_histogram=histogram(weighted_views_ms(frame, kind)),
        ))  # fmt: skip
    return checks, events.num_rows


def shoppers_report(path: Path) -> ShoppersReport:
    """Dwell and session figures of the UCI sessions, and the synthetic runner check."""
    frame = read_shoppers(path)
    total = session_seconds(frame)
    pages = sum((frame[kind] for kind in PAGE_TYPES), pd.Series(0, frame.index))
    checks, synthetic = runner_checks(frame)
    return ShoppersReport(
        sessions=len(frame), duplicate_rows=int(frame.duplicated().sum()),
        buyers=int(frame.Revenue.sum()), weekend=int(frame.Weekend.sum()),
        no_pages=int((pages == 0).sum()),
        session_mean=float(total.mean()), session_median=float(total.median()),
        session_p90=float(total.quantile(0.9)), zero_duration=int((total == 0).sum()),
        types=[page_type_figures(frame, kind) for kind in PAGE_TYPES],
        groups=[group_figures(frame[frame.Revenue], "buyers (Revenue)"),
                group_figures(frame[~frame.Revenue], "non-buyers")],
        checks=checks, synthetic_events=synthetic,
    )  # fmt: skip


# --------------------------------------------------------------------------- rendering


def _n(value: int | float) -> str:
    return f"{value:,}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _seconds(value: float | None) -> str:
    """Seconds as ``42 s``, ``12.5 min`` or ``3.2 h``."""
    if value is None:
        return "–"
    if value < 120:
        return f"{value:.1f} s"
    if value < 120 * 60:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


def _day(day: date) -> str:
    return f"{day.isoformat()} {day.strftime('%a')}"


def _funnel_table(result: FunnelResult) -> list[str]:
    return _table(
        ["step", "persons", "from previous", "from first", "dropped", "median time from previous"],
        [[s.name, _n(s.count), _pct(s.conversion_from_previous), _pct(s.conversion_from_first),
          _n(s.dropped_from_previous), _seconds(s.median_seconds_from_previous)]
         for s in result.steps],
    )  # fmt: skip


def _retention_table(result: RetentionResult) -> list[str]:
    width = max(len(cohort.retained) for cohort in result.cohorts)
    rows = []
    for cohort in result.cohorts:
        cells = [f"{_n(n)} ({rate:.0%})" for n, rate in zip(cohort.retained[1:],
                                                             cohort.rates[1:], strict=True)]
        rows.append([_day(cohort.cohort_start), _n(cohort.size),
                     *cells, *[""] * (width - 1 - len(cells))])  # fmt: skip
    return _table(["cohort (first event)", "size", *(f"D{k}" for k in range(1, width))], rows)


def render_taobao(report: TaobaoReport) -> list[str]:
    """The Taobao part of the generated block."""
    span = report.range
    first, last = span.first, span.last
    out = ["### Taobao UserBehavior head", ""]
    out += [f"{_n(report.events)} events of {_n(report.persons)} persons; "
            f"{_n(report.distinct_session_ids)} distinct `session_id`s from the import "
            "(30-minute gap).", ""]  # fmt: skip
    out += _table(["event", "events", "share"],
                  [[name, _n(n), _pct(n / report.events)]
                   for name, n in report.per_name.items()])  # fmt: skip
    out += ["#### Date range (local days, Asia/Shanghai)", ""]
    out += [f"Timestamps run from {span.earliest:%Y-%m-%d %H:%M:%S} to "
            f"{span.latest:%Y-%m-%d %H:%M:%S} UTC. Days holding at least "
            f"{MAIN_RANGE_SHARE:.0%} of the events form the main range **{first} .. {last}** "
            f"({(last - first).days + 1} days); {_n(span.outside)} events on "
            f"{len(span.outside_days())} other days "
            "lie outside it and are left out of every query below except the first "
            "sessions row.", ""]  # fmt: skip
    out += _table(["local day", "events", "in main range"],
                  [[_day(day), _n(n), "yes" if first <= day <= last else "**no**"]
                   for day, n in span.per_day.items()])  # fmt: skip
    out += ["#### Sessions (`SessionsRunner`)", ""]
    rows = []
    for label, result in (("every day with events", report.sessions_all),
                          (f"main range {first} .. {last}", report.sessions_main)):
        sizes = np.array([item.events for item in result.items])
        rows.append([label, _n(result.sessions), _seconds(result.median_duration_seconds),
                     _pct(result.bounce_rate), f"{np.median(sizes):g}",
                     f"{np.percentile(sizes, 90):g}"])  # fmt: skip
    out += _table(["range", "sessions", "median duration", "bounce rate (1 event)",
                   "median events", "p90 events"], rows)  # fmt: skip
    out += ["#### Daily trends (`TrendsRunner`, local days)", ""]
    out += ["Events per behaviour and payers (`unique_persons` of `payment`) from the trends "
            "runner; persons with any event per day from an ibis count over `scoped_events` "
            "(the trends runner measures one event).", ""]  # fmt: skip
    out += _table(
        ["day", *EVENT_NAMES, "persons (any event)", "payers"],
        [[_day(row.day), *(_n(row.events[name]) for name in EVENT_NAMES), _n(row.persons),
          _n(row.payers)] for row in report.daily]
        + [["**range**", *(_n(report.totals[name]) for name in EVENT_NAMES),
            _n(report.persons_total), _n(report.payers_total)]],
    )  # fmt: skip
    out += ["#### Funnel product_view → add_to_cart → payment (`FunnelRunner`)", ""]
    out += [f"Over {first} .. {last}; a person's anchor is their first product view in the "
            "range, later steps must fall within the window after it.", ""]  # fmt: skip
    for run in report.funnels:
        out += [f"**{run.order}, window {run.window_days} day{'s' * (run.window_days > 1)}**",
                ""]  # fmt: skip
        out += _funnel_table(run.result)
    diagnosis = report.diagnosis
    out += ["#### Diagnosis: last 2 days against the days before (`funnels.diagnose`)", ""]
    out += [f"Ordered funnel, window 1 day; recent = {diagnosis.recent[0]} .. "
            f"{diagnosis.recent[1]}, baseline = {diagnosis.baseline[0]} .. "
            f"{diagnosis.baseline[1]}.", ""]  # fmt: skip
    out += _table(
        ["step", "recent persons", "recent from previous", "baseline persons",
         "baseline from previous"],
        [[r.name, _n(r.count), _pct(r.conversion_from_previous), _n(b.count),
          _pct(b.conversion_from_previous)]
         for r, b in zip(diagnosis.recent_result.steps, diagnosis.baseline_result.steps,
                         strict=True)],
    )  # fmt: skip
    step = diagnosis.step
    out += [f"`diagnose`: step {step.order} `{step.name}`, loss rate {_pct(step.loss_rate)} "
            f"against {_pct(step.baseline_loss_rate)} (deviation {step.deviation:+.1%}). "
            f"{_n(diagnosis.recent_cut_short)} of the "
            f"{_n(diagnosis.recent_result.steps[0].count)} recent anchors come less than "
            "1 day before the log's last event, so part of their window was never "
            "recorded.", ""]  # fmt: skip
    out += render_paths(report.paths)
    out += ["#### Retention (`RetentionRunner`, day cohorts)", ""]
    for title, cohorts in (("Any event → any event", report.retention_any),
                           ("First product_view → return with payment",
                            report.retention_pay)):  # fmt: skip
        out += [f"**{title}**: D1 {_pct(cohorts.d1)}, D7 {_pct(cohorts.d7)} (over the cohorts "
                "where the day is complete). Cells: persons (share of the cohort); period 0 "
                "is the cohort size.", ""]  # fmt: skip
        out += _retention_table(cohorts)
    dwell = report.dwell
    out += ["#### Dwell on product views (`DwellRunner`, by content type)", ""]
    out += [f"The log has no dwell measure, so the runner uses the time to the person's next "
            f"event when it is at most 30 minutes later: {_n(dwell.views)} product views, "
            f"{_n(dwell.with_dwell)} with a dwell, {_n(dwell.unknown)} unknown (last of a "
            f"session); median {_seconds(dwell.median_seconds)}, p75 "
            f"{_seconds(dwell.p75_seconds)}, p90 {_seconds(dwell.p90_seconds)}, mean "
            f"{_seconds(dwell.mean_seconds)}.", ""]  # fmt: skip
    out += _table(BIN_LABELS, [[_n(b.views) for b in dwell.histogram]])
    return out


def _local(moment: datetime) -> str:
    return moment.astimezone(ZoneInfo(TZ)).strftime("%m-%d %H:%M")


def _path_rows(entries: list[TopPath]) -> list[list[object]]:
    return [[" → ".join(p.removeprefix("/product/") for p in path.pages), len(path.pages),
             _n(path.sessions), _n(path.persons),
             f"{_local(path.first_start)} – {_local(path.last_start)}"]
            for path in entries]  # fmt: skip


def render_paths(paths: PathFigures) -> list[str]:
    """The paths part of the generated block."""
    template = paths.template
    out = ["#### Paths (`PathsRunner`)", ""]
    out += [f"Template grouping: {_n(template.sessions)} sessions, "
            f"{len(template.paths)} distinct path: "
            + ", ".join(f"`{' → '.join(p.pages)}` ({_n(p.count)}, {_pct(p.share)})"
                        for p in template.paths)
            + ". Every page is `/product/<item_id>`, so the template view has one node.",
            ""]  # fmt: skip
    total = sum(paths.depths.values())
    out += [f"Exact grouping: {_n(paths.distinct_items)} distinct items. Session depth = "
            f"distinct consecutive items per session (from the runner's rows at depth "
            f"{MAX_PATH_DEPTH}; {MAX_PATH_DEPTH} means {MAX_PATH_DEPTH} or more):", ""]
    out += _table(["items in session", "sessions", "share"],
                  [[f"{k}+" if k == MAX_PATH_DEPTH else k, _n(n), _pct(n / total)]
                   for k, n in paths.depths.items()])  # fmt: skip
    header = ["path (item ids)", "items", "sessions", "persons", "sessions began (local)"]
    out += [f"Top {TOP_PATHS} exact paths (first {TOP_PATH_DEPTH} items of a session):", ""]
    out += _table(header, _path_rows(paths.top))
    out += ["Exact paths of at least 2 items taken by more than one session:", ""]
    out += _table(header, _path_rows(paths.top_multi))
    return out


def render_shoppers(report: ShoppersReport) -> list[str]:
    """The UCI sessions part of the generated block."""
    out = ["### Online Shoppers Purchasing Intention (UCI)", ""]
    out += [f"{_n(report.sessions)} sessions ({_n(report.duplicate_rows)} rows repeat an "
            f"earlier row exactly; kept), {_n(report.buyers)} with `Revenue` "
            f"({_pct(report.buyers / report.sessions)}), {_n(report.weekend)} on a weekend, "
            f"{_n(report.no_pages)} without any page. Session duration (sum of the three "
            f"durations): mean {_seconds(report.session_mean)}, median "
            f"{_seconds(report.session_median)}, p90 {_seconds(report.session_p90)}; "
            f"{_n(report.zero_duration)} sessions last 0 s.", ""]  # fmt: skip
    out += ["#### Per page type", ""]
    out += ["Mean dwell per page: pooled = total duration / total pages; per session = "
            "duration / pages for sessions with pages > 0, median over those sessions.", ""]
    out += _table(
        ["page type", "sessions with pages", "pages", "pooled mean per page",
         "median per-session mean", "sessions with pages but 0 s", "… of which 1 page"],
        [[t.kind, _n(t.sessions_with_pages), _n(t.pages), _seconds(t.pooled_mean_seconds),
          _seconds(t.median_per_page_seconds), _n(t.zero_duration_sessions),
          _n(t.zero_duration_single_page)] for t in report.types],
    )  # fmt: skip
    out += ["#### Dwell distribution per page (bins of `shequ.analytics.dwell.BIN_EDGES`)", ""]
    out += ["Each page counts once, with its session's mean per-page duration of that type "
            "(rounded to whole milliseconds).", ""]  # fmt: skip
    out += _table(["page type", *BIN_LABELS],
                  [[t.kind, *(_n(n) for n in t.histogram)] for t in report.types])
    out += ["#### Buyers and non-buyers", ""]
    out += _table(
        ["sessions", "count", "median session", "p90 session", "median product pages",
         "pooled product dwell per page", "median per-session product dwell"],
        [[g.label, _n(g.sessions), _seconds(g.median_session_seconds),
          _seconds(g.p90_session_seconds), f"{g.median_product_pages:g}",
          _seconds(g.pooled_product_seconds), _seconds(g.median_product_seconds)]
         for g in report.groups],
    )  # fmt: skip
    out += ["#### The dwell runner on synthetic events", ""]
    out += [f"Each session expanded into {_n(report.synthetic_events)} **synthetic** view "
            "events (one per page, `dwell_ms` = the session's mean per-page duration of the "
            "type; start times, page order and page names are made up), read by "
            "`DwellRunner(by=\"page\", page_grouping=\"exact\")` on DuckDB and compared with "
            "numpy on the same values.", ""]  # fmt: skip
    out += _table(
        ["page type", "page", "views", "median", "p90", "mean", "same as numpy"],
        [[c.kind, f"`{c.page}`", _n(c.group.views), _seconds(c.group.median_seconds),
          _seconds(c.group.p90_seconds), _seconds(c.group.mean_seconds),
          "yes" if c.agrees else "**no**"] for c in report.checks],
    )  # fmt: skip
    return out


def render(taobao: TaobaoReport, shoppers: ShoppersReport) -> str:
    """The generated results block (markdown, between the BEGIN/END markers)."""
    lines = [BEGIN, "", *render_taobao(taobao), *render_shoppers(shoppers), END]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """Run both reports and print (and, with ``--out``, write) the generated block."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=None)
    arguments = parser.parse_args(argv)
    block = render(taobao_report(arguments.data / TAOBAO_RELATIVE),
                   shoppers_report(arguments.data / SHOPPERS_RELATIVE))
    print(block, end="")
    if arguments.out is not None:
        BLOCK.write(arguments.out, block)


if __name__ == "__main__":
    main()
