"""Stored metric values: one row per (metric, grain, bucket) in the event store.

The metrics job computes the 18 core metrics (``shequ.analytics.metrics``) per hour and per
day and writes them here with :func:`write_values`; the console's metric board and the
alert evaluation read them back with :func:`read_values`, so neither recomputes metrics
from raw events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import pyarrow as pa

if TYPE_CHECKING:
    from shequ.analytics.store import EventStore

Grain = Literal["hour", "day"]
GRAINS: tuple[Grain, ...] = ("hour", "day")

_SCHEMA = pa.schema([
    pa.field("metric", pa.string(), nullable=False),
    pa.field("grain", pa.string(), nullable=False),
    pa.field("bucket_start", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("value", pa.float64()),
    pa.field("computed_at", pa.timestamp("us", tz="UTC"), nullable=False),
])  # fmt: skip


@dataclass(frozen=True, slots=True)
class MetricValue:
    """A metric's value over one bucket (``None``: undefined, e.g. a rate over zero)."""

    metric: str
    grain: Grain
    bucket_start: datetime
    value: float | None


def _sql_instant(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("metric buckets are timezone-aware instants")
    return f"TIMESTAMPTZ '{moment.astimezone(UTC).isoformat()}'"


def write_values(store: EventStore, grain: Grain, start: datetime, end: datetime,
                 values: Sequence[MetricValue], computed_at: datetime) -> int:
    """Replace the stored ``grain`` values with buckets in ``[start, end)`` by ``values``.

    One transaction: readers see the old values or the new ones, never a mix, and a rerun
    over the same range is idempotent. Returns the number of rows written.
    """
    if grain not in GRAINS:
        raise ValueError(f"grain must be one of {GRAINS}, got {grain!r}")
    outside = [v for v in values if v.grain != grain or not start <= v.bucket_start < end]
    if outside:
        raise ValueError(f"value outside the {grain} range being replaced: {outside[0]}")
    rows = pa.Table.from_pylist(
        [{"metric": v.metric, "grain": grain, "bucket_start": v.bucket_start,
          "value": v.value, "computed_at": computed_at} for v in values],
        schema=_SCHEMA,
    )  # fmt: skip
    where = (f"grain = '{grain}' AND bucket_start >= {_sql_instant(start)} "
             f"AND bucket_start < {_sql_instant(end)}")  # fmt: skip
    store.replace_rows("metric_values", rows, where)
    return int(rows.num_rows)


def read_values(store: EventStore, metrics: Sequence[str] | None, grain: Grain,
                start: datetime, end: datetime) -> list[MetricValue]:
    """Stored values of ``metrics`` (all when None) with buckets in ``[start, end)``,
    ordered by metric then bucket."""
    table = store.table("metric_values")
    table = table.filter(table.grain == grain, table.bucket_start >= start,
                         table.bucket_start < end)  # fmt: skip
    if metrics is not None:
        table = table.filter(table.metric.isin(list(metrics)))
    table = table.order_by(["metric", "bucket_start"])
    rows = store.to_arrow(table.select("metric", "bucket_start", "value")).to_pylist()
    return [MetricValue(row["metric"], grain, row["bucket_start"], row["value"]) for row in rows]
