"""The shape every analytics query takes: a typed query, validation rules, an ibis plan.

A query kind is a small :class:`QueryRunner` subclass (as in PostHog): a pydantic query
schema that forbids unknown fields, a tuple of :class:`Rule` objects with stable error
codes, ``build(store)`` returning a pure ibis expression (no backend-specific SQL, so the
same plan compiles to DuckDB and PostgreSQL) and ``run(store)`` returning a pydantic result.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import ibis
import pyarrow as pa
from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from shequ.analytics.persons import with_person_id
from shequ.analytics.rollup import local_day_bounds
from shequ.core.errors import ValidationFailed

if TYPE_CHECKING:
    from shequ.analytics.store import EventStore

MAX_RANGE_DAYS = 366


class AnalyticsQuery(BaseModel):
    """Base of query schemas: immutable, unknown fields rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DateRangeQuery(AnalyticsQuery):
    """A query over the local days ``date_from..date_to`` (inclusive) in ``tz``."""

    date_from: date
    date_to: date
    tz: str = "Asia/Shanghai"

    def bounds(self) -> tuple[datetime, datetime]:
        """The UTC instants ``[start, end)`` of the local date range."""
        return local_day_bounds(self.date_from, self.date_to, ZoneInfo(self.tz))


DeviceKind = Literal["ios", "android", "pc"]


class ScopedQuery(DateRangeQuery):
    """A date range plus the console's filters: channels, device kinds, a saved segment.

    ``channels``/``devices``: keep events of these channels / of devices of these kinds
    (``dim_devices``; events without a known device are dropped by a device filter).
    ``segment``: keep events of persons who are members of this saved segment
    (``segment_members``). ``None`` means no filter.
    """

    channels: list[str] | None = None
    devices: list[DeviceKind] | None = None
    segment: str | None = None


def scoped_events(store: EventStore, query: ScopedQuery,
                  start: datetime | None = None, end: datetime | None = None) -> ibis.Table:
    """The events in ``[start, end)`` (default: the query's local date range) that pass the
    query's filters, with ``person_id`` (see :func:`with_person_id`)."""
    first, last = query.bounds()
    events = store.table("events")
    events = events.filter(events.ts >= (start or first), events.ts < (end or last))
    if query.channels is not None:
        events = events.filter(events.channel.isin(query.channels))
    if query.devices is not None:
        devices = store.table("dim_devices")
        kinds = devices.filter(devices.kind.isin(query.devices))
        events = events.filter(events.device_id.isin(kinds.device_id))
    events = with_person_id(store, events)
    if query.segment is not None:
        members = store.table("segment_members")
        members = members.filter(members.segment == query.segment)
        events = events.filter(events.person_id.isin(members.customer_id))
    return events


Q = TypeVar("Q", bound=AnalyticsQuery)
R = TypeVar("R", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Rule(Generic[Q]):
    """One validation rule: ``check`` returns the failure detail, or None when it holds."""

    code: str
    attr: str
    check: Callable[[Q], str | None]

    def enforce(self, query: Q) -> None:
        """Raise :class:`ValidationFailed` with this rule's code if it is broken."""
        detail = self.check(query)
        if detail is not None:
            raise ValidationFailed(self.code, detail, self.attr)


def _range_in_order(query: DateRangeQuery) -> str | None:
    if query.date_to < query.date_from:
        return f"date_to {query.date_to} is before date_from {query.date_from}"
    return None


def _range_not_too_long(query: DateRangeQuery) -> str | None:
    days = (query.date_to - query.date_from).days + 1
    return f"at most {MAX_RANGE_DAYS} days, got {days}" if days > MAX_RANGE_DAYS else None


def _known_segment_name(query: ScopedQuery) -> str | None:
    if query.segment is not None and not query.segment.strip():
        return "a segment name cannot be blank"
    return None


def _known_timezone(query: DateRangeQuery) -> str | None:
    try:
        ZoneInfo(query.tz)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {query.tz!r}"
    return None


DATE_RANGE_RULES: tuple[Rule[Any], ...] = (
    Rule("unknown_timezone", "tz", _known_timezone),
    Rule("bad_date_range", "date_to", _range_in_order),
    Rule("date_range_too_long", "date_to", _range_not_too_long),
)
SCOPED_RULES: tuple[Rule[Any], ...] = (
    *DATE_RANGE_RULES,
    Rule("blank_segment", "segment", _known_segment_name),
)


class QueryRunner(ABC, Generic[Q, R]):
    """Validates a query on construction; ``build`` plans it, ``run`` answers it."""

    query_type: ClassVar[type[AnalyticsQuery]]
    rules: ClassVar[tuple[Rule[Any], ...]] = ()

    def __init__(self, query: Q) -> None:
        for rule in self.rules:
            rule.enforce(query)
        self.query = query

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Q:
        """The query from plain data; schema errors become ``invalid_query`` failures."""
        try:
            return cls.query_type.model_validate(data)  # type: ignore[return-value]
        except PydanticValidationError as exc:
            first = exc.errors()[0]
            attr = ".".join(str(part) for part in first["loc"]) or None
            raise ValidationFailed("invalid_query", first["msg"], attr) from exc

    @abstractmethod
    def build(self, store: EventStore) -> ibis.Table:
        """The ibis expression whose rows :meth:`run` turns into the result."""

    def execute(self, store: EventStore) -> pa.Table:
        """The rows of :meth:`build` (the compiled plan is reused for an equal query, see
        :meth:`EventStore.run_plan`)."""
        key = f"{type(self).__module__}.{type(self).__qualname__}:{self.query.model_dump_json()}"
        return store.run_plan(key, lambda: self.build(store))

    @abstractmethod
    def run(self, store: EventStore) -> R:
        """Execute the query on ``store`` and return the typed result."""
