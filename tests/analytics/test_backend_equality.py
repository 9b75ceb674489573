"""DuckDB == PostgreSQL == PySpark (local mode): every case of backend_cases.py answers the
same on one deterministic event stream, ingested into DuckDB and PostgreSQL and copied
from DuckDB into Spark; so do the daily rollup plan and ``local_time`` across DST changes.

Spark tests (marker ``spark``) share one local session and skip without pyspark or Java."""

from __future__ import annotations

import math
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import ibis
import pyarrow as pa
import pytest
from backend_cases import CASES, SHANGHAI_MIDNIGHT_UTC, Case, Stream, event_stream
from journeys import (  # the fixture is used by name: pg_url
    ingest_rows,
    open_store,
    pg_url_fixture,  # noqa: F401
)

from shequ.analytics.rollup import daily_expr, local_time
from shequ.analytics.store import EventStore

IDS = [case.id for case in CASES]
# A few thousand rows: planning, code generation and JIT warm-up cost more than they save.
SMALL_DATA = {
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.codegen.wholeStage": "false",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1",
}
OTHERS = [pytest.param("postgres", marks=pytest.mark.postgres),
          pytest.param("spark", marks=pytest.mark.spark)]  # fmt: skip


def assert_same(got: Any, expected: Any, tolerance: float = 0.0, path: str = "result") -> None:
    """Equal values, recursively; floats within ``tolerance`` (relative) when it is not 0."""
    if isinstance(expected, dict):
        assert isinstance(got, dict), f"{path}: {got!r} is not a mapping"
        assert sorted(got) == sorted(expected), f"{path}: keys differ"
        for key, value in expected.items():
            assert_same(got[key], value, tolerance, f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(got, list), f"{path}: {got!r} is not a list"
        assert len(got) == len(expected), f"{path}: {len(got)} items, expected {len(expected)}"
        for index, (mine, theirs) in enumerate(zip(got, expected, strict=True)):
            assert_same(mine, theirs, tolerance, f"{path}[{index}]")
    elif isinstance(expected, float) and isinstance(got, float) and tolerance:
        assert math.isclose(got, expected, rel_tol=tolerance), f"{path}: {got} != {expected}"
    else:
        assert type(got) is type(expected), f"{path}: {got!r} vs {expected!r}"
        assert got == expected, f"{path}: {got!r} != {expected!r}"


def load(store: EventStore, stream: Stream) -> EventStore:
    ingest_rows(store, stream.rows)
    store.replace_rows("dim_devices", stream.dim_devices)
    store.replace_rows("dim_products", stream.dim_products)
    store.replace_rows("segment_members", stream.segment_members)
    return store


@pytest.fixture(scope="module")
def stream() -> Stream:
    return event_stream()


@pytest.fixture(scope="module")
def duckdb(stream: Stream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventStore]:
    folder = tmp_path_factory.mktemp("equality")
    with open_store(f"duckdb://{folder}/events.duckdb") as store:
        yield load(store, stream)


@pytest.fixture(scope="module")
def postgres(stream: Stream, pg_url: str) -> Iterator[EventStore]:
    with open_store(pg_url) as store:
        yield load(store, stream)


@pytest.fixture(scope="session")
def spark_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One local Spark session for the test run; skips without pyspark or Java."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        pytest.skip("pyspark is not installed (pip install -e '.[spark]')")
    java_home = os.environ.get("JAVA_HOME")
    if shutil.which("java") is None and not (java_home and Path(java_home, "bin/java").exists()):
        pytest.skip("Spark needs Java 17: no java on PATH and no JAVA_HOME")
    from shequ.analytics.spark import local_session

    warehouse = str(tmp_path_factory.mktemp("spark-warehouse"))
    session = local_session(
        shuffle_partitions=2, conf={**SMALL_DATA, "spark.sql.warehouse.dir": warehouse}
    )
    yield session
    session.stop()


@pytest.fixture(scope="module")
def spark(spark_session: Any, duckdb: EventStore) -> Iterator[Any]:
    from shequ.analytics.spark import SparkEventStore

    store = SparkEventStore.from_store(duckdb, spark_session)
    yield store
    store.close()


@pytest.fixture(scope="module")
def on_duckdb(duckdb: EventStore) -> Callable[[Case], dict[str, Any]]:
    """The DuckDB answer to a case (computed once)."""
    answers: dict[str, dict[str, Any]] = {}

    def answer(case: Case) -> dict[str, Any]:
        if case.id not in answers:
            answers[case.id] = case.runner(case.query).run(duckdb).model_dump()
        return answers[case.id]

    return answer


def test_stream_has_the_hard_parts(stream: Stream) -> None:
    rows = stream.rows
    times = [row["ts"] for row in rows]
    assert 2_000 < len(rows) < 5_000
    assert times != sorted(times)
    assert len({row["event_id"] for row in rows}) == len(rows)
    per_person = Counter((row.get("customer_id") or row["anonymous_id"], row["ts"]) for row in rows)
    assert sum(1 for n in per_person.values() if n > 1) >= 20
    assert sum(1 for row in rows if row.get("customer_id") and row.get("anonymous_id")) >= 10
    assert sum(1 for row in rows if not row.get("customer_id")) >= 100
    assert len({row["channel"] for row in rows}) >= 5
    crossing = [t for t in times if t.hour == SHANGHAI_MIDNIGHT_UTC and t.minute < 30]
    assert len(crossing) >= 50
    clicks = [row for row in rows if row["name"] == "click"]
    assert len(clicks) >= 100
    assert all(0 <= row["x"] <= 1 and 0 <= row["y"] <= 1 for row in clicks)
    assert {0.0, 1.0} <= {row["x"] for row in clicks}
    assert sum(1 for row in rows if row.get("dwell_ms") is not None) >= 500
    assert sum(1 for row in rows if '"amount_fen"' in row["properties"]) >= 100
    by_session: dict[str, list[Any]] = {}
    for row in rows:
        by_session.setdefault(row["session_id"], []).append(row["ts"])
    gaps = Counter(
        b - a
        for ts in by_session.values()
        for a, b in zip(sorted(ts), sorted(ts)[1:], strict=False)
    )
    assert gaps[timedelta(minutes=30)] >= 5
    assert gaps[timedelta(minutes=30, milliseconds=1)] >= 5


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_case_sees_the_stream(
    case: Case, on_duckdb: Callable[[Case], dict[str, Any]], tmp_path: Path
) -> None:
    with open_store(f"duckdb://{tmp_path}/empty.duckdb") as empty:
        assert case.runner(case.query).run(empty).model_dump() != on_duckdb(case)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("backend", OTHERS)
def test_backend_answers_as_duckdb(
    backend: str, case: Case, request: pytest.FixtureRequest,
    on_duckdb: Callable[[Case], dict[str, Any]],
) -> None:  # fmt: skip
    store = request.getfixturevalue(backend)
    got = case.runner(case.query).run(store).model_dump()
    assert_same(got, on_duckdb(case), case.tolerance)


@pytest.mark.parametrize("backend", OTHERS)
def test_daily_rollup_plan_answers_as_duckdb(
    backend: str, request: pytest.FixtureRequest, duckdb: EventStore
) -> None:
    store = request.getfixturevalue(backend)
    days = (date(2026, 11, 19), date(2026, 11, 22))

    def rows(on: Any) -> list[dict[str, Any]]:
        expr = daily_expr(on, *days, "Asia/Shanghai").order_by(["day", "name", "channel"])
        return on.to_arrow(expr).to_pylist()

    expected = rows(duckdb)
    assert len({row["day"] for row in expected}) == 4
    assert_same(rows(store), expected)


ZONES = ("Asia/Shanghai", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC")


@pytest.mark.parametrize("backend", ["duckdb", *OTHERS])
def test_local_time_matches_zoneinfo_across_dst(
    backend: str, request: pytest.FixtureRequest
) -> None:
    store = request.getfixturevalue(backend)
    # Four hours around the DST changes of 2026 in New York and Lord Howe (30-minute shift).
    starts = [
        datetime(2026, 3, 8, 5, tzinfo=UTC),
        datetime(2026, 4, 4, 14, tzinfo=UTC),
        datetime(2026, 10, 3, 15, tzinfo=UTC),
        datetime(2026, 11, 1, 4, tzinfo=UTC),
    ]
    instants = [start + timedelta(minutes=20 * k) for start in starts for k in range(12)]
    table = ibis.memtable(pa.table({"ts": pa.array(instants, pa.timestamp("us", "UTC"))}))
    columns = {f"z{i}": local_time(zone, table.ts) for i, zone in enumerate(ZONES)}
    rows = store.to_arrow(table.select("ts", **columns).order_by("ts")).to_pylist()
    assert [row["ts"] for row in rows] == instants
    for i, zone in enumerate(ZONES):
        expected = [t.astimezone(ZoneInfo(zone)).replace(tzinfo=None) for t in instants]
        assert [row[f"z{i}"] for row in rows] == expected, zone


@pytest.mark.spark
def test_spark_reads_the_parquet_export(
    spark_session: Any, duckdb: EventStore, tmp_path: Path,
    on_duckdb: Callable[[Case], dict[str, Any]],
) -> None:  # fmt: skip
    from shequ.analytics.spark import SparkEventStore, write_parquet

    store = SparkEventStore.from_parquet(write_parquet(duckdb, tmp_path), spark_session)
    try:
        case = next(case for case in CASES if case.id == "sessions")
        assert_same(case.runner(case.query).run(store).model_dump(), on_duckdb(case))
        with pytest.raises(ValueError, match="unknown table 'orders'"):
            store.table("orders")
    finally:
        store.close()


@pytest.mark.spark
def test_spark_store_returns_exact_integers_columns_and_scalars(spark_session: Any) -> None:
    from shequ.analytics.spark import STORE_TABLES, SparkEventStore

    big = 2**60 + 1
    tables = {name: pa.table({"x": pa.array([], pa.int64())}) for name in STORE_TABLES}
    tables["events"] = pa.table({"k": pa.array([big, None], pa.int64())})
    store = SparkEventStore.from_arrow(tables, spark_session)
    try:
        events = store.table("events")
        shifted = events.select(k=events.k + 2)
        assert store.to_arrow(shifted.filter(shifted.k.notnull())).column("k").to_pylist() == [
            big + 2
        ]
        assert store.to_arrow(events.k).null_count == 1
        assert store.to_arrow(events.k.max()).as_py() == big
    finally:
        store.close()


@pytest.mark.spark
def test_spark_store_needs_every_table(spark_session: Any, tmp_path: Path) -> None:
    from shequ.analytics.spark import SparkEventStore

    with pytest.raises(ValueError, match="missing store tables: dim_customer_tags, dim_customers, "
                                         "dim_devices, dim_products, "):
        SparkEventStore.from_parquet(tmp_path, spark_session)


@pytest.mark.parametrize(
    ("got", "expected", "tolerance"),
    [
        ({"a": [1, 2.0]}, {"a": [1, 2.5]}, 1e-9),
        ({"a": [1, 2.0]}, {"a": [1, 2.0 + 1e-9]}, 0.0),
        ({"a": 1}, {"a": 1.0}, 0.0),
        ({"a": [1]}, {"a": [1, 1]}, 0.0),
        ({"a": None}, {"a": "x"}, 0.0),
        ({"b": 1}, {"a": 1}, 0.0),
    ],
)
def test_a_disagreement_fails(got: Any, expected: Any, tolerance: float) -> None:
    with pytest.raises(AssertionError):
        assert_same(got, expected, tolerance)
    assert_same(expected, expected, tolerance)
