"""Analytics benchmark: each query runner against hand-written DuckDB SQL and pandas.

    python benchmarks/analytics.py --quick     # the `default` demo (1M events), under a minute
    python benchmarks/analytics.py             # the `large` demo (10M events)

The event store is built once from the demo generator (seed 7) into a DuckDB file under
``~/.cache/shequ-bench/`` and reused while its manifest matches. Every case times three
ways of computing the same answer in the same run — the runner (``Runner(query).run``),
one hand-written DuckDB SQL query on the store's own connection, and pandas on a frame
loaded once beforehand — asserts the three answers are equal, and reports medians and
ratios. Ends with one line:
``RESULT events=… funnel_ms=… funnel_vs_sql=… funnel_vs_pandas=… …``
where ``vs_sql`` = runner time / SQL time (target ≤ 1.3) and ``vs_pandas`` = pandas time /
runner time (target ≥ 10).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import ibis
import numpy as np
import pandas as pd
import psutil
import pyarrow as pa

from shequ.analytics.funnels import FunnelQuery, FunnelResult, FunnelRunner, aggregate_arrow
from shequ.analytics.pages import python_page_template
from shequ.analytics.store import EventStore
from shequ.demo.sizes import DEFAULT_END, SIZES

SEED = 7
TZ = "Asia/Shanghai"
CACHE_DIR = Path(os.environ.get("SHEQU_BENCH_CACHE", "~/.cache/shequ-bench")).expanduser()
MANIFEST_VERSION = 1  # bump when the way the store is built changes
# The cases: each is in CASES below, or reported as missing.
PLANNED = ("funnel", "paths", "retention", "dwell", "metrics")

Answer = Any  # a normalised, comparable value: tuples of ints, strings, floats, dates


@dataclass(frozen=True)
class Config:
    size: str
    runs: int  # timed repetitions of the runner and the SQL peer (after one warm-up)
    pandas_runs: int
    scale: int = 1  # copies of the demo's events (see scaled_store)
    rollups: bool = False  # also time retention and paths from rollups (rollup_sketch)


# ---------------------------------------------------------------- the cached event store


@dataclass(frozen=True)
class Manifest:
    """What the cached store holds; a mismatch with the wanted size/seed means a rebuild."""

    version: int
    size: str
    seed: int
    end: str  # the demo's last local day
    expected_events: int  # the generator's target for the size
    events: int  # rows in the store
    devices: int
    products: int
    build_seconds: float
    ingest_seconds: float

    @property
    def last_day(self) -> date:
        return date.fromisoformat(self.end)


def store_path(size: str, seed: int) -> Path:
    return CACHE_DIR / f"events-{size}-seed{seed}.duckdb"


def _manifest_path(path: Path) -> Path:
    return path.with_suffix(".json")


def _usable(path: Path, size: str, seed: int) -> Manifest | None:
    """The manifest of the cached store if it matches the wanted store, else None."""
    meta = _manifest_path(path)
    if not path.exists() or not meta.exists():
        return None
    try:
        manifest = Manifest(**json.loads(meta.read_text(encoding="utf-8")))
    except (TypeError, ValueError):
        return None
    wanted = (MANIFEST_VERSION, size, seed, DEFAULT_END.isoformat(), SIZES[size].events)
    found = (manifest.version, manifest.size, manifest.seed, manifest.end,
             manifest.expected_events)  # fmt: skip
    return manifest if wanted == found else None


def build_store(path: Path, size: str, seed: int) -> Manifest:
    """Generate the demo community and bulk-load its events and dims into a fresh file."""
    from shequ.demo.generator import generate  # only needed for a rebuild

    began = time.perf_counter()
    partial = path.with_suffix(".building.duckdb")
    for stale in (partial, partial.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)
    community = generate(size=size, seed=seed)
    print(f"build: generated the {size} community in {time.perf_counter() - began:.1f} s; "
          f"loading {community.event_count:,} events into {partial}", flush=True)  # fmt: skip
    store = EventStore.open(f"duckdb://{partial}")
    ingest = 0.0
    done = 0
    try:
        for chunk in community.events():
            start = time.perf_counter()
            store.ingest_arrow(chunk)
            ingest += time.perf_counter() - start
            done += chunk.num_rows
            if done % 1_000_000 < chunk.num_rows or done == community.event_count:
                print(f"build: {done:,}/{community.event_count:,} events, ingest "
                      f"{done / ingest:,.0f} events/s", flush=True)  # fmt: skip
        store.replace_rows("dim_devices", pa.table({
            "device_id": pa.array([d["external_id"] for d in community.devices], pa.string()),
            "kind": pa.array([d["kind"] for d in community.devices], pa.string()),
        }))  # fmt: skip
        store.replace_rows("dim_products", pa.table({
            "sku": pa.array([p["sku"] for p in community.products], pa.string()),
            "brand_id": pa.array([p["brand_external_id"] for p in community.products],
                                 pa.string()),
            "category_id": pa.array([p["category_external_id"] for p in community.products],
                                    pa.string()),
        }))  # fmt: skip
        events = store.count()
    finally:
        store.close()
    if events != community.event_count:
        raise RuntimeError(f"the store holds {events:,} events, expected "
                           f"{community.event_count:,}")  # fmt: skip
    last_day = (community.end - timedelta(microseconds=1)).astimezone(ZoneInfo(TZ)).date()
    manifest = Manifest(
        version=MANIFEST_VERSION, size=size, seed=seed, end=last_day.isoformat(),
        expected_events=SIZES[size].events, events=events, devices=len(community.devices),
        products=len(community.products), build_seconds=round(time.perf_counter() - began, 1),
        ingest_seconds=round(ingest, 1),
    )  # fmt: skip
    partial.rename(path)
    _manifest_path(path).write_text(json.dumps(manifest.__dict__, indent=2), encoding="utf-8")
    return manifest


def cached_store(size: str, seed: int) -> tuple[Path, Manifest]:
    """The store file for (size, seed), built first when missing or stale."""
    path = store_path(size, seed)
    manifest = _usable(path, size, seed)
    if manifest is None:
        print(f"build: no usable cache at {path}; building it (once)", flush=True)
        path.unlink(missing_ok=True)
        _manifest_path(path).unlink(missing_ok=True)
        manifest = build_store(path, size, seed)
        print(f"build: done in {manifest.build_seconds:.0f} s (ingest "
              f"{manifest.ingest_seconds:.0f} s)", flush=True)  # fmt: skip
    print(f"store: {path} ({manifest.events:,} events, {path.stat().st_size / 2**30:.2f} GiB)")
    return path, manifest


def scaled_store(base: Path, manifest: Manifest, factor: int) -> tuple[Path, Manifest]:
    """A store with ``factor`` copies of the base store's events, each copy's persons,
    sessions, devices and event ids suffixed ``~k`` (k ≥ 1; copy 0 keeps the ids): the same
    days and behaviour with ``factor`` times the people. Every count a case answers is
    ``factor`` times the base store's. Built once with ``CREATE TABLE … AS SELECT`` (the copy
    has no primary key: it is only read), cached beside the base store."""
    path = base.with_name(f"{base.stem}-x{factor}.duckdb")
    meta = _manifest_path(path)
    if path.exists() and meta.exists():
        found = json.loads(meta.read_text(encoding="utf-8"))
        if found.get("events") == manifest.events * factor and found.get("end") == manifest.end:
            return path, Manifest(**found)
    print(f"build: copying {base.name} x{factor} into {path} (once)", flush=True)
    path.unlink(missing_ok=True)
    began = time.perf_counter()

    def suffixed(column: str) -> str:
        return f"CASE WHEN k = 0 THEN {column} ELSE {column} || '~' || k END"

    con = duckdb.connect(str(path))
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute(f"ATTACH '{base}' AS base (READ_ONLY)")
        ids = ("event_id", "customer_id", "anonymous_id", "session_id", "device_id")
        columns = [suffixed(c) + f" AS {c}" if c in ids else c
                   for c in ("event_id", "name", "ts", "customer_id", "anonymous_id",
                             "session_id", "device_id", "page", "referrer", "channel",
                             "properties", "x", "y", "dwell_ms", "received_at")]  # fmt: skip
        # Copies of one event stay together, so the file keeps the base's rough time order
        # (and DuckDB's per-row-group min/max of ts keep skipping what a date range excludes).
        con.execute(f"CREATE TABLE events AS SELECT {', '.join(columns)} "
                    f"FROM base.events, range({factor}) copies(k)")  # fmt: skip
        con.execute(f"CREATE TABLE identity_links AS SELECT {suffixed('anonymous_id')} AS "
                    f"anonymous_id, {suffixed('customer_id')} AS customer_id, linked_at "
                    f"FROM base.identity_links, range({factor}) copies(k)")  # fmt: skip
        con.execute(f"CREATE TABLE dim_devices AS SELECT {suffixed('device_id')} AS device_id, "
                    f"kind FROM base.dim_devices, range({factor}) copies(k)")  # fmt: skip
        con.execute("CREATE TABLE dim_products AS SELECT * FROM base.dim_products")
        row = con.execute("SELECT count(*) FROM events").fetchone()
    finally:
        con.close()
    events = int(row[0]) if row else 0
    if events != manifest.events * factor:
        raise RuntimeError(f"the x{factor} copy holds {events:,} events")
    scaled = Manifest(**{**manifest.__dict__, "events": events,
                         "devices": manifest.devices * factor,
                         "build_seconds": round(time.perf_counter() - began, 1),
                         "ingest_seconds": 0.0})  # fmt: skip
    meta.write_text(json.dumps(scaled.__dict__, indent=2), encoding="utf-8")
    print(f"build: x{factor} copy done in {scaled.build_seconds:.0f} s", flush=True)
    return path, scaled


# ---------------------------------------------------------------- cases


@dataclass(frozen=True)
class Frames:
    """The pandas inputs: events (the columns the cases need), ``identity_links`` as a
    Series anonymous_id → customer_id, and each distinct page's template."""

    events: pd.DataFrame
    links: pd.Series
    templates: dict[str, str]


@dataclass(frozen=True)
class Case:
    """Three ways to one answer; each callable returns the normalised answer."""

    name: str
    runner: Callable[[EventStore], Answer]
    sql: Callable[[duckdb.DuckDBPyConnection], Answer]
    pandas: Callable[[Frames], Answer]


@dataclass(frozen=True)
class Context:
    """What case factories may use: the demo's last local day."""

    last_day: date


class AnswersDiffer(AssertionError):
    """Two ways of computing a case disagree: the benchmark is void."""


def _literal(moment: datetime) -> str:
    return f"TIMESTAMPTZ '{moment.astimezone(UTC).isoformat()}'"


def _quoted(names: list[str]) -> str:
    return ", ".join("'" + name.replace("'", "''") + "'" for name in names)


# ---- funnel


FUNNEL_STEPS = ["product_view", "add_to_cart", "payment"]


def funnel_case(context: Context) -> Case:
    """A 3-step ordered funnel over the demo's last 7 local days, 1-day window."""
    query = FunnelQuery(steps=FUNNEL_STEPS, date_from=context.last_day - timedelta(days=6),
                        date_to=context.last_day, window=timedelta(days=1))  # fmt: skip
    return Case(
        name="funnel",
        runner=lambda store: funnel_answer(FunnelRunner(query).run(store)),
        sql=lambda con: funnel_sql(con, query),
        pandas=lambda frames: funnel_pandas(frames, query),
    )


def funnel_answer(result: FunnelResult) -> Answer:
    """Per step: name, count and the median seconds from the previous step."""
    return tuple(
        (step.name, step.count, _float(step.median_seconds_from_previous))
        for step in result.steps
    )


def _float(value: float | None) -> float | None:
    """A float (None for None and NaN); answers compare floats with a tolerance."""
    return None if value is None or value != value else float(value)


def same(a: Answer, b: Answer) -> bool:
    """Equal answers, floats within 1e-9 relative (or 1e-6 absolute): the peers sum and
    interpolate in other orders."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) and type(a) is type(b)


def funnel_sql(con: duckdb.DuckDBPyConnection, query: FunnelQuery) -> Answer:
    """The funnel in one hand-written DuckDB query.

    An event's position is the struct ``{ts, id}`` (structs compare lexicographically, so
    this is the ``(ts, event_id)`` order). Step k is the smallest position of a ``steps[k]``
    event after step k-1's, joined on the person within ``[ts_{k-1}, ts_0 + window]`` and
    picked by ``min(…) FILTER (position > step k-1's)``.
    """
    start, end = query.bounds()
    seconds = int(query.window.total_seconds())
    steps = query.steps
    chain = [f"""s0 AS (SELECT person, min(pos) AS at0 FROM span
                 WHERE name = '{steps[0]}' AND pos.ts < {_literal(end)} GROUP BY person)"""]
    for k in range(1, len(steps)):
        carried = ", ".join(f"any_value(s.at{j}) AS at{j}" for j in range(k))
        chain.append(f"""s{k} AS (
            SELECT s.person, {carried}, min(e.pos) FILTER (e.pos > s.at{k - 1}) AS at{k}
            FROM s{k - 1} s LEFT JOIN span e
              ON e.person = s.person AND e.name = '{steps[k]}'
             AND e.pos.ts >= s.at{k - 1}.ts AND e.pos.ts <= s.at0.ts + INTERVAL {seconds} SECOND
            GROUP BY s.person)""")
    last = len(steps) - 1
    counts = ", ".join(f"count(at{k})" for k in range(len(steps)))
    medians = ", ".join(
        f"median((epoch_us(at{k}.ts) - epoch_us(at{k - 1}.ts)) / 1e6)"
        for k in range(1, len(steps))
    )
    sql = f"""
        WITH span AS (
            SELECT {PERSON_SQL} AS person, e.name, {{'ts': e.ts, 'id': e.event_id}} AS pos
            FROM {LINKS_SQL}
            WHERE e.ts >= {_literal(start)} AND e.ts < {_literal(end + query.window)}
              AND e.name IN ({_quoted(steps)})
        ), {", ".join(chain)}
        SELECT {counts}, {medians} FROM s{last}"""
    row = con.execute(sql).fetchone()
    assert row is not None
    counts_row, medians_row = row[: len(steps)], row[len(steps):]
    return tuple(
        (name, int(counts_row[k]), _float(medians_row[k - 1]) if k else None)
        for k, name in enumerate(steps)
    )


def funnel_pandas(frames: Frames, query: FunnelQuery) -> Answer:
    """The funnel in pandas: sort the span by (person, ts, event_id), number it, and match
    each step by a merge on the person filtered to later positions inside the window."""
    start, end = query.bounds()
    events = frames.events
    span = events[(events.ts >= start) & (events.ts < end + query.window)
                  & events.name.isin(query.steps)]  # fmt: skip
    span = span.assign(person=pandas_persons(span, frames.links))
    span = span.sort_values(["person", "ts", "event_id"])
    span = span.assign(seq=np.arange(len(span)))
    anchors = span[(span.name == query.steps[0]) & (span.ts < end)]
    reached = anchors.groupby("person", sort=False).head(1)
    reached = reached[["person", "ts", "seq"]].rename(columns={"ts": "ts0", "seq": "seq0"})
    deadline = reached.ts0 + query.window
    reached = reached.assign(deadline=deadline)
    for k in range(1, len(query.steps)):
        candidates = span.loc[span.name == query.steps[k], ["person", "ts", "seq"]]
        pairs = reached[["person", f"seq{k - 1}", "deadline"]].dropna().merge(candidates,
                                                                               on="person")
        pairs = pairs[(pairs.seq > pairs[f"seq{k - 1}"]) & (pairs.ts <= pairs.deadline)]
        best = pairs.loc[pairs.groupby("person").seq.idxmin(), ["person", "ts", "seq"]]
        best = best.rename(columns={"ts": f"ts{k}", "seq": f"seq{k}"})
        reached = reached.merge(best, on="person", how="left")
    answer = []
    for k, name in enumerate(query.steps):
        count = int(reached[f"ts{k}"].notna().sum())
        median = None
        if k:
            gaps = (reached[f"ts{k}"] - reached[f"ts{k - 1}"]).dropna().dt.total_seconds()
            median = _float(gaps.median()) if len(gaps) else None
        answer.append((name, count, median))
    return tuple(answer)


# ---- shared pieces of the hand-written SQL and pandas peers

PERSON_SQL = "coalesce(e.customer_id, l.customer_id, 'anon:' || e.anonymous_id)"
LINKS_SQL = "events e LEFT JOIN identity_links l ON l.anonymous_id = e.anonymous_id"
INACTIVITY_S = 30 * 60  # the session rule of shequ.analytics.sessions
TEMPLATES_VIEW = "bench_page_templates"


def register_templates(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Each distinct page's template (``shequ.analytics.pages.python_page_template``), as a
    dict for pandas and as the view ``bench_page_templates(page, template)`` for the SQL
    peers: the peers use the project's rule instead of restating it."""
    pages = [row[0] for row in con.execute(
        "SELECT DISTINCT page FROM events WHERE page IS NOT NULL").fetchall()]  # fmt: skip
    templates = {page: python_page_template(page) for page in pages}
    con.register(TEMPLATES_VIEW, pa.table({"page": list(templates),
                                           "template": list(templates.values())}))
    return templates


def pandas_persons(events: pd.DataFrame, links: pd.Series) -> pd.Series:
    """The person of each event: customer, else linked customer, else ``anon:<id>``."""
    linked = events.anonymous_id.map(links)
    person = events.customer_id.fillna(linked).fillna("anon:" + events.anonymous_id)
    if person.isna().any():
        raise ValueError("an event has neither customer_id nor anonymous_id")
    return person


def _in_range(events: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    return events[(events.ts >= start) & (events.ts < end)]


def _runner_module(name: str) -> Any:
    """``shequ.analytics.<name>``, or CaseUnavailable while it is not written yet."""
    import importlib

    try:
        return importlib.import_module(f"shequ.analytics.{name}")
    except ImportError as exc:
        raise CaseUnavailable(f"shequ.analytics.{name} cannot be imported: {exc}") from exc


# ---- retention


def retention_case(context: Context) -> Case:
    """Daily cohorts of the demo's last 30 local days (any event starts and returns)."""
    module = _runner_module("retention")
    query = module.RetentionQuery(date_from=context.last_day - timedelta(days=29),
                                  date_to=context.last_day, period="day", periods=31)
    return Case(
        name="retention",
        runner=lambda store: tuple(
            (c.cohort_start, c.size, tuple(c.retained))
            for c in module.RetentionRunner(query).run(store).cohorts
        ),
        sql=lambda con: retention_sql(con, query),
        pandas=lambda frames: retention_pandas(frames, query),
    )


def retention_layout(query: Any, counts: dict[tuple[date, int], int]) -> Answer:
    """Per cohort day: its size (``k = 0``) and the persons back ``k`` days later, for the
    ``k`` whose day is no later than ``date_to`` (and ``k < periods``)."""
    cohorts = []
    day = query.date_from
    while day <= query.date_to:
        last = min(query.periods - 1, (query.date_to - day).days)
        retained = tuple(counts.get((day, k), 0) for k in range(last + 1))
        cohorts.append((day, retained[0], retained))
        day += timedelta(days=1)
    return tuple(cohorts)


def retention_sql(con: duckdb.DuckDBPyConnection, query: Any) -> Answer:
    """Cohort day = the local day of the person's first event; returns = distinct
    (person, local day) pairs; counts per (cohort, days since)."""
    start, end = query.bounds()
    starts = "" if query.start_event is None else f"WHERE name = {_quoted([query.start_event])}"
    returns = "" if query.return_event is None else f"WHERE name = {_quoted([query.return_event])}"
    rows = con.execute(f"""
        WITH ev AS (
            SELECT {PERSON_SQL} AS person, e.name,
                   CAST(timezone('{query.tz}', e.ts) AS DATE) AS day
            FROM {LINKS_SQL}
            WHERE e.ts >= {_literal(start)} AND e.ts < {_literal(end)}
        ),
        firsts AS (SELECT person, min(day) AS cohort FROM ev {starts} GROUP BY person),
        active AS (SELECT DISTINCT person, day FROM ev {returns})
        SELECT cohort, 0, count(*) FROM firsts GROUP BY cohort
        UNION ALL
        SELECT f.cohort, CAST(a.day - f.cohort AS INTEGER), count(*)
        FROM firsts f JOIN active a ON a.person = f.person
         AND a.day > f.cohort AND a.day < f.cohort + {query.periods}
        GROUP BY ALL""").fetchall()
    return retention_layout(query, {(cohort, int(k)): int(n) for cohort, k, n in rows})


def retention_pandas(frames: Frames, query: Any) -> Answer:
    """The same counts in pandas: local days by ``tz_convert``, first day per person,
    distinct active days merged on the person."""
    start, end = query.bounds()
    events = _in_range(frames.events, start, end)
    person = pandas_persons(events, frames.links)
    day = events.ts.dt.tz_convert(query.tz).dt.tz_localize(None).dt.normalize()
    table = pd.DataFrame({"person": person, "day": day, "name": events.name})
    starts = table if query.start_event is None else table[table.name == query.start_event]
    firsts = starts.groupby("person").day.min().rename("cohort")
    returns = table if query.return_event is None else table[table.name == query.return_event]
    active = returns[["person", "day"]].drop_duplicates()
    pairs = active.merge(firsts, left_on="person", right_index=True)
    since = (pairs.day - pairs.cohort).dt.days
    pairs = pairs[(since > 0) & (since < query.periods)].assign(k=since)
    counts = {(cohort.date(), 0): int(n) for cohort, n in firsts.value_counts().items()}
    for (cohort, k), n in pairs.groupby(["cohort", "k"]).size().items():
        counts[(cohort.date(), int(k))] = int(n)
    return retention_layout(query, counts)


# ---- dwell


DWELL_VIEWS = ("page_view", "product_view", "post_view")
DWELL_EDGES = (0.0, 1.0, 3.0, 10.0, 30.0, 60.0, 180.0, 600.0)


def dwell_case(context: Context) -> Case:
    """Dwell of the views of the demo's last 7 local days, by page template, top 20."""
    module = _runner_module("dwell")
    query = module.DwellQuery(date_from=context.last_day - timedelta(days=6),
                              date_to=context.last_day, by="page",
                              page_grouping="template", limit=20)  # fmt: skip
    return Case(
        name="dwell",
        runner=lambda store: tuple(
            (g.group, g.views, g.with_dwell, g.unknown, _float(g.median_seconds),
             _float(g.p75_seconds), _float(g.p90_seconds), _float(g.mean_seconds),
             tuple(b.views for b in g.histogram))
            for g in module.DwellRunner(query).run(store).groups
        ),
        sql=lambda con: dwell_sql(con, query),
        pandas=lambda frames: dwell_pandas(frames, query),
    )


def dwell_sql(con: duckdb.DuckDBPyConnection, query: Any) -> Answer:
    """A view's dwell is ``dwell_ms`` or else the gap to the person's next event when that
    is at most 30 minutes later; exact quantiles with ``quantile_cont``."""
    start, end = query.bounds()
    stop = end + timedelta(seconds=INACTIVITY_S)
    bins = " + ".join(f"CAST(dwell >= {edge} AS INTEGER)" for edge in DWELL_EDGES)
    counts = ", ".join(f"count(dwell) FILTER (bin = {k})" for k in range(len(DWELL_EDGES)))
    rows = con.execute(f"""
        WITH timeline AS (
            SELECT person, name, ts, page, dwell_ms,
                   lead(ts) OVER (PARTITION BY person ORDER BY ts, event_id) AS following
            FROM (SELECT {PERSON_SQL} AS person, e.event_id, e.name, e.ts, e.page, e.dwell_ms
                  FROM {LINKS_SQL}
                  WHERE e.ts >= {_literal(start)} AND e.ts < {_literal(stop)})
        ),
        views AS (
            SELECT coalesce(t.template, '') AS grp,
                   CASE WHEN v.dwell_ms IS NOT NULL THEN CAST(v.dwell_ms AS DOUBLE) / 1000
                        WHEN v.following <= v.ts + INTERVAL {INACTIVITY_S} SECOND
                        THEN (epoch_us(v.following) - epoch_us(v.ts)) / 1e6 END AS dwell
            FROM timeline v LEFT JOIN {TEMPLATES_VIEW} t ON t.page = v.page
            WHERE v.name IN ({_quoted(list(DWELL_VIEWS))}) AND v.ts < {_literal(end)}
        ),
        binned AS (SELECT grp, dwell, greatest({bins} - 1, 0) AS bin FROM views)
        SELECT grp, count(*) AS n, count(dwell), quantile_cont(dwell, [0.5, 0.75, 0.9]),
               favg(dwell), {counts}
        FROM binned GROUP BY grp ORDER BY n DESC, grp LIMIT {query.limit}""").fetchall()
    return tuple(
        (grp, int(views), int(known), int(views) - int(known),
         *(_float(q) for q in (quantiles or [None] * 3)), _float(mean),
         tuple(int(n) for n in bins))
        for grp, views, known, quantiles, mean, *bins in rows
    )  # fmt: skip


def dwell_pandas(frames: Frames, query: Any) -> Answer:
    """The same in pandas: sort by (person, ts, event_id), shift for the next event,
    ``Series.quantile`` (linear interpolation) per group."""
    start, end = query.bounds()
    gap = pd.Timedelta(seconds=INACTIVITY_S)
    events = _in_range(frames.events, start, end + gap)
    events = events.assign(person=pandas_persons(events, frames.links))
    events = events.sort_values(["person", "ts", "event_id"])
    following = events.ts.shift(-1).where(events.person.shift(-1) == events.person)
    events = events.assign(following=following)
    views = events[events.name.isin(DWELL_VIEWS) & (events.ts < end)]
    continued = views.following <= views.ts + gap
    by_gap = (views.following - views.ts).dt.total_seconds().where(continued)
    dwell = (views.dwell_ms / 1000).where(views.dwell_ms.notna(), by_gap)
    table = pd.DataFrame({"grp": views.page.map(frames.templates).fillna(""), "dwell": dwell})
    sizes = table.groupby("grp").size()
    top = sorted(sizes.items(), key=lambda item: (-item[1], item[0]))[: query.limit]
    chosen = table[table.grp.isin([grp for grp, _ in top])]
    known = chosen.dropna(subset=["dwell"])
    grouped = known.groupby("grp").dwell
    quantiles = grouped.quantile([0.5, 0.75, 0.9]).unstack()
    means = grouped.mean()
    bins = np.maximum(np.searchsorted(DWELL_EDGES, known.dwell.to_numpy(), side="right") - 1, 0)
    histogram = known.assign(bin=bins).groupby(["grp", "bin"]).size()
    answer = []
    for grp, views in top:
        count = int(known.grp.eq(grp).sum()) if grp in means.index else 0
        row = quantiles.loc[grp] if count else None
        answer.append((
            grp, int(views), count, int(views) - count,
            *(_float(row[p]) if row is not None else None for p in (0.5, 0.75, 0.9)),
            _float(means[grp]) if count else None,
            tuple(int(histogram.get((grp, k), 0)) for k in range(len(DWELL_EDGES))),
        ))  # fmt: skip
    return tuple(answer)


# ---- paths


def paths_case(context: Context) -> Case:
    """Session paths (depth 5, page templates, top 20) of the demo's last 7 local days."""
    module = _runner_module("paths")
    query = module.PathsQuery(date_from=context.last_day - timedelta(days=6),
                              date_to=context.last_day, depth=5, limit=20,
                              page_grouping="template")  # fmt: skip
    return Case(
        name="paths",
        runner=lambda store: paths_answer(module.PathsRunner(query).run(store)),
        sql=lambda con: paths_sql(con, query),
        pandas=lambda frames: paths_pandas(frames, query),
    )


def paths_answer(result: Any) -> Answer:
    """Sessions, top paths, Sankey nodes and links, as plain tuples."""
    return (
        result.sessions,
        tuple((tuple(p.pages), p.count) for p in result.paths),
        tuple((n.step, n.name, n.count) for n in result.nodes),
        tuple((link.source, link.target, link.value) for link in result.links),
    )


def paths_summary(query: Any, paths: dict[tuple[str, ...], int]) -> Answer:
    """The answer from the sessions per path (first ``depth`` pages): the top ``limit``
    paths (count desc, then pages), nodes by step then count desc, links likewise."""
    nodes: dict[tuple[int, str], int] = {}
    links: dict[tuple[int, str, str], int] = {}
    for pages, count in paths.items():
        for step, page in enumerate(pages):
            nodes[(step, page)] = nodes.get((step, page), 0) + count
        for step, pair in enumerate(itertools.pairwise(pages)):
            links[(step, *pair)] = links.get((step, *pair), 0) + count
    top = sorted(paths.items(), key=lambda item: (-item[1], item[0]))[: query.limit]
    node_order = sorted(nodes.items(), key=lambda item: (item[0][0], -item[1], item[0]))
    link_order = sorted(links.items(), key=lambda item: (item[0][0], -item[1], item[0]))
    return (
        sum(paths.values()),
        tuple(top),
        tuple((step, page, count) for (step, page), count in node_order
              if count >= query.min_count),
        tuple((f"{step}:{source}", f"{step + 1}:{target}", count)
              for (step, source, target), count in link_order if count >= query.min_count),
    )  # fmt: skip


def session_steps_sql(start: datetime, end: datetime) -> str:
    """``WITH … steps``: one row per step of each session's path (``person, sno, page,
    step`` from 1) over the events of ``[start, end)``. Sessions by a running sum of
    "gap > 30 min" flags; page visits collapsed with ``lag``, numbered with ``row_number``."""
    return f"""
        WITH ev AS (
            SELECT {PERSON_SQL} AS person, e.event_id, e.name, e.ts, e.page FROM {LINKS_SQL}
            WHERE e.ts >= {_literal(start)} AND e.ts < {_literal(end)}
        ),
        flagged AS (
            SELECT *, CASE WHEN lag(ts) OVER (PARTITION BY person ORDER BY ts, event_id)
                                + INTERVAL {INACTIVITY_S} SECOND >= ts THEN 0 ELSE 1 END AS is_new
            FROM ev
        ),
        sessions AS (
            SELECT *, sum(is_new) OVER (PARTITION BY person ORDER BY ts, event_id
                                        ROWS UNBOUNDED PRECEDING) AS sno
            FROM flagged
        ),
        visits AS (
            SELECT s.person, s.sno, s.ts, s.event_id, t.template AS page,
                   lag(t.template) OVER (PARTITION BY s.person, s.sno
                                         ORDER BY s.ts, s.event_id) AS previous
            FROM sessions s JOIN {TEMPLATES_VIEW} t ON t.page = s.page
            WHERE s.name <> 'click' AND s.page <> ''
        ),
        steps AS (
            SELECT person, sno, page,
                   row_number() OVER (PARTITION BY person, sno ORDER BY ts, event_id) AS step
            FROM visits WHERE previous IS NULL OR previous <> page
        )"""


def _pivot(depth: int) -> str:
    return ", ".join(f"max(page) FILTER (step = {k + 1}) AS p{k}" for k in range(depth))


def _path_counts(rows: list[tuple[Any, ...]]) -> dict[tuple[str, ...], int]:
    return {tuple(page for page in row[:-1] if page is not None): int(row[-1]) for row in rows}


def paths_sql(con: duckdb.DuckDBPyConnection, query: Any) -> Answer:
    """Each session's first ``depth`` steps (:func:`session_steps_sql`) pivoted into
    columns and counted."""
    start, end = query.bounds()
    rows = con.execute(f"""{session_steps_sql(start, end)}
        SELECT *, count(*) FROM (
            SELECT {_pivot(query.depth)} FROM steps WHERE step <= {query.depth}
            GROUP BY person, sno)
        GROUP BY ALL""").fetchall()
    return paths_summary(query, _path_counts(rows))


def paths_pandas(frames: Frames, query: Any) -> Answer:
    """The same in pandas: sort, flag session starts with ``shift``, collapse repeats,
    ``cumcount`` the steps and pivot the first ``depth`` into columns."""
    start, end = query.bounds()
    events = _in_range(frames.events, start, end)
    events = events.assign(person=pandas_persons(events, frames.links))
    events = events.sort_values(["person", "ts", "event_id"])
    same = events.person.eq(events.person.shift())
    gap = pd.Timedelta(seconds=INACTIVITY_S)
    is_new = ~same | (events.ts.shift() + gap < events.ts)
    events = events.assign(sno=is_new.cumsum())
    visits = events[(events.name != "click") & events.page.notna() & (events.page != "")]
    page = visits.page.map(frames.templates)
    in_session = visits.sno.eq(visits.sno.shift())
    steps = visits.assign(page=page)[~in_session | (page != page.shift())]
    steps = steps.assign(step=steps.groupby("sno").cumcount())
    steps = steps[steps.step < query.depth]
    wide = steps.pivot(index="sno", columns="step", values="page")
    counts = wide.groupby(list(wide.columns), dropna=False).size()
    paths = {
        tuple(p for p in key if isinstance(p, str)): int(n) for key, n in counts.items()
    }  # fmt: skip
    return paths_summary(query, paths)


# ---- the daily metric refresh


METRIC_VIEWS = ("page_view", "product_view", "post_view")
METRIC_INTERACTIONS = ("like", "comment", "share")
METRIC_COUNTED = ("post_view", "like", "comment", "share", "product_view", "add_to_cart",
                  "checkout", "payment")  # fmt: skip
AMOUNT_PATTERN = r'"amount_fen"\s*:\s*(-?[0-9]+)'
RETURNING_DAYS, HISTORY_DAYS = 30, 90
HOURS_A_DAY = 24  # the demo's zone, Asia/Shanghai, has no daylight saving


@dataclass(frozen=True)
class MetricDay:
    """The refresh of one local day: its 24 hour buckets and its day bucket."""

    day: date
    tz: str

    @property
    def start(self) -> datetime:
        return datetime.combine(self.day, datetime.min.time(), ZoneInfo(self.tz)).astimezone(UTC)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=1)

    @property
    def previous_start(self) -> datetime:
        """The start of the day before: the earliest bucket any grain reads."""
        return self.start - timedelta(days=1)

    def bucket_start(self, grain: str, b: int) -> datetime:
        return self.start + (timedelta(hours=b) if grain == "hour" else timedelta(days=b))

    def buckets(self, grain: str) -> int:
        return HOURS_A_DAY if grain == "hour" else 1


def metrics_case(context: Context) -> Case:
    """``refresh`` of the demo's last local day (24 hours and the day, 18 metrics each)."""
    module = _runner_module("metrics")
    day = MetricDay(context.last_day, TZ)
    now = day.end + timedelta(hours=1)

    def refreshed(store: EventStore) -> Answer:
        module.refresh(store, day.day, day.day, day.tz, now)
        rows = store.backend.con.execute(f"""
            SELECT metric, grain, bucket_start, value FROM metric_values
            WHERE bucket_start >= {_literal(day.start)} AND bucket_start < {_literal(day.end)}
            """).fetchall()  # fmt: skip
        return metric_answer([(m, g, at.astimezone(UTC), v) for m, g, at, v in rows])

    return Case(
        name="metrics",
        runner=refreshed,
        sql=lambda con: metrics_sql(con, day),
        pandas=lambda frames: metrics_pandas(frames, day),
    )


def metric_answer(values: list[tuple[str, str, datetime, float | None]]) -> Answer:
    """(metric, grain, bucket start, value) sorted; values as floats (None: undefined)."""
    return tuple(sorted(((m, g, at, _float(v)) for m, g, at, v in values),
                        key=lambda item: item[:3]))  # fmt: skip


def metric_values_of(day: MetricDay, counts: dict[tuple[str, int], dict[str, float]]) -> Answer:
    """The 18 metrics of every bucket from the raw counts per (grain, bucket); bucket -1 is
    the one before the day (for ``period_churn_rate``)."""

    def ratio(part: float, whole: float) -> float | None:
        return part / whole if whole else None

    values: list[tuple[str, str, datetime, float | None]] = []
    for grain in ("hour", "day"):
        for b in range(day.buckets(grain)):
            c = {"sessions": 0.0, "bounces": 0.0, "session_views": 0.0, "paying": 0.0,
                 **counts.get((grain, b), {})}  # fmt: skip
            n = {name: c.get(f"n_{name}", 0.0) for name in METRIC_COUNTED}
            visitors, sessions = c.get("visitors", 0.0), c["sessions"]
            before = counts.get((grain, b - 1), {})
            interactions = sum(n[name] for name in METRIC_INTERACTIONS)
            dwell_n = c.get("dwell_n", 0.0)
            metric = {
                "visitors": float(visitors), "sessions": float(sessions),
                "bounce_rate": ratio(c["bounces"], sessions),
                "pages_per_session": ratio(c["session_views"], sessions),
                "avg_dwell_seconds": ratio(c.get("dwell_sum", 0.0) / 1000, dwell_n),
                "post_views": float(n["post_view"]),
                "interaction_rate": ratio(interactions, n["post_view"]),
                "share_rate": ratio(n["share"], n["post_view"]),
                "engaged_visitor_rate": ratio(c.get("engaged", 0.0), visitors),
                "view_to_cart_rate": ratio(n["add_to_cart"], n["product_view"]),
                "cart_to_checkout_rate": ratio(n["checkout"], n["add_to_cart"]),
                "payment_rate": ratio(n["payment"], n["checkout"]),
                "session_conversion_rate": ratio(c["paying"], sessions),
                "gmv_fen": float(c.get("gmv", 0.0)),
                "returning_visitor_rate": ratio(c.get("returning", 0.0), visitors),
                "reactivated_visitor_rate": ratio(c.get("reactivated", 0.0), visitors),
                "new_visitor_rate": ratio(c.get("new", 0.0), visitors),
                "period_churn_rate": ratio(before.get("lost", 0.0), before.get("visitors", 0.0)),
            }  # fmt: skip
            at = day.bucket_start(grain, b)
            values.extend((name, grain, at, value) for name, value in metric.items())
    return metric_answer(values)


def _bucket_sql(grain: str, ts: str, day: MetricDay) -> str:
    if grain == "hour":
        micros = int(day.start.timestamp()) * 1_000_000
        return f"CAST(floor((epoch_us({ts}) - {micros}) / 3600e6) AS BIGINT)"
    return f"(CAST(timezone('{day.tz}', {ts}) AS DATE) - DATE '{day.day}')"


def metrics_sql(con: duckdb.DuckDBPyConnection, day: MetricDay) -> Answer:
    """The raw counts of both grains in one hand-written query: per (person, bucket)
    activity with ``lag``/``lead`` over the person's buckets (the previous event, the next
    active bucket), and sessions by a running sum of "gap > 30 min" flags."""
    gap = f"INTERVAL {INACTIVITY_S} SECOND"
    counted = ", ".join(f"count(*) FILTER (name = '{name}') AS n_{name}"
                        for name in METRIC_COUNTED)  # fmt: skip
    sums = ", ".join(f"sum(n_{name}) AS n_{name}" for name in METRIC_COUNTED)
    views = _quoted(list(METRIC_VIEWS))
    local_day = f"CAST(DATE '{day.day}' + CAST(b AS INTEGER) AS TIMESTAMP)"
    bucket_start = {"hour": f"{_literal(day.start)} + b * INTERVAL 1 HOUR",
                    "day": f"timezone('{day.tz}', {local_day})"}
    by_grain = " UNION ALL ".join(
        f"SELECT '{g}' AS grain, {_bucket_sql(g, 'ts', day)} AS b, * FROM ev "
        f"WHERE ts < {_literal(day.end)}" for g in ("hour", "day"))  # fmt: skip
    starts = " ".join(f"WHEN '{g}' THEN {bucket_start[g]}" for g in ("hour", "day"))
    sessions = " UNION ALL ".join(
        f"""SELECT '{g}' AS grain, sb_{g} AS b, count(*) AS sessions,
                   count(*) FILTER (n = 1) AS bounces, sum(views_{g}) AS session_views,
                   count(*) FILTER (paid_{g}) AS paying
            FROM sess WHERE sb_{g} >= 0 AND sb_{g} < {day.buckets(g)} GROUP BY sb_{g}"""
        for g in ("hour", "day"))  # fmt: skip
    rows = con.execute(f"""
        WITH ev AS (
            SELECT {PERSON_SQL} AS person, e.event_id, e.name, e.ts, e.dwell_ms, e.properties
            FROM {LINKS_SQL}
            WHERE e.ts >= {_literal(day.previous_start)} AND e.ts < {_literal(day.end)} + {gap}
        ),
        hist AS (
            SELECT {PERSON_SQL} AS person, max(e.ts) AS old_last FROM {LINKS_SQL}
            WHERE e.ts >= {_literal(day.start - timedelta(days=HISTORY_DAYS))}
              AND e.ts < {_literal(day.previous_start)}
            GROUP BY 1
        ),
        act AS (
            SELECT grain, b, person, max(ts) AS last,
                   bool_or(name IN ({_quoted(list(METRIC_INTERACTIONS))})) AS engaged,
                   count(dwell_ms) FILTER (name IN ({views})) AS dwell_n,
                   sum(dwell_ms) FILTER (name IN ({views})) AS dwell_sum,
                   sum(CAST(nullif(regexp_extract(properties, '{AMOUNT_PATTERN}', 1), '')
                            AS BIGINT)) FILTER (name = 'payment') AS gmv,
                   {counted}
            FROM ({by_grain}) GROUP BY grain, b, person
        ),
        flagged AS (
            SELECT a.*, CASE grain {starts} END AS s,
                   coalesce(lag(last) OVER w, h.old_last) AS before,
                   lead(b) OVER w AS next_b
            FROM act a LEFT JOIN hist h ON h.person = a.person
            WINDOW w AS (PARTITION BY grain, a.person ORDER BY b)
        ),
        activity AS (
            SELECT grain, b, count(*) AS visitors, count(*) FILTER (engaged) AS engaged,
                   count(*) FILTER (before >= s - INTERVAL {RETURNING_DAYS} DAY) AS returning,
                   count(*) FILTER (before < s - INTERVAL {RETURNING_DAYS} DAY
                                    AND before >= s - INTERVAL {HISTORY_DAYS} DAY) AS reactivated,
                   count(*) FILTER (before IS NULL
                                    OR before < s - INTERVAL {HISTORY_DAYS} DAY) AS new,
                   count(*) FILTER (next_b IS NULL OR next_b > b + 1) AS lost,
                   sum(dwell_n) AS dwell_n, sum(dwell_sum) AS dwell_sum, sum(gmv) AS gmv, {sums}
            FROM flagged GROUP BY grain, b
        ),
        marks AS (
            SELECT person, event_id, name, ts,
                   {_bucket_sql('hour', 'ts', day)} AS b_hour,
                   {_bucket_sql('day', 'ts', day)} AS b_day,
                   {_bucket_sql('hour', f'ts - {gap}', day)} AS h_hour,
                   {_bucket_sql('day', f'ts - {gap}', day)} AS h_day,
                   CASE WHEN lag(ts) OVER (PARTITION BY person ORDER BY ts, event_id) + {gap}
                             >= ts THEN 0 ELSE 1 END AS is_new
            FROM ev WHERE ts >= {_literal(day.start)} - {gap}
        ),
        numbered AS (
            SELECT *, sum(is_new) OVER (PARTITION BY person ORDER BY ts, event_id
                                        ROWS UNBOUNDED PRECEDING) AS sno
            FROM marks
        ),
        owned AS (
            SELECT *, min(b_hour) OVER s AS sb_hour, min(b_day) OVER s AS sb_day
            FROM numbered WINDOW s AS (PARTITION BY person, sno)
        ),
        sess AS (
            SELECT person, sno, any_value(sb_hour) AS sb_hour, any_value(sb_day) AS sb_day,
                   count(*) AS n,
                   count(*) FILTER (name IN ({views}) AND h_hour <= sb_hour) AS views_hour,
                   count(*) FILTER (name IN ({views}) AND h_day <= sb_day) AS views_day,
                   bool_or(name = 'payment' AND h_hour <= sb_hour) AS paid_hour,
                   bool_or(name = 'payment' AND h_day <= sb_day) AS paid_day
            FROM owned GROUP BY person, sno
        ),
        sessions AS ({sessions})
        SELECT a.*, s.sessions, s.bounces, s.session_views, s.paying
        FROM activity a LEFT JOIN sessions s ON s.grain = a.grain AND s.b = a.b""")
    names = [column[0] for column in con.description or []]
    counts = {}
    for row in rows.fetchall():
        record = dict(zip(names, row, strict=True))
        key = (str(record.pop("grain")), int(record.pop("b")))
        counts[key] = {k: float(v) for k, v in record.items() if v is not None}
    return metric_values_of(day, counts)


def _pandas_bucket(grain: str, ts: pd.Series, day: MetricDay) -> pd.Series:
    if grain == "hour":
        return np.floor((ts - day.start) / pd.Timedelta(hours=1)).astype("int64")
    local = ts.dt.tz_convert(day.tz).dt.tz_localize(None).dt.normalize()
    return (local - pd.Timestamp(day.day)).dt.days


def metrics_pandas(frames: Frames, day: MetricDay) -> Answer:
    """The same raw counts in pandas: group by (person, bucket), ``shift`` within the
    person for the previous event and the next active bucket, sessions by ``cumsum``."""
    gap = pd.Timedelta(seconds=INACTIVITY_S)
    events = frames.events
    ev = _in_range(events, day.previous_start, day.end + gap)
    ev = ev.assign(person=pandas_persons(ev, frames.links))
    old = _in_range(events, day.start - timedelta(days=HISTORY_DAYS), day.previous_start)
    history = old.ts.groupby(pandas_persons(old, frames.links)).max()
    inside = ev[ev.ts < day.end]
    is_view = inside.name.isin(METRIC_VIEWS)
    amounts = inside.properties.where(inside.name == "payment").str.extract(AMOUNT_PATTERN)[0]
    base = pd.DataFrame({
        "person": inside.person, "ts": inside.ts, "name": inside.name,
        "engaged": inside.name.isin(METRIC_INTERACTIONS),
        "dwell": inside.dwell_ms.where(is_view),
        "gmv": pd.to_numeric(amounts),
    })  # fmt: skip
    counts: dict[tuple[str, int], dict[str, float]] = {}
    for grain in ("hour", "day"):
        table = base.assign(b=_pandas_bucket(grain, base.ts, day))
        keys = ["person", "b"]
        act = table.groupby(keys).agg(last=("ts", "max"), engaged=("engaged", "any"),
                                      dwell_n=("dwell", "count"), dwell_sum=("dwell", "sum"),
                                      gmv=("gmv", "sum"))  # fmt: skip
        names = table[table.name.isin(METRIC_COUNTED)].groupby([*keys, "name"]).size()
        names = names.unstack(fill_value=0).reindex(columns=list(METRIC_COUNTED), fill_value=0)
        act = act.join(names.add_prefix("n_"), how="left").fillna(
            {f"n_{name}": 0 for name in METRIC_COUNTED}).reset_index()  # fmt: skip
        same = act.person.eq(act.person.shift())
        before = act["last"].shift().where(same)
        before = before.fillna(act.person.map(history))
        after = act.b.shift(-1).where(act.person.eq(act.person.shift(-1)))
        starts = pd.Series([day.bucket_start(grain, int(b)) for b in act.b], index=act.index)
        act = act.assign(
            returning=before >= starts - timedelta(days=RETURNING_DAYS),
            reactivated=(before < starts - timedelta(days=RETURNING_DAYS))
            & (before >= starts - timedelta(days=HISTORY_DAYS)),
            new=before.isna() | (before < starts - timedelta(days=HISTORY_DAYS)),
            lost=after.isna() | (after > act.b + 1),
        )
        summed = ["engaged", "returning", "reactivated", "new", "lost", "dwell_n", "dwell_sum",
                  "gmv", *(f"n_{name}" for name in METRIC_COUNTED)]  # fmt: skip
        per = act.groupby("b")[summed].sum().assign(visitors=act.groupby("b").size())
        for b, row in per.iterrows():
            counts[(grain, int(b))] = {k: float(v) for k, v in row.items()}
    marks = ev[ev.ts >= day.start - gap].sort_values(["person", "ts", "event_id"])
    same = marks.person.eq(marks.person.shift())
    is_new = ~same | (marks.ts.shift() + gap < marks.ts)
    marks = marks.assign(sno=is_new.cumsum(), view=marks.name.isin(METRIC_VIEWS),
                         paid=marks.name == "payment")  # fmt: skip
    sizes = marks.groupby("sno").sno.transform("size")
    for grain in ("hour", "day"):
        b = _pandas_bucket(grain, marks.ts, day)
        horizon = _pandas_bucket(grain, marks.ts - gap, day)
        first = b.groupby(marks.sno).transform("min")
        counted = horizon <= first
        per_session = pd.DataFrame({
            "b": first, "n": sizes, "views": marks.view & counted, "paid": marks.paid & counted,
        }).groupby(marks.sno).agg(b=("b", "first"), n=("n", "first"), views=("views", "sum"),
                                  paid=("paid", "any"))  # fmt: skip
        per_session = per_session[(per_session.b >= 0) & (per_session.b < day.buckets(grain))]
        for bucket, group in per_session.groupby("b"):
            found = counts.setdefault((grain, int(bucket)), {})
            found.update(sessions=float(len(group)), bounces=float((group.n == 1).sum()),
                         session_views=float(group.views.sum()), paying=float(group.paid.sum()))
    return metric_values_of(day, counts)


# The benchmark's cases, in the order they run. A factory raises CaseUnavailable when the
# runner it measures does not exist yet.
class CaseUnavailable(LookupError):
    """The runner of a case is not part of the code base yet."""


CASES: dict[str, Callable[[Context], Case]] = {
    "funnel": funnel_case,
    "paths": paths_case,
    "retention": retention_case,
    "dwell": dwell_case,
    "metrics": metrics_case,
}
IDS = ("event_id", "name", "ts", "customer_id", "anonymous_id")
FRAME_COLUMNS: dict[str, tuple[str, ...]] = {
    "funnel": IDS,
    "paths": (*IDS, "page"),
    "retention": IDS,
    "dwell": (*IDS, "page", "dwell_ms"),
    "metrics": (*IDS, "dwell_ms", "properties"),
}


# ---------------------------------------------------------------- timing


@dataclass
class Timing:
    """Medians in seconds of one case."""

    name: str
    first: float = 0.0  # the runner's first call: compiles its plan (cached afterwards)
    runner: list[float] = field(default_factory=list)
    sql: list[float] = field(default_factory=list)
    pandas: list[float] = field(default_factory=list)

    @property
    def runner_s(self) -> float:
        return statistics.median(self.runner)

    @property
    def sql_s(self) -> float:
        return statistics.median(self.sql)

    @property
    def pandas_s(self) -> float:
        return statistics.median(self.pandas)


def _timed(call: Callable[[], Answer]) -> tuple[float, Answer]:
    start = time.perf_counter()
    answer = call()
    return time.perf_counter() - start, answer


def _check(case: str, label: str, expected: Answer, got: Answer) -> None:
    if not same(expected, got):
        raise AnswersDiffer(f"{case}: {label} answered\n  {got!r}\nbut the runner answered\n"
                            f"  {expected!r}")  # fmt: skip


def measure(case: Case, store: EventStore, frames: Frames | None, config: Config) -> Timing:
    """One warm-up of each way, then ``runs`` alternating runner/SQL repetitions (so noise
    hits both alike) and ``pandas_runs`` pandas repetitions; every answer is checked."""
    con = store.backend.con
    timing = Timing(case.name)
    timing.first, expected = _timed(lambda: case.runner(store))
    _check(case.name, "the hand-written SQL", expected, case.sql(con))
    for i in range(config.runs):
        order = ((timing.runner, lambda: case.runner(store)), (timing.sql, lambda: case.sql(con)))
        for times, call in order if i % 2 == 0 else reversed(order):
            seconds, answer = _timed(call)
            _check(case.name, "a repetition", expected, answer)
            times.append(seconds)
    if frames is not None:
        _check(case.name, "pandas", expected, case.pandas(frames))
        for _ in range(config.pandas_runs):
            seconds, answer = _timed(lambda: case.pandas(frames))
            _check(case.name, "pandas", expected, answer)
            timing.pandas.append(seconds)
    text = repr(expected)
    print(f"{case.name}: answer {text[:300]}{' …' if len(text) > 300 else ''}")
    print(f"{case.name}: runner {_ms(timing.runner)} (first call {timing.first * 1000:.0f}) | "
          f"sql {_ms(timing.sql)} | pandas {_ms(timing.pandas)}", flush=True)  # fmt: skip
    return timing


def _ms(times: list[float]) -> str:
    return "median " + (f"{statistics.median(times) * 1000:.0f} ms of "
                        + ", ".join(f"{t * 1000:.0f}" for t in times) if times else "-")


def _threads(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute("SELECT current_setting('threads')").fetchone()
    assert row is not None
    return int(row[0])


def compare_threads(case: Case, store: EventStore, runs: int,
                    settings: tuple[int, ...] = (1, 2)) -> dict[int, Timing]:
    """The runner and the SQL peer under each DuckDB ``threads`` setting, the settings
    alternating within every repetition (so background load hits each alike); the
    store's own setting is restored afterwards."""
    con = store.backend.con
    before = _threads(con)
    timings = {threads: Timing(f"{case.name}@threads={threads}") for threads in settings}
    expected = case.runner(store)
    try:
        for i in range(runs + 1):  # repetition 0 warms each setting up
            for threads in settings if i % 2 == 0 else reversed(settings):
                con.execute(f"SET threads = {threads}")
                runner_s, runner_answer = _timed(lambda: case.runner(store))
                sql_s, sql_answer = _timed(lambda: case.sql(con))
                _check(case.name, f"threads={threads}", expected, runner_answer)
                _check(case.name, f"the SQL at threads={threads}", expected, sql_answer)
                if i:
                    timings[threads].runner.append(runner_s)
                    timings[threads].sql.append(sql_s)
    finally:
        con.execute(f"SET threads = {before}")
    for threads, timing in timings.items():
        print(f"{case.name} threads={threads}: runner {_ms(timing.runner)} | "
              f"sql {_ms(timing.sql)}", flush=True)  # fmt: skip
    return timings


def funnel_phases(store: EventStore, context: Context, runs: int) -> dict[str, float]:
    """Median seconds of the funnel runner's parts: planning (ibis expression and SQL
    compilation, which the store caches per query after the first run), execution to
    Arrow, and the aggregation of the per-person rows."""
    query = FunnelQuery(steps=FUNNEL_STEPS, date_from=context.last_day - timedelta(days=6),
                        date_to=context.last_day, window=timedelta(days=1))  # fmt: skip
    runner = FunnelRunner(query)
    phases: dict[str, list[float]] = {"plan": [], "execute": [], "aggregate": []}
    for _ in range(runs):
        marks = [time.perf_counter()]
        sql = ibis.to_sql(runner.build(store), dialect="duckdb")
        marks.append(time.perf_counter())
        table = store.backend.con.execute(sql).fetch_arrow_table()
        marks.append(time.perf_counter())
        aggregate_arrow(query, table)
        marks.append(time.perf_counter())
        for name, begin, finish in zip(phases, marks, marks[1:], strict=False):
            phases[name].append(finish - begin)
    return {name: statistics.median(times) for name, times in phases.items()}


# ---------------------------------------------------------------- staying interactive at scale


def person_days_sql(tz: str) -> str:
    """One row per (person, local day) with any event: the rollup retention needs when
    any event starts and any event returns (about 7 times fewer rows than events)."""
    return f"""
        SELECT {PERSON_SQL} AS person, CAST(timezone('{tz}', e.ts) AS DATE) AS day
        FROM {LINKS_SQL} GROUP BY ALL"""


def retention_from_days(con: duckdb.DuckDBPyConnection, query: Any) -> Answer:
    """Retention as :func:`retention_sql` computes it, read from ``bench_person_days``."""
    rows = con.execute(f"""
        WITH active AS (
            SELECT person, day FROM bench_person_days
            WHERE day BETWEEN DATE '{query.date_from}' AND DATE '{query.date_to}'
        ),
        firsts AS (SELECT person, min(day) AS cohort FROM active GROUP BY person)
        SELECT cohort, 0, count(*) FROM firsts GROUP BY cohort
        UNION ALL
        SELECT f.cohort, CAST(a.day - f.cohort AS INTEGER), count(*)
        FROM firsts f JOIN active a ON a.person = f.person
         AND a.day > f.cohort AND a.day < f.cohort + {query.periods}
        GROUP BY ALL""").fetchall()
    return retention_layout(query, {(cohort, int(k)): int(n) for cohort, k, n in rows})


SESSION_DEPTH = 10  # pages kept per session by the session rollup (the runner's maximum)


def rollup_sketch(store: EventStore, context: Context, names: list[str],
                  runs: int) -> dict[str, str]:
    """Retention and paths from rollups instead of the events, against the runners,
    answers asserted equal: retention from one row per (person, local day) over the
    whole history; paths from one row per session (its first 10 pages) of the range."""
    con = store.backend.con
    results: dict[str, str] = {}
    if "retention" in names:
        query = _runner_module("retention").RetentionQuery(
            date_from=context.last_day - timedelta(days=29), date_to=context.last_day,
            period="day", periods=31)  # fmt: skip
        build = f"CREATE OR REPLACE TEMP TABLE bench_person_days AS {person_days_sql(query.tz)}"
        results.update(_versus_rollup(store, retention_case(context), build, "bench_person_days",
                                      lambda: retention_from_days(con, query), runs))
    if "paths" in names:
        paths = _runner_module("paths").PathsQuery(
            date_from=context.last_day - timedelta(days=6), date_to=context.last_day,
            depth=5, limit=20, page_grouping="template")  # fmt: skip
        start, end = paths.bounds()
        build = (f"CREATE OR REPLACE TEMP TABLE bench_session_paths AS "
                 f"{session_steps_sql(start, end)} SELECT {_pivot(SESSION_DEPTH)} FROM steps "
                 f"WHERE step <= {SESSION_DEPTH} GROUP BY person, sno")  # fmt: skip
        columns = ", ".join(f"p{k}" for k in range(paths.depth))

        def from_sessions() -> Answer:
            rows = con.execute(f"SELECT {columns}, count(*) FROM bench_session_paths "
                               "GROUP BY ALL").fetchall()  # fmt: skip
            return paths_summary(paths, _path_counts(rows))

        results.update(_versus_rollup(store, paths_case(context), build, "bench_session_paths",
                                      from_sessions, runs))
    return results


def _versus_rollup(store: EventStore, case: Case, build: str, table: str,
                   from_rollup: Callable[[], Answer], runs: int) -> dict[str, str]:
    """Build the rollup ``table`` once, then time the runner and ``from_rollup`` in turns,
    every rollup answer checked against the runner's."""
    con = store.backend.con
    build_s, _ = _timed(lambda: con.execute(build))
    row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    expected = case.runner(store)
    _check(case.name, f"the rollup {table}", expected, from_rollup())
    runner, rollup = [], []
    for _ in range(runs):
        runner.append(_timed(lambda: case.runner(store))[0])
        seconds, answer = _timed(from_rollup)
        _check(case.name, f"the rollup {table}", expected, answer)
        rollup.append(seconds)
    con.execute(f"DROP TABLE {table}")
    print(f"{case.name} from the rollup {table} ({row[0] if row else 0:,} rows, built in "
          f"{build_s:.1f} s): {_ms(rollup)} | runner on the events {_ms(runner)}")
    speedup = statistics.median(runner) / statistics.median(rollup)
    return {
        f"{case.name}_rollup_build_s": f"{build_s:.1f}",
        f"{case.name}_rollup_ms": f"{statistics.median(rollup) * 1000:.0f}",
        f"{case.name}_rollup_speedup": f"{speedup:.1f}",
    }


# ---------------------------------------------------------------- main


def load_frames(store: EventStore, columns: set[str],
                templates: dict[str, str]) -> tuple[Frames, float]:
    """The pandas inputs (not timed as part of any case) and the seconds they took."""
    start = time.perf_counter()
    con = store.backend.con
    ordered = [c for c in ("event_id", "name", "ts", "customer_id", "anonymous_id",
                           "session_id", "device_id", "page", "channel", "dwell_ms",
                           "properties")
               if c in columns]  # fmt: skip
    events = con.execute(f"SELECT {', '.join(ordered)} FROM events").fetch_arrow_table()
    links = con.execute("SELECT anonymous_id, customer_id FROM identity_links")
    linked = links.fetch_arrow_table()
    series = pd.Series(linked["customer_id"].to_pylist(),
                       index=linked["anonymous_id"].to_pylist())  # fmt: skip
    return Frames(events.to_pandas(), series, templates), time.perf_counter() - start


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB (VmHWM where Linux has it)."""
    status = Path(f"/proc/{os.getpid()}/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    rss: int = psutil.Process().memory_info().rss
    return rss / 2**20


def parse_args(argv: list[str] | None) -> tuple[Config, list[str], bool]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="the default demo (1M events), fewer runs: under a minute")
    parser.add_argument("--size", choices=sorted(SIZES), help="demo size (default: large)")
    parser.add_argument("--runs", type=int, help="timed repetitions per case")
    parser.add_argument("--cases", default=",".join(CASES),
                        help=f"comma-separated subset of {', '.join(CASES)}")
    parser.add_argument("--no-pandas", action="store_true", help="skip the pandas peer")
    parser.add_argument("--scale", type=int, default=1,
                        help="measure on N copies of the demo's events (N > 1: no pandas)")
    parser.add_argument("--rollups", action="store_true",
                        help="also time retention and paths read from rollup tables")
    args = parser.parse_args(argv)
    size = args.size or ("default" if args.quick else "large")
    runs = args.runs or (3 if args.quick else 7)
    cases = [name for name in args.cases.split(",") if name]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"unknown cases {unknown}; choose from {sorted(CASES)}")
    if args.scale < 1:
        parser.error("--scale must be at least 1")
    pandas_runs = 2 if args.quick else 3
    config = Config(size=size, runs=runs, pandas_runs=pandas_runs, scale=args.scale,
                    rollups=args.rollups)
    return config, cases, not args.no_pandas and args.scale == 1


def run_cases(store: EventStore, context: Context, names: list[str],
              frames: Frames | None, config: Config) -> dict[str, str]:
    """Measure the cases; the RESULT fields they give."""
    results: dict[str, str] = {}
    unavailable = []
    for name in names:
        try:
            case = CASES[name](context)
        except CaseUnavailable as exc:
            print(f"{name}: not measured: {exc}")
            unavailable.append(name)
            continue
        timing = measure(case, store, frames, config)
        results[f"{name}_ms"] = f"{timing.runner_s * 1000:.0f}"
        results[f"{name}_first_ms"] = f"{timing.first * 1000:.0f}"
        results[f"{name}_vs_sql"] = f"{timing.runner_s / timing.sql_s:.2f}"
        if timing.pandas:
            results[f"{name}_vs_pandas"] = f"{timing.pandas_s / timing.runner_s:.1f}"
        if name == "funnel":
            results.update(funnel_extras(case, store, context, config))
    missing = unavailable + [name for name in PLANNED if name not in CASES]
    if missing:
        print(f"not measured (no case or no runner): {', '.join(missing)}")
        results["missing"] = ",".join(missing)
    return results


def funnel_extras(case: Case, store: EventStore, context: Context,
                  config: Config) -> dict[str, str]:
    """DuckDB threads 1 vs 2 for the funnel (runner and SQL alike), and where its time goes."""
    by_threads = compare_threads(case, store, config.runs)
    one, two = by_threads[1], by_threads[2]
    phases = funnel_phases(store, context, config.runs)
    print("funnel runner phases at the store's threads setting, median ms: "
          + ", ".join(f"{k} {v * 1000:.0f}" for k, v in phases.items()))  # fmt: skip
    return {
        "funnel_t1_ms": f"{one.runner_s * 1000:.0f}",
        "funnel_t1_vs_sql": f"{one.runner_s / one.sql_s:.2f}",
        "funnel_t2_ms": f"{two.runner_s * 1000:.0f}",
        "funnel_t2_vs_sql": f"{two.runner_s / two.sql_s:.2f}",
        "funnel_t2_speedup": f"{one.runner_s / two.runner_s:.2f}",
        "funnel_sql_t2_speedup": f"{one.sql_s / two.sql_s:.2f}",
        "funnel_plan_ms": f"{phases['plan'] * 1000:.0f}",
    }


def main(argv: list[str] | None = None) -> None:
    config, names, with_pandas = parse_args(argv)
    print(f"config: {config}, cases={names}, cpus={os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    path, manifest = cached_store(config.size, SEED)
    if config.scale > 1:
        path, manifest = scaled_store(path, manifest, config.scale)
        print(f"store: {path} ({manifest.events:,} events, "
              f"{path.stat().st_size / 2**30:.2f} GiB)")  # fmt: skip
    store = EventStore.open(f"duckdb://{path}")
    try:
        con = store.backend.con
        templates = register_templates(con)
        frames, load_s = None, 0.0
        if with_pandas:
            columns = {c for name in names for c in FRAME_COLUMNS[name]}
            frames, load_s = load_frames(store, columns, templates)
            print(f"pandas: loaded {len(frames.events):,} rows x {len(columns)} columns in "
                  f"{load_s:.1f} s (not part of any ratio)", flush=True)  # fmt: skip
        print(f"duckdb threads as the store opens: {_threads(con)}")
        results = {"events": str(manifest.events)}
        context = Context(manifest.last_day)
        results.update(run_cases(store, context, names, frames, config))
        if config.rollups:
            results.update(rollup_sketch(store, context, names, config.runs))
        results["pandas_load_s"] = f"{load_s:.1f}"
        results["peak_rss_mb"] = f"{peak_rss_mb():.0f}"
    finally:
        store.close()
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    print("RESULT " + " ".join(f"{k}={v}" for k, v in results.items()))


if __name__ == "__main__":
    main()
