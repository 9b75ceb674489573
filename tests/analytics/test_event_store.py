"""EventStore on real DuckDB files and a real PostgreSQL database: same tests, same answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest

from shequ.analytics.events import validate_batch
from shequ.analytics.rollup import rollup_daily
from shequ.analytics.store import EventStore, EventStoreLocked, IngestResult

PG_ADMIN_URL = os.environ.get("SHEQU_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL database of this test's own, dropped afterwards."""
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    name = f"shequ_events_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "duckdb":
        return f"duckdb://{tmp_path}/data/events.duckdb"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(url: str) -> Iterator[EventStore]:
    opened = EventStore.open(url)
    yield opened
    opened.close()


def ev(
    event_id: str, timestamp: str = "2026-11-20T08:00:00+08:00", **fields: Any
) -> dict[str, Any]:
    fields.setdefault("anonymous_id", "anon-1")
    return {"event_id": event_id, "name": "page_view", "timestamp": timestamp, **fields}


def batch(*events: dict[str, Any]) -> Any:
    return validate_batch(json.dumps(list(events)).encode())


def rows(store: EventStore, table: str, *order: str) -> list[dict[str, Any]]:
    return list(store.to_arrow(store.table(table).order_by(list(order))).to_pylist())


def test_ingest_is_idempotent(store: EventStore) -> None:
    events = [ev(f"e{i}") for i in range(5)]
    assert store.ingest(batch(*events)) == IngestResult(accepted=5, duplicates=0)
    assert store.ingest(batch(*events)) == IngestResult(accepted=0, duplicates=5)
    assert store.ingest(batch(ev("e4"), ev("e5"), ev("e5"))) == IngestResult(1, 2)
    assert store.count() == 6


def test_stored_row_is_exact(store: EventStore) -> None:
    full = ev(
        "e1", customer_id="c1", session_id="s", device_id="d", page="/p", referrer="",
        channel="web", properties={"b": [1, 2]}, x=0.5, y=0, dwell_ms=90,
    )  # fmt: skip
    store.ingest(batch(full))
    [row] = rows(store, "events", "event_id")
    received = row.pop("received_at")
    assert received.tzinfo is not None
    assert abs((datetime.now(UTC) - received).total_seconds()) < 60
    assert row == {
        "event_id": "e1", "name": "page_view", "ts": datetime(2026, 11, 20, tzinfo=UTC),
        "customer_id": "c1", "anonymous_id": "anon-1", "session_id": "s", "device_id": "d",
        "page": "/p", "referrer": "", "channel": "web", "properties": '{"b": [1, 2]}',
        "x": 0.5, "y": 0.0, "dwell_ms": 90,
    }  # fmt: skip


def test_first_identity_link_wins(store: EventStore) -> None:
    store.ingest(batch(ev("e1", customer_id="c1"), ev("e2", customer_id="c2"), ev("e3")))
    store.ingest(batch(ev("e4", customer_id="c3"), ev("e5", anonymous_id="a2", customer_id="c3")))
    links = [
        (r["anonymous_id"], r["customer_id"]) for r in rows(store, "identity_links", "anonymous_id")
    ]
    assert links == [("a2", "c3"), ("anon-1", "c1")]


def test_ingest_arrow_chunks_dedups_and_reports_progress(store: EventStore) -> None:
    table = batch(*[ev(f"e{i}") for i in range(5)]).table
    done: list[int] = []
    assert store.ingest_arrow(table, on_progress=done.append, chunk_rows=2) == IngestResult(5, 0)
    assert done == [2, 4, 5]
    doubled = pa.concat_tables([table.slice(3), table.slice(3)])
    extra = batch(ev("e9")).table.drop_columns(["x", "y", "dwell_ms", "properties"])
    assert store.ingest_arrow(doubled) == IngestResult(0, 4)
    assert store.ingest_arrow(extra) == IngestResult(1, 0)
    assert store.count() == 6


def test_ingest_arrow_requires_the_key_columns(store: EventStore) -> None:
    with pytest.raises(ValueError, match="required column 'ts'"):
        store.ingest_arrow(pa.table({"event_id": ["a"], "name": ["x"]}))


def test_events_per_day_uses_local_days(store: EventStore) -> None:
    store.ingest(
        batch(
            ev("late", "2026-11-19T23:59:59+08:00"),
            ev("midnight", "2026-11-19T16:00:00Z"),
            ev("next", "2026-11-20T12:00:00+08:00"),
            ev("old", "2026-11-01T12:00:00+08:00"),
        )
    )
    assert store.events_per_day(3, until=date(2026, 11, 21)) == [
        (date(2026, 11, 19), 1), (date(2026, 11, 20), 2), (date(2026, 11, 21), 0),
    ]  # fmt: skip
    late_utc = datetime(2026, 11, 19, 23, tzinfo=UTC)
    assert store.events_per_day(1, tz="UTC", until=late_utc) == [(date(2026, 11, 19), 2)]
    assert store.events_per_day(1, until=late_utc) == [(date(2026, 11, 20), 2)]
    assert store.count(since=datetime(2026, 11, 19, 16, tzinfo=UTC)) == 2


def test_rollup_replaces_days_and_resolves_identities(store: EventStore) -> None:
    store.ingest(
        batch(
            ev("e1", "2026-11-20T08:00:00+08:00", customer_id="c1", channel="web"),
            ev("e2", "2026-11-20T09:00:00+08:00", channel="web"),
            ev("e3", "2026-11-20T10:00:00+08:00", anonymous_id="a9", channel="web"),
            ev("e4", "2026-11-20T23:30:00+08:00", customer_id="c2", anonymous_id=None),
            ev("e5", "2026-11-21T00:30:00+08:00", customer_id="c2", anonymous_id=None),
        )
    )
    assert rollup_daily(store, date(2026, 11, 20), date(2026, 11, 20), "Asia/Shanghai") == 2
    expected = [
        {
            "day": date(2026, 11, 20),
            "name": "page_view",
            "channel": "",
            "events": 1,
            "customers": 1,
        },
        {
            "day": date(2026, 11, 20),
            "name": "page_view",
            "channel": "web",
            "events": 3,
            "customers": 1,
        },
    ]
    assert rows(store, "events_daily", "channel") == expected
    assert rollup_daily(store, date(2026, 11, 20), date(2026, 11, 20), "Asia/Shanghai") == 2
    assert rows(store, "events_daily", "channel") == expected
    store.ingest(
        batch(
            ev(
                "e6",
                "2026-11-20T11:00:00+08:00",
                anonymous_id="a9",
                customer_id="c7",
                channel="web",
            )
        )
    )
    assert rollup_daily(store, date(2026, 11, 20), date(2026, 11, 21), "Asia/Shanghai") == 3
    assert [
        (r["day"].day, r["channel"], r["events"], r["customers"])
        for r in rows(store, "events_daily", "day", "channel")
    ] == [(20, "", 1, 1), (20, "web", 4, 2), (21, "", 1, 1)]


def test_rollup_rejects_reversed_range(store: EventStore) -> None:
    with pytest.raises(ValueError, match="before day_from"):
        rollup_daily(store, date(2026, 11, 21), date(2026, 11, 20))


def test_concurrent_ingest_from_threads(store: EventStore) -> None:
    results: list[IngestResult] = []
    lock = threading.Lock()

    def worker(offset: int) -> None:
        for start in range(0, 400, 100):
            ids = [f"e{offset + start + i}" for i in range(100)]
            result = store.ingest(batch(*[ev(i) for i in ids]))
            with lock:
                results.append(result)

    threads = [threading.Thread(target=worker, args=(k * 200,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Workers overlap by half: 1,000 distinct ids among 1,600 sent.
    assert sum(r.accepted for r in results) == 1000
    assert sum(r.duplicates for r in results) == 600
    assert store.count() == 1000


def test_data_survives_reopen(url: str) -> None:
    first = EventStore.open(url)
    first.ingest(batch(ev("e1"), ev("e2", customer_id="c1")))
    first.close()
    again = EventStore.open(url)
    try:
        assert again.count() == 2
        assert again.ingest(batch(ev("e1"))) == IngestResult(0, 1)
        assert rows(again, "identity_links", "anonymous_id")[0]["customer_id"] == "c1"
    finally:
        again.close()


def test_second_process_gets_event_store_locked(tmp_path: Path) -> None:
    path = tmp_path / "events.duckdb"
    EventStore.open(f"duckdb://{path}").close()
    hold = f"import duckdb, sys; c = duckdb.connect({str(path)!r}); print('ready', flush=True)"
    holder = subprocess.Popen(
        [sys.executable, "-c", hold + "; sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(EventStoreLocked) as info:
            EventStore.open(f"duckdb://{path}")
        assert "only one process may open the events file" in str(info.value)
        assert "shequ serve" in str(info.value)
    finally:
        holder.communicate("")
    assert holder.returncode == 0


def test_unknown_url_scheme() -> None:
    with pytest.raises(ValueError, match=r"unsupported events URL 'sqlite:///x\.db'"):
        EventStore.open("sqlite:///x.db")


@pytest.mark.postgres
def test_postgres_scheme_alias(pg_url: str) -> None:
    store = EventStore.open(pg_url.replace("postgresql://", "postgres://", 1))
    try:
        assert store.dialect == "postgres"
        assert store.ingest(batch(ev("e1"))) == IngestResult(1, 0)
        assert store.count() == 1
    finally:
        store.close()
