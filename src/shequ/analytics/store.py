"""EventStore: the events tables in DuckDB (embedded default) or PostgreSQL.

Reads go through ibis (``store.table("events")``); the hot write path uses the backend's
native connection (a DuckDB cursor or a dedicated psycopg connection) because one
``INSERT`` from an Arrow table per batch is what makes the ingestion target reachable.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import ibis
import pyarrow as pa
import pyarrow.csv as pacsv

from shequ.analytics.commit import GroupCommit, LinkCache
from shequ.analytics.events import (
    EVENT_SCHEMA,
    ValidatedBatch,
    identity_links,
    iter_event_file,
    keep_first,
)
from shequ.analytics.rollup import days_between, local_date, local_day_bounds, local_time
from shequ.analytics.writers import (
    EVENT_COLUMNS,
    EventStoreLocked,
    Writer,
    open_duckdb,
    open_postgres,
)

__all__ = [
    "EVENT_COLUMNS",
    "EventStore",
    "EventStoreLocked",
    "IngestResult",
    "conform",
    "iter_event_file",
]

DEFAULT_CHUNK_ROWS = 100_000
PLAN_CACHE = 256
REPLACEABLE = (
    "dim_devices", "dim_products", "dim_customers", "dim_customer_tags", "segment_members",
    "metric_values",
)
_DIGEST_CSV = pacsv.WriteOptions(include_header=False, quoting_style="all_valid")


@dataclass(frozen=True, slots=True)
class IngestResult:
    """How many events were stored and how many were already known (or repeated)."""

    accepted: int
    duplicates: int


class EventStore:
    """Idempotent, thread-safe event storage; open with :meth:`EventStore.open`."""

    def __init__(self, backend: Any, writer: Writer) -> None:
        self._backend = backend
        self._writer = writer
        self._writes = GroupCommit(writer)
        self._read_lock = threading.Lock()
        self._linked = LinkCache()
        self._tables: dict[str, ibis.Table] = {}
        self._plans: OrderedDict[str, tuple[str, pa.Schema]] = OrderedDict()

    @classmethod
    def open(cls, url: str) -> EventStore:
        """Open ``duckdb:///path/events.duckdb`` or ``postgresql://…``; create tables."""
        if url.startswith("duckdb://"):
            return cls(*open_duckdb(url))
        if url.startswith(("postgresql://", "postgres://")):
            return cls(*open_postgres(url))
        raise ValueError(f"unsupported events URL {url!r}: use duckdb:/// or postgresql://")

    @property
    def dialect(self) -> str:
        """``"duckdb"`` or ``"postgres"`` (the sqlglot dialect of :meth:`table`)."""
        return self._writer.dialect

    @property
    def backend(self) -> Any:
        """The ibis backend (for callers composing their own expressions)."""
        return self._backend

    def table(self, name: str) -> ibis.Table:
        """An ibis table: ``events``, ``identity_links``, ``events_daily``, a dimension
        (``dim_devices``, ``dim_products``, ``segment_members``) or ``metric_values``.

        Looking a table up queries the backend's catalog on the shared connection, so it is
        serialised with the other reads, and done once per table (the schema is fixed)."""
        with self._read_lock:
            found = self._tables.get(name)
            if found is None:
                found = self._tables[name] = self._backend.table(name)
            return found

    def run_plan(self, key: str, build: Callable[[], ibis.Table]) -> pa.Table:
        """Execute the plan ``build()`` names by ``key`` (the same key = the same plan).

        On DuckDB the compiled SQL is kept per key (at most :data:`PLAN_CACHE` of them):
        building and compiling an ibis plan costs 0.1-0.3 s of Python, as much as running
        a funnel over a million events, and dashboards repeat their queries. Other
        backends compile each time.
        """
        if self.dialect != "duckdb":
            return self.to_arrow(build())
        with self._read_lock:
            plan = self._plans.get(key)
            if plan is not None:
                self._plans.move_to_end(key)
        if plan is None:
            expr = build()
            # The expression's schema, so the answer has the types ibis would give it
            # (DuckDB's own sums are 128-bit decimals, for one).
            plan = (ibis.to_sql(expr, dialect="duckdb"), expr.schema().to_pyarrow())
            with self._read_lock:
                self._plans[key] = plan
                while len(self._plans) > PLAN_CACHE:
                    self._plans.popitem(last=False)
        sql, schema = plan
        with self._read_lock:
            table = self._backend.con.execute(sql).fetch_arrow_table()
        return table.cast(schema)

    def to_arrow(self, expr: ibis.Expr) -> pa.Table:
        """Execute an ibis expression on this store (serialised with other reads)."""
        with self._read_lock:
            return expr.to_pyarrow()

    def ingest(self, batch: ValidatedBatch) -> IngestResult:
        """Store a validated batch atomically; known event_ids count as duplicates."""
        accepted = self._write(batch.table)
        return IngestResult(accepted, batch.duplicates + batch.table.num_rows - accepted)

    def ingest_arrow(
        self,
        table: pa.Table,
        on_progress: Callable[[int], None] | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> IngestResult:
        """Bulk-store validated rows (:data:`EVENT_SCHEMA` columns), one commit per chunk.

        Same dedup rules as :meth:`ingest`; ``on_progress`` gets the rows done so far.
        """
        table = conform(table)
        accepted = duplicates = 0
        for offset in range(0, table.num_rows, chunk_rows):
            chunk, repeated = keep_first(table.slice(offset, chunk_rows))
            stored = self._write(chunk)
            accepted += stored
            duplicates += repeated + chunk.num_rows - stored
            if on_progress is not None:
                on_progress(min(offset + chunk_rows, table.num_rows))
        return IngestResult(accepted, duplicates)

    def _write(self, table: pa.Table) -> int:
        if table.num_rows == 0:
            return 0
        links = self._linked.unknown(identity_links(table))
        accepted = self._writes.submit(table, links)
        self._linked.remember(links)
        return accepted

    def link_identity(self, anonymous_id: str, customer_id: str) -> None:
        """Record that an anonymous visitor is a known customer (the first link wins).

        Events carrying both ids link themselves on ingestion; this is for merges that
        happen elsewhere, such as a login reported to the customers API.
        """
        links = self._linked.unknown(pa.table({"anonymous_id": [anonymous_id],
                                               "customer_id": [customer_id]}))
        if links.num_rows:
            self._writes.submit(EVENT_SCHEMA.empty_table(), links)
            self._linked.remember(links)

    def execute_atomic(self, statements: Sequence[str]) -> None:
        """Run SQL statements in one transaction, serialised with ingestion."""
        with self._writes.exclusive():
            self._writer.execute_atomic(statements)

    def replace_rows(self, name: str, rows: pa.Table, where: str = "TRUE") -> None:
        """Delete the rows of table ``name`` matching the SQL condition ``where`` and insert
        ``rows`` (columns named as the table's), in one transaction serialised with ingestion.

        Used for the dimension tables (``dim_devices``, ``dim_products``,
        ``segment_members``) and for ``metric_values``.
        """
        if name not in REPLACEABLE:
            raise ValueError(f"{name!r} is not a replaceable table; use one of {REPLACEABLE}")
        with self._writes.exclusive():
            self._writer.replace(name, f"DELETE FROM {name} WHERE {where}", rows)

    def sync_members(self, segment: str, members: pa.Table) -> tuple[int, int]:
        """Make the members of ``segment`` in ``segment_members`` exactly the
        ``customer_id`` column of ``members``: one transaction, serialised with ingestion,
        that deletes the members who left and inserts the new ones (rows of members who
        stay are not touched). Returns (added, removed)."""
        with self._writes.exclusive():
            return self._writer.sync_members(segment, members)

    def digest(self, expr: ibis.Table, batch_rows: int = 100_000) -> str:
        """SHA-256 of the rows of ``expr`` (order them for a stable answer), streamed in
        batches of CSV text, so a change of any value changes the digest without holding a
        whole dimension table in memory."""
        found = hashlib.sha256()
        with self._read_lock:
            for batch in expr.to_pyarrow_batches(chunk_size=batch_rows):
                buffer = io.BytesIO()
                pacsv.write_csv(pa.Table.from_batches([batch]), buffer, _DIGEST_CSV)
                found.update(buffer.getvalue())
        return found.hexdigest()

    def count(self, since: datetime | None = None) -> int:
        """Number of stored events (with ``ts >= since`` when given)."""
        events = self.table("events")
        if since is not None:
            events = events.filter(events.ts >= since)
        return int(self.to_arrow(events.count()).as_py())

    def events_per_day(
        self, days: int, tz: str = "Asia/Shanghai", until: datetime | date | None = None
    ) -> list[tuple[date, int]]:
        """Events per local day in ``tz`` for the ``days`` days ending at ``until``.

        ``until`` is the last day (a date) or an instant whose local date is the last day;
        default now. Oldest day first; days without events count 0.
        """
        zone = ZoneInfo(tz)
        last = local_date(until or datetime.now(UTC), zone)
        first = last - timedelta(days=days - 1)
        events = self.table("events")
        start, end = local_day_bounds(first, last, zone)
        window = events.filter(events.ts >= start, events.ts < end)
        day = local_time(tz, window.ts).date().name("day")
        counts = self.to_arrow(window.group_by(day).aggregate(events=window.count()))
        found = dict(zip(counts["day"].to_pylist(), counts["events"].to_pylist(), strict=True))
        return [(d, int(found.get(d, 0))) for d in days_between(first, last)]

    def close(self) -> None:
        """Close the write connection and the ibis backend (DuckDB checkpoints here)."""
        with self._writes.exclusive(), self._read_lock:
            self._writer.close()
            self._backend.disconnect()


def conform(table: pa.Table) -> pa.Table:
    """Select and cast ``table`` to :data:`EVENT_SCHEMA`; absent optional columns are null."""
    columns = []
    for field in EVENT_SCHEMA:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        elif field.nullable:
            columns.append(pa.nulls(table.num_rows, field.type))
        else:
            raise ValueError(f"events table lacks the required column {field.name!r}")
    return pa.Table.from_arrays(columns, schema=EVENT_SCHEMA)
