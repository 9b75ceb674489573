"""Write side of the event store: one native writer per backend (DuckDB, PostgreSQL).

Each writer inserts an Arrow table of validated events and their identity links in one
transaction, skipping event ids already stored.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import duckdb
import ibis
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv

from shequ.analytics.events import EVENT_SCHEMA

EVENT_COLUMNS = tuple(EVENT_SCHEMA.names)
_COLS = ", ".join(EVENT_COLUMNS)
DEFAULT_CHUNK_ROWS = 100_000
_TIMESTAMP = pa.timestamp("us", tz="UTC")
# Checkpoints cost a fixed ~0.1-0.2 s plus a little per row: at DuckDB's default 16 MB WAL
# they took a third of ingestion time; 64 MB keeps stalls under ~0.5 s and replay short.
CHECKPOINT_THRESHOLD = "64MB"



class EventStoreLocked(RuntimeError):
    """The embedded DuckDB events file is held open by another process."""


def _schema_sql(double: str) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS events (
            event_id TEXT PRIMARY KEY, name TEXT NOT NULL, ts TIMESTAMPTZ NOT NULL,
            customer_id TEXT, anonymous_id TEXT, session_id TEXT, device_id TEXT,
            page TEXT, referrer TEXT, channel TEXT, properties TEXT,
            x {double}, y {double}, dwell_ms BIGINT, received_at TIMESTAMPTZ NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS identity_links (
            anonymous_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL,
            linked_at TIMESTAMPTZ NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS events_daily (
            day DATE NOT NULL, name TEXT NOT NULL, channel TEXT NOT NULL,
            events BIGINT NOT NULL, customers BIGINT NOT NULL,
            PRIMARY KEY (day, name, channel))""",
        # Dimensions copied from the entity store, so analytics can break down and filter
        # by device kind, brand and saved segment without reaching across databases.
        """CREATE TABLE IF NOT EXISTS dim_devices (
            device_id TEXT PRIMARY KEY, kind TEXT NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS dim_products (
            sku TEXT PRIMARY KEY, brand_id TEXT, category_id TEXT)""",
        """CREATE TABLE IF NOT EXISTS segment_members (
            segment TEXT NOT NULL, customer_id TEXT NOT NULL,
            PRIMARY KEY (segment, customer_id))""",
        # Customer profiles and tags copied from the entity store (insight domain), so
        # segment rules combine attributes, RFM, CLV, lifecycle, tier and tags with behaviour.
        f"""CREATE TABLE IF NOT EXISTS dim_customers (
            customer_id TEXT PRIMARY KEY, gender TEXT, city TEXT, birth_year INTEGER,
            registered_at TIMESTAMPTZ, acquisition_channel TEXT,
            recency_days INTEGER, frequency INTEGER, monetary_fen BIGINT,
            r_score INTEGER, f_score INTEGER, m_score INTEGER, rfm_group TEXT,
            clv_fen BIGINT, p_alive {double}, value_tier TEXT,
            lifecycle_stage TEXT, member_tier TEXT)""",
        f"""CREATE TABLE IF NOT EXISTS dim_customer_tags (
            customer_id TEXT NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL,
            score {double} NOT NULL, PRIMARY KEY (customer_id, kind, value))""",
        f"""CREATE TABLE IF NOT EXISTS metric_values (
            metric TEXT NOT NULL, grain TEXT NOT NULL, bucket_start TIMESTAMPTZ NOT NULL,
            value {double}, computed_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (metric, grain, bucket_start))""",
    ]


class Writer(Protocol):
    dialect: str

    def write(self, events: pa.Table, links: pa.Table) -> int: ...

    def write_all(self, events: pa.Table, links: pa.Table) -> bool: ...

    def execute_atomic(self, statements: Sequence[str]) -> None: ...

    def replace(self, name: str, delete_sql: str, rows: pa.Table) -> None: ...

    def sync_members(self, segment: str, members: pa.Table) -> tuple[int, int]: ...

    def close(self) -> None: ...


class DuckWriter:
    """Writes through a cursor of the same DuckDB instance that ibis reads from."""

    dialect = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._cur = con.cursor()
        for statement in _schema_sql("DOUBLE"):
            self._cur.execute(statement)

    def write(self, events: pa.Table, links: pa.Table) -> int:
        """Insert the new events of one batch in one transaction; returns how many."""
        if self.write_all(events, links):
            return int(events.num_rows)
        with self._transaction() as cur:
            cur.register("_shequ_batch", events)
            row = cur.execute(
                f"INSERT OR IGNORE INTO events ({_COLS}, received_at) "
                f"SELECT {_COLS}, current_timestamp FROM _shequ_batch"
            ).fetchone()
            cur.unregister("_shequ_batch")
            self._link(cur, links)
        return int(row[0]) if row else 0

    def write_all(self, events: pa.Table, links: pa.Table) -> bool:
        """Insert every event or, if any is known, nothing (False)."""
        received = pa.repeat(pa.scalar(datetime.now(UTC), _TIMESTAMP), events.num_rows)
        try:
            with self._transaction() as cur:
                # A plain append is ~2x cheaper than OR IGNORE: only retries pay for that.
                cur.from_arrow(events.append_column("received_at", received)).insert_into("events")
                self._link(cur, links)
        except duckdb.ConstraintException:
            return False
        return True

    @staticmethod
    def _link(cur: duckdb.DuckDBPyConnection, links: pa.Table) -> None:
        if links.num_rows:
            cur.register("_shequ_links", links)
            cur.execute(
                "INSERT OR IGNORE INTO identity_links "
                "SELECT anonymous_id, customer_id, current_timestamp FROM _shequ_links"
            )
            cur.unregister("_shequ_links")

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        self._cur.execute("BEGIN TRANSACTION")
        try:
            yield self._cur
            self._cur.execute("COMMIT")
        except BaseException:
            self._cur.execute("ROLLBACK")
            raise

    def execute_atomic(self, statements: Sequence[str]) -> None:
        with self._transaction() as cur:
            for statement in statements:
                cur.execute(statement)

    def replace(self, name: str, delete_sql: str, rows: pa.Table) -> None:
        """Run ``delete_sql`` and append ``rows`` to table ``name`` in one transaction."""
        with self._transaction() as cur:
            cur.execute(delete_sql)
            if rows.num_rows:
                cur.register("_shequ_rows", rows)
                cols = ", ".join(rows.column_names)
                cur.execute(f"INSERT INTO {name} ({cols}) SELECT {cols} FROM _shequ_rows")
                cur.unregister("_shequ_rows")

    def sync_members(self, segment: str, members: pa.Table) -> tuple[int, int]:
        """Make ``segment``'s rows of ``segment_members`` exactly the ``customer_id``
        column of ``members``, deleting and inserting only the difference in one
        transaction; returns (added, removed)."""
        with self._transaction() as cur:
            cur.register("_shequ_members", members.select(["customer_id"]))
            deleted = cur.execute(
                "DELETE FROM segment_members WHERE segment = ? AND customer_id NOT IN "
                "(SELECT customer_id FROM _shequ_members)", [segment]).fetchone()
            # Only the newcomers: checking every member against the primary key through
            # OR IGNORE costs seconds per 500,000 members, the anti join milliseconds.
            inserted = cur.execute(
                "INSERT INTO segment_members (segment, customer_id) "
                "SELECT DISTINCT ?, customer_id FROM _shequ_members WHERE customer_id NOT IN "
                "(SELECT customer_id FROM segment_members WHERE segment = ?)",
                [segment, segment]).fetchone()
            cur.unregister("_shequ_members")
        return (int(inserted[0]) if inserted else 0), (int(deleted[0]) if deleted else 0)

    def close(self) -> None:
        self._cur.close()


_CSV_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="all_valid")


def _csv(table: pa.Table) -> bytes:
    # Quoting every valid value keeps '' distinct from NULL (unquoted empty) for COPY.
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer, _CSV_OPTIONS)
    return buffer.getvalue()


class PgWriter:
    """COPY into session temp tables, then one INSERT ... ON CONFLICT DO NOTHING."""

    dialect = "postgres"

    def __init__(self, url: str) -> None:
        self._con = psycopg.connect(url)
        with self._con.transaction():
            for statement in _schema_sql("DOUBLE PRECISION"):
                self._con.execute(statement)
            self._con.execute("CREATE INDEX IF NOT EXISTS events_ts_idx ON events (ts)")
            self._con.execute(
                "CREATE TEMP TABLE _shequ_batch ON COMMIT DELETE ROWS AS SELECT "
                f"{_COLS} FROM events WITH NO DATA"
            )
            self._con.execute(
                "CREATE TEMP TABLE _shequ_links (anonymous_id TEXT, customer_id TEXT) "
                "ON COMMIT DELETE ROWS"
            )

    def write(self, events: pa.Table, links: pa.Table) -> int:
        """Insert the new events of one batch in one transaction; returns how many."""
        with self._con.transaction():
            return self._insert(events, links)

    def write_all(self, events: pa.Table, links: pa.Table) -> bool:
        """Insert every event or, if any is known, nothing (False)."""
        with self._con.transaction():
            if self._insert(events, links) != events.num_rows:
                raise psycopg.Rollback()
            return True
        return False

    def _insert(self, events: pa.Table, links: pa.Table) -> int:
        with self._con.cursor() as cur:
            with cur.copy(f"COPY _shequ_batch ({_COLS}) FROM STDIN (FORMAT csv)") as copy:
                copy.write(_csv(events))
            cur.execute(
                f"INSERT INTO events ({_COLS}, received_at) SELECT {_COLS}, now() "
                "FROM _shequ_batch ON CONFLICT (event_id) DO NOTHING"
            )
            accepted = cur.rowcount
            if links.num_rows:
                with cur.copy("COPY _shequ_links FROM STDIN (FORMAT csv)") as copy:
                    copy.write(_csv(links))
                cur.execute(
                    "INSERT INTO identity_links SELECT anonymous_id, customer_id, now() "
                    "FROM _shequ_links ON CONFLICT (anonymous_id) DO NOTHING"
                )
        return accepted

    def execute_atomic(self, statements: Sequence[str]) -> None:
        with self._con.transaction():
            for statement in statements:
                self._con.execute(statement)

    def replace(self, name: str, delete_sql: str, rows: pa.Table) -> None:
        """Run ``delete_sql`` and COPY ``rows`` into table ``name`` in one transaction."""
        with self._con.transaction(), self._con.cursor() as cur:
            cur.execute(delete_sql)
            if rows.num_rows:
                cols = ", ".join(rows.column_names)
                with cur.copy(f"COPY {name} ({cols}) FROM STDIN (FORMAT csv)") as copy:
                    copy.write(_csv(rows))

    def sync_members(self, segment: str, members: pa.Table) -> tuple[int, int]:
        """Make ``segment``'s rows of ``segment_members`` exactly the ``customer_id``
        column of ``members``, deleting and inserting only the difference in one
        transaction; returns (added, removed).

        Writers of one segment in other processes are serialised by a transaction-level
        advisory lock on the segment: without it two syncs inserting overlapping sets in
        different orders deadlock, and each would diff against a state the other changes.
        """
        with self._con.transaction(), self._con.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                        (f"segment_members:{segment}",))
            cur.execute("CREATE TEMP TABLE IF NOT EXISTS _shequ_members "
                        "(customer_id TEXT NOT NULL) ON COMMIT DELETE ROWS")
            with cur.copy("COPY _shequ_members (customer_id) FROM STDIN (FORMAT csv)") as copy:
                copy.write(_csv(members.select(["customer_id"])))
            cur.execute("ANALYZE _shequ_members")
            cur.execute(
                "DELETE FROM segment_members s WHERE s.segment = %s AND NOT EXISTS "
                "(SELECT 1 FROM _shequ_members m WHERE m.customer_id = s.customer_id)",
                (segment,))
            removed = cur.rowcount
            cur.execute(
                "INSERT INTO segment_members (segment, customer_id) SELECT DISTINCT %s, "
                "customer_id FROM _shequ_members ON CONFLICT DO NOTHING", (segment,))
            added = cur.rowcount
        return added, removed

    def close(self) -> None:
        self._con.close()


def _duckdb_path(url: str) -> str:
    """``duckdb:///abs`` and ``duckdb:////abs`` are absolute, ``duckdb://rel`` relative."""
    path = url.removeprefix("duckdb://")
    if path.startswith("//"):
        path = path[1:]
    if path not in ("", ":memory:"):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    return path or ":memory:"


def open_duckdb(url: str) -> tuple[Any, Writer]:
    path = _duckdb_path(url)
    try:
        backend = ibis.duckdb.connect(path)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        raise EventStoreLocked(
            f"the events file {path} is open in another process. On the embedded DuckDB "
            "default only one process may open the events file: stop the other process "
            "(e.g. `shequ serve`) first, or use PostgreSQL for events."
        ) from exc
    # Per-batch inserts are latency bound: parallel scans of 1,000 rows cost more than they save.
    backend.con.execute("SET threads = 1")
    backend.con.execute(f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
    return backend, DuckWriter(backend.con)


def open_postgres(url: str) -> tuple[Any, Writer]:
    writer = PgWriter(url)
    backend = ibis.postgres.from_connection(psycopg.connect(url, autocommit=True))
    return backend, writer


