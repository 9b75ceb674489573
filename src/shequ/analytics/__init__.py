"""Behavioural events: schema and validation, the event store, rollups and importers.

This package imports nothing from ``shequ.domains`` or ``shequ.entrypoints``; URLs and
paths are parameters. See docs/events.md.
"""

from shequ.analytics.events import (
    EVENT_SCHEMA,
    MAX_BATCH,
    BatchTooLarge,
    EventBatchError,
    EventFileError,
    MalformedBatch,
    Rejection,
    ValidatedBatch,
    iter_event_file,
    validate_batch,
)
from shequ.analytics.rollup import rollup_daily
from shequ.analytics.store import EventStore, EventStoreLocked, IngestResult
from shequ.analytics.taobao import default_taobao_path, taobao_to_arrow

__all__ = [
    "EVENT_SCHEMA",
    "MAX_BATCH",
    "BatchTooLarge",
    "EventBatchError",
    "EventFileError",
    "EventStore",
    "EventStoreLocked",
    "IngestResult",
    "MalformedBatch",
    "Rejection",
    "ValidatedBatch",
    "default_taobao_path",
    "iter_event_file",
    "rollup_daily",
    "taobao_to_arrow",
    "validate_batch",
]
