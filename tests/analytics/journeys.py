"""Declarative event fixtures for analytics tests, after PostHog's ``journeys_for``.

    journeys_for(store, {
        "c1": [{"event": "product_view", "ts": "2026-11-20T08:00:00+08:00", "channel": "web"},
               {"event": "payment", "ts": "2026-11-20T08:05:00+08:00"}],
    })

Each key is a person: their events carry ``customer_id=<key>`` unless an event names its
own ``customer_id``/``anonymous_id``. ``event_id`` defaults to ``<key>-<index>``. Events
are ingested in the order written (persons, then list order), not in time order.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest
from hypothesis import strategies as st

from shequ.analytics.events import EVENT_SCHEMA
from shequ.analytics.store import EventStore

PG_ADMIN_URL = os.environ.get("SHEQU_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
Journeys = Mapping[str, Sequence[Mapping[str, Any]]]
_IDENTITY = ("customer_id", "anonymous_id")
STORE_TABLES = ("events", "identity_links", "events_daily", "dim_devices", "dim_products",
                "dim_customers", "dim_customer_tags", "segment_members", "metric_values")


def journey_rows(journeys: Journeys) -> list[dict[str, Any]]:
    """The event rows (``EVENT_SCHEMA`` keys) of the journeys, in the order written."""
    rows = []
    for person, events in journeys.items():
        for index, event in enumerate(events):
            row = {key: value for key, value in event.items() if key not in ("event", "ts")}
            row.setdefault("event_id", f"{person}-{index}")
            row["name"] = event["event"]
            row["ts"] = datetime.fromisoformat(event["ts"]).astimezone(UTC)
            if not any(key in event for key in _IDENTITY):
                row["customer_id"] = person
            rows.append(row)
    return rows


def ingest_rows(store: EventStore, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Ingest rows (dicts with ``EVENT_SCHEMA`` keys; absent keys are null)."""
    table = pa.Table.from_pylist(
        [{field.name: row.get(field.name) for field in EVENT_SCHEMA} for row in rows],
        schema=EVENT_SCHEMA,
    )
    store.ingest_arrow(table)
    return table


def journeys_for(store: EventStore, journeys: Journeys) -> pa.Table:
    """Ingest the journeys into ``store``; returns the Arrow table ingested."""
    return ingest_rows(store, journey_rows(journeys))


@contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A uniquely named PostgreSQL database, dropped afterwards; skips if no server."""
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL} (set SHEQU_TEST_PG): {exc}")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def open_store(url: str) -> Iterator[EventStore]:
    """An EventStore on ``url``, emptied and closed afterwards (databases are shared)."""
    store = EventStore.open(url)
    try:
        yield store
    finally:
        store.execute_atomic([f"DELETE FROM {table}" for table in STORE_TABLES])
        store.close()


@pytest.fixture(scope="module", name="pg_url")
def pg_url_fixture(request: pytest.FixtureRequest) -> Iterator[str]:
    """A PostgreSQL database of the test module's own, dropped afterwards."""
    prefix = "shequ_" + request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    with postgres_database(prefix) as url:
        yield url


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)],
                name="store")
def store_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    """The same tests on a DuckDB file and on this run's PostgreSQL database."""
    if request.param == "duckdb":
        url = f"duckdb://{tmp_path}/events.duckdb"
    else:
        url = request.getfixturevalue("pg_url")
    with open_store(url) as opened:
        yield opened


@pytest.fixture(scope="module", name="backend_url",
                params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend_url_fixture(request: pytest.FixtureRequest,
                        tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One store URL per backend for a whole module, for hypothesis tests: each example
    opens it with :func:`open_store`, which empties it afterwards."""
    if request.param == "duckdb":
        folder = tmp_path_factory.mktemp("store")
        yield f"duckdb://{folder}/events.duckdb"
    else:
        yield request.getfixturevalue("pg_url")


def draw_identity(draw: st.DrawFn, row: dict[str, Any], person: str) -> dict[str, Any]:
    """Give a random-stream ``row`` its person: ``c…`` is a customer; ``a…`` an anonymous
    visitor whose event sometimes also carries a customer id (a login that links them)."""
    if person.startswith("a"):
        row["anonymous_id"] = person
        if draw(st.booleans()) and draw(st.booleans()):
            row["customer_id"] = draw(st.sampled_from(["c0", "c1", "c9"]))
    else:
        row["customer_id"] = person
    return row
