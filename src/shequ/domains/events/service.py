"""Event use cases over the event store (DuckDB file by default, PostgreSQL in production).

The store is opened once per process and kept on the wired services: the embedded DuckDB
file admits a single writing process, and the ingestion path must not reopen it per call.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from shequ.analytics.events import BatchTooLarge, MalformedBatch, validate_batch
from shequ.analytics.funnels import FunnelQuery, FunnelResult, FunnelRunner
from shequ.analytics.metric_values import MetricValue
from shequ.analytics.runner import QueryRunner
from shequ.analytics.store import EventStore, EventStoreLocked, iter_event_file
from shequ.core.errors import PayloadTooLarge, Unavailable, ValidationFailed
from shequ.core.permissions import Principal
from shequ.core.web import Services

MAX_BODY_BYTES = 16 * 1024 * 1024
R = TypeVar("R", bound=BaseModel)
_open_lock = threading.Lock()


def event_store(services: Services) -> EventStore:
    """The process's event store, opened on first use."""
    store: EventStore | None = services.extras.get("events")
    if store is not None:
        return store
    with _open_lock:
        store = services.extras.get("events")
        if store is None:
            try:
                store = EventStore.open(services.settings.resolved_events_url)
            except EventStoreLocked as exc:
                raise Unavailable("event_store_locked", str(exc)) from exc
            services.extras["events"] = store
    return store


def _inflate(body: bytes, encoding: str | None) -> bytes:
    if not encoding or encoding.lower() == "identity":
        return body
    if encoding.lower() != "gzip":
        raise ValidationFailed("unsupported_encoding", "send gzip or no Content-Encoding",
                               "Content-Encoding")
    try:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        raw = inflater.decompress(body, MAX_BODY_BYTES + 1)
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise ValidationFailed("bad_gzip", f"body is not valid gzip: {exc}", "body") from exc
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge("body_too_large", "a batch may hold at most 16 MiB of JSON")
    return raw


def ingest(services: Services, body: bytes, encoding: str | None = None) -> dict[str, Any]:
    """Validate and store one batch; answer ``{accepted, duplicates, rejected}``.

    Valid events are kept even when others in the batch are rejected; a retried batch is
    answered with duplicates instead of being counted twice.
    """
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge("body_too_large", "a batch may hold at most 16 MiB of JSON")
    raw = _inflate(body, encoding)
    try:
        batch = validate_batch(raw)
    except BatchTooLarge as exc:
        raise PayloadTooLarge("batch_too_large", str(exc), "events") from exc
    except MalformedBatch as exc:
        raise ValidationFailed("malformed_batch", str(exc), "body") from exc
    result = event_store(services).ingest(batch)
    return {
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "rejected": [{"index": r.index, "field": r.field, "reason": r.reason}
                     for r in batch.rejected],
    }


def import_file(services: Services, path: Path, *, chunk_rows: int = 100_000,
                on_progress: Callable[[int, int, int], None] | None = None) -> dict[str, Any]:
    """Load a CSV/JSONL/Parquet file of events; bad rows are reported, good rows kept."""
    if not path.is_file():
        raise ValidationFailed("file_not_found", f"no file {str(path)!r}", "file")
    store = event_store(services)
    accepted = duplicates = rows = 0
    rejected: list[dict[str, Any]] = []
    for table, bad in iter_event_file(path, chunk_rows):
        result = store.ingest_arrow(table)
        accepted += result.accepted
        duplicates += result.duplicates
        rows += table.num_rows + len(bad)
        rejected.extend({"line": r.index, "field": r.field, "reason": r.reason} for r in bad)
        if on_progress is not None:
            on_progress(rows, accepted, len(rejected))
    return {"rows": rows, "accepted": accepted, "duplicates": duplicates,
            "rejected_count": len(rejected), "rejected": rejected[:1000]}


def import_taobao(services: Services, path: Path,
                  on_progress: Callable[[int, int, int], None] | None = None) -> dict[str, Any]:
    """Load the public Taobao UserBehavior log (mapping in docs/events.md)."""
    from shequ.analytics.taobao import taobao_to_arrow

    if not path.is_file():
        raise ValidationFailed("file_not_found", f"no file {str(path)!r}", "file")
    try:
        table = taobao_to_arrow(path)
    except (ValueError, OSError) as exc:
        raise ValidationFailed("bad_taobao_file", f"not a Taobao UserBehavior CSV: {exc}",
                               "file") from exc
    total = table.num_rows

    def report(done: int) -> None:
        if on_progress is not None:
            on_progress(done, done, 0)

    result = event_store(services).ingest_arrow(table, on_progress=report)
    return {"rows": total, "accepted": result.accepted, "duplicates": result.duplicates,
            "rejected_count": 0, "rejected": []}


def link_visitor(services: Services, anonymous_id: str, customer_external_id: str) -> None:
    """Tell the event store that ``anonymous_id`` is this customer, for analytics."""
    event_store(services).link_identity(anonymous_id, customer_external_id)


def analyse(services: Services, principal: Principal, runner: QueryRunner[Any, R]) -> R:
    """Run an analytics query runner on the event store (semantics in docs/analytics.md).

    Events carry no brand, so behaviour analytics are platform-wide: partners are refused.
    """
    principal.refuse_if_partner("platform_wide_analytics", "behaviour analytics cover every "
                                "brand's visitors; partners cannot run them")
    return runner.run(event_store(services))


def run_funnel(services: Services, principal: Principal, query: FunnelQuery) -> FunnelResult:
    """A funnel over the event store; partners are refused (see :func:`analyse`)."""
    return analyse(services, principal, FunnelRunner(query))


def sync_dimensions(services: Services) -> dict[str, int]:
    """Copy device kinds and product brands from the entity store into the event store's
    ``dim_devices`` / ``dim_products`` (whole-table replace), for breakdowns and filters."""
    import pyarrow as pa

    from shequ.domains.catalog import service as catalog
    from shequ.domains.customers import service as customers

    with services.sessions() as session:
        devices = customers.device_dimension(session)
        products = catalog.product_dimension(session)
    store = event_store(services)
    store.replace_rows("dim_devices", pa.table({
        "device_id": pa.array([d for d, _ in devices], pa.string()),
        "kind": pa.array([k for _, k in devices], pa.string()),
    }))  # fmt: skip
    store.replace_rows("dim_products", pa.table({
        "sku": pa.array([p[0] for p in products], pa.string()),
        "brand_id": pa.array([p[1] for p in products], pa.string()),
        "category_id": pa.array([p[2] for p in products], pa.string()),
    }))  # fmt: skip
    return {"devices": len(devices), "products": len(products)}


def events_per_day(services: Services, days: int) -> list[tuple[date, int]]:
    """Events per local day (deployment time zone) over the last ``days`` days."""
    rows: list[tuple[date, int]] = event_store(services).events_per_day(
        days, tz=services.settings.timezone, until=services.clock.now())
    return rows


def event_count(services: Services, since: datetime | None = None) -> int:
    """How many events the store holds (since ``since`` when given)."""
    total: int = event_store(services).count(since=since)
    return total


def rollup(services: Services, day_from: date, day_to: date) -> int:
    """Recompute the daily rollup for local days ``day_from``..``day_to``; rows written."""
    from shequ.analytics.rollup import rollup_daily

    written: int = rollup_daily(event_store(services), day_from, day_to,
                                services.settings.timezone)
    return written


METRICS_CHUNK_DAYS = 14


def refresh_metrics(services: Services, day_from: date, day_to: date,
                    on_progress: Callable[[int, int], None] | None = None) -> int:
    """Recompute the 18 core metrics (hourly and daily) of local days ``day_from..day_to``
    in the deployment time zone and store them; rows written (docs/metrics.md).

    Long ranges go in chunks of :data:`METRICS_CHUNK_DAYS` days (each its own idempotent
    replace): one query over 90 days of a 10-million-event store peaks at several GB.
    ``on_progress`` gets (days done, days in all).
    """
    from shequ.analytics.metrics import refresh

    if day_to < day_from:
        raise ValidationFailed("bad_date_range", f"{day_to} is before {day_from}", "to")
    total = (day_to - day_from).days + 1
    written = 0
    first = day_from
    while first <= day_to:
        last = min(first + timedelta(days=METRICS_CHUNK_DAYS - 1), day_to)
        written += refresh(event_store(services), first, last, services.settings.timezone,
                           services.clock.now())
        if on_progress is not None:
            on_progress((last - day_from).days + 1, total)
        first = last + timedelta(days=1)
    return written


def stored_metrics(services: Services, principal: Principal, grain: str,
                   day_from: date, day_to: date,
                   metrics: list[str] | None = None) -> list[MetricValue]:
    """Stored metric values with buckets in the local days ``day_from..day_to``.

    The metrics are platform-wide (events carry no brand): partners are refused.
    """
    from shequ.analytics.metric_values import GRAINS, read_values
    from shequ.analytics.metrics import METRICS
    from shequ.analytics.rollup import local_day_bounds

    principal.refuse_if_partner("platform_wide_analytics",
                                "metrics cover every brand's visitors; partners cannot read them")
    if grain not in GRAINS:
        raise ValidationFailed("unknown_grain", f"grain must be one of {GRAINS}", "grain")
    if day_to < day_from:
        raise ValidationFailed("bad_date_range", "date_to is before date_from", "date_to")
    if (day_to - day_from).days > 366:
        raise ValidationFailed("date_range_too_long", "at most 366 days", "date_to")
    unknown = [name for name in metrics or [] if name not in METRICS]
    if unknown:
        raise ValidationFailed("unknown_metric", f"unknown metric {unknown[0]!r}", "metric")
    start, end = local_day_bounds(day_from, day_to, services.settings.zone)
    return read_values(event_store(services), metrics, grain, start, end)
