"""The event schema and its fast validator (msgspec in, Arrow out).

A clean batch costs one msgspec decode into :class:`Event` structs plus one pass per column
to build Arrow arrays; only a batch that fails the fast path is re-validated event by event
so that each bad event gets exactly one :class:`Rejection` naming its first bad field.
"""

from __future__ import annotations

import contextlib
import csv
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from pathlib import Path
from typing import Annotated, Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

MAX_BATCH = 5_000
PROPERTIES_MAX_BYTES = 8_192
MAX_DWELL_MS = 86_400_000
# The post a post_view / like / share / comment event is about, from its JSON properties
# (an ibis ``re_extract`` pattern, group 1).
POST_ID_PATTERN = r'"post_id"\s*:\s*"((?:[^"\\]|\\.)*)"'

_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
_Id64 = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
_Id128 = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
_Url = Annotated[str, msgspec.Meta(max_length=2048)]
_Channel = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
_Unit = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
_Dwell = Annotated[int, msgspec.Meta(ge=0, le=MAX_DWELL_MS)]
_Aware = Annotated[datetime, msgspec.Meta(tz=True)]


class EventFields(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """The per-field constraints of an event; cross-field rules live in :class:`Event`.

    ``gc=False``: the fields hold no containers, so no cycles, and 1,000 untracked structs
    per batch spare the cyclic GC a collection or two on the hot path.
    """

    event_id: _Id64
    name: _Name
    timestamp: _Aware
    customer_id: _Id128 | None = None
    anonymous_id: _Id128 | None = None
    session_id: _Id128 | None = None
    device_id: _Id128 | None = None
    page: _Url | None = None
    referrer: _Url | None = None
    channel: _Channel | None = None
    # Raw keeps the client's bytes: stored as JSON text without a decode/encode round trip.
    properties: msgspec.Raw = msgspec.Raw()
    x: _Unit | None = None
    y: _Unit | None = None
    dwell_ms: _Dwell | None = None


class Event(EventFields):
    """One incoming event as posted by a client (see docs/events.md)."""

    def __post_init__(self) -> None:
        if self.customer_id is None and self.anonymous_id is None:
            raise ValueError("customer_id: customer_id or anonymous_id is required")
        if len(self.properties):
            raw = bytes(self.properties)
            if raw == b"null":
                self.properties = msgspec.Raw()
            elif raw[:1] != b"{" or len(raw) > PROPERTIES_MAX_BYTES:
                raise ValueError(f"properties: {_REASONS['properties']}")


_STRING_FIELDS = (
    "event_id", "name", "customer_id", "anonymous_id", "session_id",
    "device_id", "page", "referrer", "channel",
)  # fmt: skip

EVENT_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        *(pa.field(f, pa.string()) for f in _STRING_FIELDS[2:]),
        pa.field("properties", pa.string()),
        pa.field("x", pa.float64()),
        pa.field("y", pa.float64()),
        pa.field("dwell_ms", pa.int64()),
    ]
)
"""Column layout of a validated batch: the ``events`` table minus ``received_at``."""

FIELDS = tuple(Event.__struct_fields__)

_REASONS = {
    "event_id": "must be a string of 1-64 characters",
    "name": "must be 1-64 characters matching [a-z][a-z0-9_]*",
    "timestamp": "must be ISO 8601 with a UTC offset, e.g. 2026-11-20T08:00:00+08:00",
    "customer_id": "must be a string of 1-128 characters",
    "anonymous_id": "must be a string of 1-128 characters",
    "session_id": "must be a string of 1-128 characters",
    "device_id": "must be a string of 1-128 characters",
    "page": "must be a string of at most 2048 characters",
    "referrer": "must be a string of at most 2048 characters",
    "channel": "must be a string of 1-64 characters",
    "properties": f"must be a JSON object of at most {PROPERTIES_MAX_BYTES} bytes",
    "x": "must be a number between 0 and 1",
    "y": "must be a number between 0 and 1",
    "dwell_ms": f"must be an integer between 0 and {MAX_DWELL_MS} (24 h)",
}


class EventBatchError(ValueError):
    """A request body that cannot be treated as a batch of events at all."""


class BatchTooLarge(EventBatchError):
    """More than :data:`MAX_BATCH` events in one request."""


class MalformedBatch(EventBatchError):
    """The body is not valid JSON or not a JSON array."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """One rejected event: its position, the first bad field and a human reason."""

    index: int
    field: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape used by the API: ``{"index", "field", "reason"}``."""
        return {"index": self.index, "field": self.field, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class ValidatedBatch:
    """Valid, in-batch-deduplicated events as an Arrow table (:data:`EVENT_SCHEMA`)."""

    table: pa.Table
    rejected: list[Rejection]
    duplicates: int
    received: int


# The fast path skips __post_init__ and checks the cross-field rules on whole columns.
_BATCH_DECODER = msgspec.json.Decoder(list[EventFields])
_RAW_DECODER = msgspec.json.Decoder(list[msgspec.Raw])
_EVENT_DECODER = msgspec.json.Decoder(Event)
_ENCODER = msgspec.json.Encoder()
_AT_FIELD = re.compile(r"at `\$(?:\[\d+\])?\.(\w+)")
_UNKNOWN = re.compile(r"unknown field `(.*)`")
_MISSING = re.compile(r"missing required field `(\w+)`")


def validate_batch(raw: bytes) -> ValidatedBatch:
    """Validate a request body: a bare JSON array of at most :data:`MAX_BATCH` events.

    Raises :class:`MalformedBatch` if the body is not a JSON array and
    :class:`BatchTooLarge` if it holds more than :data:`MAX_BATCH` items.
    """
    try:
        events = _BATCH_DECODER.decode(raw)
    except msgspec.ValidationError:  # a subclass of DecodeError: must come first
        return _validate_slow(raw)
    except msgspec.DecodeError as exc:
        raise MalformedBatch(f"body is not valid JSON: {exc}") from None
    _check_size(len(events))
    table = events_to_arrow(events)
    if not _columns_ok(table):
        return _validate_slow(raw)
    table, duplicates = keep_first(table)
    return ValidatedBatch(table, [], duplicates, len(events))


def validate_items(
    items: Sequence[bytes], labels: Sequence[int]
) -> tuple[pa.Table, list[Rejection]]:
    """Validate JSON-encoded events; rejections carry ``labels[i]`` (e.g. a line number).

    The table is not deduplicated (``EventStore.ingest_arrow`` does that and counts).
    """
    try:
        events = _BATCH_DECODER.decode(b"[" + b",".join(items) + b"]")
    except msgspec.DecodeError:
        events = []
    if len(events) == len(items):  # an item like `{..},{..}` would shift every label
        table = events_to_arrow(events)
        if _columns_ok(table):
            return table, []
    good, rejected = _validate_each(items, labels)
    return events_to_arrow(good), rejected


def _check_size(n: int) -> None:
    if n > MAX_BATCH:
        raise BatchTooLarge(f"batch has {n} events; at most {MAX_BATCH} are accepted per request")


def _validate_slow(raw: bytes) -> ValidatedBatch:
    try:
        items = _RAW_DECODER.decode(raw)
    except msgspec.ValidationError:
        raise MalformedBatch("body must be a JSON array of event objects") from None
    _check_size(len(items))
    good, rejected = _validate_each([bytes(i) for i in items], range(len(items)))
    table, duplicates = keep_first(events_to_arrow(good))
    return ValidatedBatch(table, rejected, duplicates, len(items))


def _validate_each(
    items: Sequence[bytes], labels: Sequence[int]
) -> tuple[list[Event], list[Rejection]]:
    good: list[Event] = []
    rejected: list[Rejection] = []
    for item, label in zip(items, labels, strict=True):
        try:
            good.append(_EVENT_DECODER.decode(item))
        except msgspec.ValidationError as exc:  # a subclass of DecodeError: must come first
            rejected.append(Rejection(label, *_explain(str(exc))))
        except msgspec.DecodeError as exc:
            rejected.append(Rejection(label, "event", f"is not valid JSON: {exc}"))
    return good, rejected


def _explain(message: str) -> tuple[str, str]:
    """Turn a msgspec error message into ``(field, human reason)``."""
    if found := _AT_FIELD.search(message):
        return found.group(1), _REASONS.get(found.group(1), message)
    if found := _UNKNOWN.search(message):
        return found.group(1), "unknown field"
    if found := _MISSING.search(message):
        return found.group(1), "is required"
    field, sep, reason = message.partition(": ")
    if sep and field in _REASONS:
        return field, reason
    if message.startswith("Expected `object`"):
        return "event", "must be a JSON object"
    return "event", message


def _columns_ok(table: pa.Table) -> bool:
    """The rules of :meth:`Event.__post_init__`, checked on whole columns."""
    if table.num_rows == 0:
        return True
    no_identity = pc.and_(pc.is_null(table["customer_id"]), pc.is_null(table["anonymous_id"]))
    if pc.any(no_identity).as_py():
        return False
    props = table["properties"]
    bad = pc.or_(
        pc.invert(pc.starts_with(props, "{")),
        pc.greater(pc.binary_length(props), PROPERTIES_MAX_BYTES),
    )
    return not pc.any(bad).as_py()


def events_to_arrow(events: Sequence[EventFields]) -> pa.Table:
    """Build the columnar form (:data:`EVENT_SCHEMA`) of decoded events, one pass per column."""
    columns: list[pa.Array] = []
    for field in EVENT_SCHEMA:
        source = "timestamp" if field.name == "ts" else field.name
        values = list(map(attrgetter(source), events))
        if source == "properties":
            columns.append(_properties_column(values))
        else:
            columns.append(pa.array(values, field.type))
    return pa.Table.from_arrays(columns, schema=EVENT_SCHEMA)


def _properties_column(values: list[msgspec.Raw]) -> pa.Array:
    text = pa.array([bytes(v) or None for v in values], pa.binary()).cast(pa.string())
    return pc.if_else(pc.equal(text, "null"), pa.scalar(None, pa.string()), text)


def keep_first(table: pa.Table, column: str = "event_id") -> tuple[pa.Table, int]:
    """Drop rows whose ``column`` value appeared earlier in ``table``; count them."""
    ids = table.column(column).to_pylist()
    if len(set(ids)) == len(ids):
        return table, 0
    kept = table.filter(_first_occurrences(ids))
    return kept, table.num_rows - kept.num_rows


def identity_links(table: pa.Table) -> pa.Table:
    """``(anonymous_id, customer_id)`` pairs from events carrying both; first pair wins."""
    both = pc.and_(pc.is_valid(table["anonymous_id"]), pc.is_valid(table["customer_id"]))
    pairs = table.filter(both).select(["anonymous_id", "customer_id"])
    if pairs.num_rows == 0:
        return pairs
    return pairs.filter(_first_occurrences(pairs.column("anonymous_id").to_pylist()))


def _first_occurrences(values: list[str]) -> pa.Array:
    seen: set[str] = set()
    mask: list[bool] = []
    for value in values:
        mask.append(value not in seen)
        seen.add(value)
    return pa.array(mask, pa.bool_())


class EventFileError(EventBatchError):
    """An import file that cannot be read as events (format or columns)."""


_NUMERIC: dict[str, type[int] | type[float]] = {"x": float, "y": float, "dwell_ms": int}


def iter_event_file(
    path: str | Path, chunk_rows: int = 50_000
) -> Iterator[tuple[pa.Table, list[Rejection]]]:
    """Read a ``.csv``, ``.jsonl``/``.ndjson`` or ``.parquet`` file of events in chunks.

    Yields ``(valid rows as EVENT_SCHEMA table, rejections)`` per chunk of at most
    ``chunk_rows`` input rows. A rejection's ``index`` is the 1-based line number in the
    file (CSV: the header is line 1) or, for Parquet, the 1-based row number.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        chunks = _jsonl_chunks(path, chunk_rows)
    elif suffix == ".csv":
        chunks = _csv_chunks(path, chunk_rows)
    elif suffix == ".parquet":
        chunks = _parquet_chunks(path, chunk_rows)
    else:
        raise EventFileError(f"{path}: unsupported file type {suffix!r} (csv, jsonl, parquet)")
    for items, labels in chunks:
        yield validate_items(items, labels)


def _jsonl_chunks(path: Path, chunk_rows: int) -> Iterator[tuple[list[bytes], list[int]]]:
    items: list[bytes] = []
    labels: list[int] = []
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                items.append(line.strip())
                labels.append(number)
            if len(items) == chunk_rows:
                yield items, labels
                items, labels = [], []
    if items:
        yield items, labels


def _check_columns(path: Path, columns: Sequence[str]) -> None:
    unknown = [c for c in columns if c not in FIELDS]
    if unknown:
        raise EventFileError(f"{path}: unknown column(s) {', '.join(unknown)}")


def _csv_chunks(path: Path, chunk_rows: int) -> Iterator[tuple[list[bytes], list[int]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        _check_columns(path, reader.fieldnames or [])
        items: list[bytes] = []
        labels: list[int] = []
        line = reader.line_num
        for row in reader:
            labels.append(line + 1)
            line = reader.line_num
            items.append(_ENCODER.encode(_typed(row)))
            if len(items) == chunk_rows:
                yield items, labels
                items, labels = [], []
    if items:
        yield items, labels


def _typed(row: dict[str, Any]) -> dict[str, Any]:
    """CSV/Parquet cells as JSON values; an unconvertible cell stays and fails validation."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value is None or value == "":
            continue
        if isinstance(value, str) and key in _NUMERIC:
            with contextlib.suppress(ValueError):
                value = _NUMERIC[key](value)
        elif isinstance(value, str) and key == "properties":
            with contextlib.suppress(msgspec.DecodeError):
                value = msgspec.json.decode(value)
        out[key] = value
    return out


def _parquet_chunks(path: Path, chunk_rows: int) -> Iterator[tuple[list[bytes], list[int]]]:
    parquet = pq.ParquetFile(path)
    _check_columns(path, parquet.schema_arrow.names)
    row = 0
    for batch in parquet.iter_batches(batch_size=chunk_rows):
        rows = batch.to_pylist()
        yield [_ENCODER.encode(_typed(r)) for r in rows], list(range(row + 1, row + len(rows) + 1))
        row += len(rows)
