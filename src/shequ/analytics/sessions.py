"""Sessions computed from events: a person's events split at 30 minutes of inactivity.

The client's ``session_id`` is not trusted: apps and mini programs reset it on their own
schedules (a cold start, a tab, a WebView), a visitor who logs in mid-visit carries two of
them, and some sources send none. Splitting the person's own timeline at a fixed
inactivity gap gives one definition across every channel (the Taobao import uses the same).
"""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import ibis
from pydantic import BaseModel

from shequ.analytics.persons import with_person_id
from shequ.analytics.runner import DATE_RANGE_RULES, DateRangeQuery, QueryRunner

if TYPE_CHECKING:
    from shequ.analytics.store import EventStore

INACTIVITY = timedelta(minutes=30)


class SessionsQuery(DateRangeQuery):
    """Sessions of the events in the local days ``date_from..date_to`` in ``tz``."""


class Session(BaseModel):
    """One session: a person's events with no gap of more than 30 minutes."""

    person_id: str
    start: datetime
    end: datetime
    duration_seconds: float
    events: int


class SessionsResult(BaseModel):
    """Sessions of the range, with their median duration and bounce rate."""

    sessions: int
    median_duration_seconds: float | None
    bounce_rate: float
    items: list[Session]


def numbered_events(store: EventStore, query: DateRangeQuery) -> ibis.Table:
    """The range's events with ``person_id`` and ``session_no`` (1, 2, … per person).

    A new session starts at a person's first event and after a gap of **more than** 30
    minutes (exactly 30 minutes continues the session). Ties in ``ts`` are ordered by
    ``event_id`` so the numbering is deterministic.
    """
    start, end = query.bounds()
    events = store.table("events")
    events = with_person_id(store, events.filter(events.ts >= start, events.ts < end))
    order = [events.ts, events.event_id]
    previous = events.ts.lag().over(group_by=events.person_id, order_by=order)
    is_new = previous.isnull() | (previous + ibis.interval(seconds=1800) < events.ts)
    flagged = events.mutate(is_new=ibis.ifelse(is_new, 1, 0))
    running = ibis.cumulative_window(
        group_by=flagged.person_id, order_by=[flagged.ts, flagged.event_id]
    )
    return flagged.mutate(session_no=flagged.is_new.sum().over(running))


class SessionsRunner(QueryRunner[SessionsQuery, SessionsResult]):
    """Sessions, their durations and event counts, median duration, bounce rate."""

    query_type = SessionsQuery
    rules = DATE_RANGE_RULES

    def build(self, store: EventStore) -> ibis.Table:
        """One row per session: ``person_id, session_no, start, end, events``."""
        numbered = numbered_events(store, self.query)
        return numbered.group_by(numbered.person_id, numbered.session_no).aggregate(
            start=numbered.ts.min(), end=numbered.ts.max(), events=numbered.count()
        )

    def run(self, store: EventStore) -> SessionsResult:
        """Execute and summarise; sessions are listed by start, then person."""
        expr = self.build(store).order_by(["start", "person_id"])
        return summarise(store.to_arrow(expr).to_pylist())


def summarise(rows: list[dict[str, Any]]) -> SessionsResult:
    """The result from session rows (``person_id, start, end, events``)."""
    items = [
        Session(
            person_id=row["person_id"],
            start=row["start"],
            end=row["end"],
            duration_seconds=(row["end"] - row["start"]).total_seconds(),
            events=int(row["events"]),
        )
        for row in rows
    ]
    durations = [item.duration_seconds for item in items]
    bounces = sum(1 for item in items if item.events == 1)
    return SessionsResult(
        sessions=len(items),
        median_duration_seconds=statistics.median(durations) if durations else None,
        bounce_rate=bounces / len(items) if items else 0.0,
        items=items,
    )
