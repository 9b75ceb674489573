"""The analytics runners on Spark: a read-only event store over ibis's PySpark backend.

The runners' plans are pure ibis, so they run unchanged on Spark once the store's tables
are Spark views::

    session = local_session()
    spark = SparkEventStore.from_store(store, session)        # copy a DuckDB/PostgreSQL store
    result = FunnelRunner(query).run(spark)                    # type: ignore[arg-type]

Two things keep the answers equal to DuckDB's and PostgreSQL's: the session time zone is
UTC (Spark's ``TIMESTAMP`` is an instant shown in that zone), and each store declares the
source tables' ibis schemas, so timestamp columns are ``timestamp('UTC')`` as on the other
backends. The ``timezone(zone, ts)`` function that :func:`shequ.analytics.rollup.local_time`
calls is defined in the session as a SQL function over Spark's ``from_utc_timestamp``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import ibis
import ibis.expr.operations as ops
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

STORE_TABLES = ("events", "identity_links", "events_daily", "dim_devices", "dim_products",
                "dim_customers", "dim_customer_tags", "segment_members",
                "metric_values")  # fmt: skip
DEFAULT_MASTER = "local[2]"
DEFAULT_SHUFFLE_PARTITIONS = 4
TIMEZONE_FUNCTION = (
    "CREATE OR REPLACE TEMPORARY FUNCTION timezone(zone STRING, ts TIMESTAMP) "
    "RETURNS TIMESTAMP RETURN from_utc_timestamp(ts, zone)"
)


class ReadStore(Protocol):
    """What the runners read from a store: tables as ibis expressions, and execution."""

    @property
    def dialect(self) -> str:
        """The sqlglot dialect the tables compile to."""
        ...

    @property
    def backend(self) -> Any:
        """The ibis backend."""
        ...

    def table(self, name: str) -> ibis.Table:
        """One of the store's tables as an ibis table."""
        ...

    def to_arrow(self, expr: ibis.Expr) -> pa.Table:
        """Execute an ibis expression on this store."""
        ...

    def run_plan(self, key: str, build: Callable[[], ibis.Table]) -> pa.Table:
        """Execute the plan ``build()`` names by ``key`` (a store may reuse its compiled
        form for an equal key)."""
        ...


def local_session(
    master: str = DEFAULT_MASTER,
    shuffle_partitions: int = DEFAULT_SHUFFLE_PARTITIONS,
    app_name: str = "shequ-analytics",
    conf: Mapping[str, str] | None = None,
) -> SparkSession:
    """A local Spark session for analytics: UTC session time zone, no web UI, few shuffle
    partitions, Arrow transfers to Python, plus any ``conf`` settings. Reuses the process's
    active session if any (settings that only apply at start-up are then ignored by Spark).

    ``SPARK_LOCAL_IP`` defaults to ``127.0.0.1`` so the driver binds to loopback.
    """
    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    settings = {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        "spark.default.parallelism": str(shuffle_partitions),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        **(conf or {}),
    }
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


class SparkEventStore:
    """Read-only store: the event store's tables as temporary views of one Spark session.

    Build it with :meth:`from_store`, :meth:`from_arrow` or :meth:`from_parquet`. Views are
    named per store (``shequ_<id>_<table>``), so several stores can share a session;
    :meth:`close` drops them and leaves the session running.
    """

    def __init__(
        self, session: SparkSession, schemas: Mapping[str, ibis.Schema], views: Mapping[str, str]
    ) -> None:
        self._session = session
        self._backend = ibis.pyspark.connect(session)
        self._session.sql(TIMEZONE_FUNCTION)
        self._schemas = dict(schemas)
        self._views = dict(views)

    @staticmethod
    def _prefix() -> str:
        return f"shequ_{uuid.uuid4().hex[:12]}_"

    @classmethod
    def from_arrow(
        cls,
        tables: Mapping[str, pa.Table],
        session: SparkSession,
        schemas: Mapping[str, ibis.Schema] | None = None,
    ) -> SparkEventStore:
        """A store over Arrow tables named as the event store's (:data:`STORE_TABLES`).

        ``schemas`` gives each table's ibis schema (default: from its Arrow schema).
        """
        _require_tables(tables)
        prefix = cls._prefix()
        views = {}
        for name, table in tables.items():
            frame = session.createDataFrame(table)
            frame.createOrReplaceTempView(prefix + name)
            views[name] = prefix + name
        found = {name: ibis.Schema.from_pyarrow(table.schema) for name, table in tables.items()}
        return cls(session, {**found, **(schemas or {})}, views)

    @classmethod
    def from_store(cls, store: ReadStore, session: SparkSession) -> SparkEventStore:
        """A copy of every table of ``store`` (a DuckDB or PostgreSQL event store)."""
        tables = {name: store.to_arrow(store.table(name)) for name in STORE_TABLES}
        schemas = {name: store.table(name).schema() for name in STORE_TABLES}
        return cls.from_arrow(tables, session, schemas)

    @classmethod
    def from_parquet(cls, folder: str | Path, session: SparkSession) -> SparkEventStore:
        """A store over ``folder/<table>.parquet`` (a file or a folder of part files) for
        each of :data:`STORE_TABLES`, as written by :func:`write_parquet` or by Spark."""
        paths = {name: Path(folder) / f"{name}.parquet" for name in STORE_TABLES}
        _require_tables(name for name, path in paths.items() if path.exists())
        prefix = cls._prefix()
        schemas, views = {}, {}
        for name, path in paths.items():
            schemas[name] = ibis.Schema.from_pyarrow(pads.dataset(path, format="parquet").schema)
            session.read.parquet(str(path)).createOrReplaceTempView(prefix + name)
            views[name] = prefix + name
        return cls(session, schemas, views)

    @property
    def dialect(self) -> str:
        """``"pyspark"``."""
        return "pyspark"

    @property
    def backend(self) -> Any:
        """The ibis PySpark backend."""
        return self._backend

    @property
    def session(self) -> SparkSession:
        """The Spark session holding the views."""
        return self._session

    def table(self, name: str) -> ibis.Table:
        """A table of the store, typed with the source's ibis schema."""
        if name not in self._views:
            raise ValueError(f"unknown table {name!r}; use one of {STORE_TABLES}")
        op = ops.DatabaseTable(name=self._views[name], schema=self._schemas[name],
                               source=self._backend, namespace=ops.Namespace())  # fmt: skip
        return op.to_expr()

    def to_arrow(self, expr: ibis.Expr) -> Any:
        """Execute an ibis expression on Spark: a table, a column's array or a scalar.

        Rows come back through ``DataFrame.toArrow`` and are typed by the expression's
        schema as the backend's ``to_pyarrow`` types them; that one goes through pandas,
        where a nullable ``int64`` becomes ``float64`` and loses digits past 2**53.
        """
        table = expr.as_table()
        self._backend._run_pre_execute_hooks(table)  # in-memory tables and Python UDFs
        frame = self._session.sql(self._backend.compile(table))
        return expr.__pyarrow_result__(frame.toArrow())

    def run_plan(self, key: str, build: Callable[[], ibis.Table]) -> pa.Table:
        """Execute ``build()``: Spark plans every query itself, so nothing is kept per
        ``key`` (see :meth:`EventStore.run_plan`)."""
        table: pa.Table = self.to_arrow(build())
        return table

    def close(self) -> None:
        """Drop this store's views (the session keeps running)."""
        for view in self._views.values():
            self._session.catalog.dropTempView(view)
        self._views.clear()


def write_parquet(store: ReadStore, folder: str | Path) -> Path:
    """Write every table of ``store`` to ``folder/<table>.parquet``; returns the folder."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    for name in STORE_TABLES:
        pq.write_table(store.to_arrow(store.table(name)), target / f"{name}.parquet")
    return target


def _require_tables(names: Iterable[str]) -> None:
    missing = sorted(set(STORE_TABLES) - set(names))
    if missing:
        raise ValueError(f"missing store tables: {', '.join(missing)}")
