"""Daily rollup of events into ``events_daily`` (called by the scheduled job)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, cast
from zoneinfo import ZoneInfo

import ibis
import ibis.expr.types as ir

if TYPE_CHECKING:  # the store imports this module's time helpers
    from shequ.analytics.store import EventStore

DEFAULT_TZ = "Asia/Shanghai"


def _timezone(zone: str, ts: datetime) -> datetime:  # type: ignore[empty-body]
    """Signature of ``timezone(zone, instant)``, spelled the same in DuckDB and PostgreSQL."""


_TIMEZONE_UDF = ibis.udf.scalar.builtin(name="timezone")(_timezone)


def local_time(zone: str, ts: ir.TimestampValue) -> ir.TimestampValue:
    """Wall-clock time in ``zone`` of the instants ``ts`` (an ibis expression)."""
    return cast(ir.TimestampValue, _TIMEZONE_UDF(zone, ts))


def local_day_bounds(first: date, last: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """UTC instants bounding the local days ``first``..``last`` (inclusive)."""
    start = datetime.combine(first, time(), zone).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(), zone).astimezone(UTC)
    return start, end


def local_date(moment: datetime | date, zone: ZoneInfo) -> date:
    """The local date of an aware instant in ``zone``; a date is returned unchanged."""
    if not isinstance(moment, datetime):
        return moment
    if moment.tzinfo is None:
        raise ValueError("until must be timezone-aware")
    return moment.astimezone(zone).date()


def days_between(first: date, last: date) -> Iterator[date]:
    """Every date from ``first`` to ``last`` inclusive."""
    return (first + timedelta(days=i) for i in range((last - first).days + 1))


def daily_expr(store: EventStore, day_from: date, day_to: date, tz: str) -> ibis.Table:
    """The ibis expression for ``events_daily`` rows of local days ``day_from..day_to``.

    ``customers`` counts distinct known customers, resolving anonymous visitors through
    ``identity_links``; ``channel`` is ``''`` for events without one.
    """
    events = store.table("events")
    start, end = local_day_bounds(day_from, day_to, ZoneInfo(tz))
    window = events.filter(events.ts >= start, events.ts < end)
    links = store.table("identity_links")
    links = links.select(link_anonymous_id=links.anonymous_id, link_customer_id=links.customer_id)
    joined = window.left_join(links, window.anonymous_id == links.link_anonymous_id)
    customer = ibis.coalesce(joined.customer_id, joined.link_customer_id)
    return joined.group_by(
        day=local_time(tz, joined.ts).date(),
        name=joined.name,
        channel=ibis.coalesce(joined.channel, ibis.literal("")),
    ).aggregate(events=joined.count(), customers=customer.nunique())


def rollup_daily(store: EventStore, day_from: date, day_to: date, tz: str = DEFAULT_TZ) -> int:
    """Recompute ``events_daily`` for local days ``day_from..day_to`` (inclusive).

    Idempotent: the days are deleted and re-inserted in one transaction. Returns the
    number of rollup rows written.
    """
    if day_to < day_from:
        raise ValueError(f"day_to {day_to} is before day_from {day_from}")
    expr = daily_expr(store, day_from, day_to, tz)
    select = ibis.to_sql(
        expr.select("day", "name", "channel", "events", "customers"), dialect=store.dialect
    )
    store.execute_atomic(
        [
            "DELETE FROM events_daily WHERE day BETWEEN "
            f"DATE '{day_from.isoformat()}' AND DATE '{day_to.isoformat()}'",
            f"INSERT INTO events_daily (day, name, channel, events, customers) {select}",
        ]
    )
    daily = store.table("events_daily")
    written = daily.filter(daily.day >= day_from, daily.day <= day_to).count()
    return int(store.to_arrow(written).as_py())
