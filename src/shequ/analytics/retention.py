"""Retention: of the people first seen in a period, how many came back in each later period.

Semantics (see docs/analytics.md): a person's **cohort** is the local calendar period (day,
or week from Monday, in ``tz``) of their first ``start_event`` in the date range; they are
retained in period ``k`` (k ≥ 1) when they did ``return_event`` in the ``k``-th calendar
period after it, no later than ``date_to``. Period 0 is the cohort's size.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Literal, cast

import ibis
import ibis.expr.types as ir
from pydantic import BaseModel, model_validator

from shequ.analytics.rollup import local_time
from shequ.analytics.runner import SCOPED_RULES, QueryRunner, Rule, ScopedQuery, scoped_events

if TYPE_CHECKING:
    from shequ.analytics.store import EventStore

RetentionPeriod = Literal["day", "week"]
PERIOD_DAYS: dict[str, int] = {"day": 1, "week": 7}
DEFAULT_PERIODS: dict[str, int] = {"day": 31, "week": 8}
MAX_PERIODS = 90
HEADLINE_DAYS = (1, 7, 30)


class RetentionQuery(ScopedQuery):
    """Cohorts by first ``start_event``, returns by ``return_event`` (None = any event).

    ``periods`` defaults to 31 for days and 8 for weeks.
    """

    start_event: str | None = None
    return_event: str | None = None
    period: RetentionPeriod = "day"
    periods: int = DEFAULT_PERIODS["day"]

    @model_validator(mode="before")
    @classmethod
    def _default_periods(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("periods") is None:
            period = data.get("period", "day")
            return {**data, "periods": DEFAULT_PERIODS.get(period, DEFAULT_PERIODS["day"])}
        return data

    def period_days(self) -> int:
        """Days in one period: 1 or 7."""
        return PERIOD_DAYS[self.period]

    def period_start(self, day: date) -> date:
        """The first day of the period holding the local date ``day`` (weeks: its Monday)."""
        return day - timedelta(days=day.weekday()) if self.period == "week" else day


class RetentionCohort(BaseModel):
    """One cohort: its first day, its size, and who was retained in each complete period."""

    cohort_start: date
    size: int
    retained: list[int]
    rates: list[float]


class RetentionResult(BaseModel):
    """The cohorts table (the retention triangle) and, for days, the d1/d7/d30 rates."""

    period: RetentionPeriod
    periods: int
    cohorts: list[RetentionCohort]
    d1: float | None
    d7: float | None
    d30: float | None


def _periods_in_range(query: RetentionQuery) -> str | None:
    if not 1 <= query.periods <= MAX_PERIODS:
        return f"periods must be 1..{MAX_PERIODS}, got {query.periods}"
    return None


def _start_not_blank(query: RetentionQuery) -> str | None:
    blank = query.start_event is not None and not query.start_event.strip()
    return "an event name cannot be blank" if blank else None


def _return_not_blank(query: RetentionQuery) -> str | None:
    blank = query.return_event is not None and not query.return_event.strip()
    return "an event name cannot be blank" if blank else None


RETENTION_RULES: tuple[Rule[Any], ...] = (
    *SCOPED_RULES,
    Rule("blank_event_name", "start_event", _start_not_blank),
    Rule("blank_event_name", "return_event", _return_not_blank),
    Rule("retention_periods_out_of_range", "periods", _periods_in_range),
)


def _period_of(query: RetentionQuery, ts: ir.TimestampValue) -> ir.DateValue:
    """The first local day of the period holding the instants ``ts``."""
    day = local_time(query.tz, ts).date()
    return cast(ir.DateValue, day.truncate("W") if query.period == "week" else day)


class RetentionRunner(QueryRunner[RetentionQuery, RetentionResult]):
    """Counts cohort sizes and returning persons per (cohort, period)."""

    query_type = RetentionQuery
    rules = RETENTION_RULES

    def build(self, store: EventStore) -> ibis.Table:
        """``cohort_start, period_start, persons``: the cohort's size where ``period_start =
        cohort_start``, else the persons of the cohort who returned in that period (periods
        ``1 … periods-1`` only; periods without returns have no row)."""
        query = self.query
        events = scoped_events(store, query)
        starts = events
        if query.start_event is not None:
            starts = events.filter(events.name == query.start_event)
        firsts = starts.group_by("person_id").aggregate(first_ts=starts.ts.min())
        cohorts = firsts.select(c_person=firsts.person_id,
                                cohort_start=_period_of(query, firsts.first_ts))  # fmt: skip
        returns = events
        if query.return_event is not None:
            returns = events.filter(events.name == query.return_event)
        returns = returns.select(r_person=returns.person_id,
                                 period_start=_period_of(query, returns.ts)).distinct()  # fmt: skip
        last = ibis.interval(days=query.period_days() * (query.periods - 1))
        joined = cohorts.join(returns, [
            cohorts.c_person == returns.r_person,
            returns.period_start > cohorts.cohort_start,
            returns.period_start <= cohorts.cohort_start + last,
        ])  # fmt: skip
        retained = joined.group_by(["cohort_start", "period_start"]).aggregate(
            persons=joined.count()
        )
        sizes = cohorts.group_by("cohort_start").aggregate(persons=cohorts.count())
        sizes = sizes.select("cohort_start", period_start=sizes.cohort_start, persons="persons")
        return sizes.union(retained.select("cohort_start", "period_start", "persons"))

    def run(self, store: EventStore) -> RetentionResult:
        """Execute the plan and lay the counts out as cohorts × complete periods."""
        rows = self.execute(store).to_pylist()
        return aggregate(self.query, rows)


def aggregate(query: RetentionQuery, rows: list[dict[str, Any]]) -> RetentionResult:
    """The result from the rows of :meth:`RetentionRunner.build`: one cohort per period of
    the date range (empty ones included), each period reported only if it ends by
    ``date_to``."""
    found = {(row["cohort_start"], row["period_start"]): int(row["persons"]) for row in rows}
    length = timedelta(days=query.period_days())
    cohorts = []
    start = query.period_start(query.date_from)
    while start <= query.date_to:
        size = found.get((start, start), 0)
        retained = []
        for k in range(query.periods):
            if start + (k + 1) * length - timedelta(days=1) > query.date_to:
                break
            retained.append(found.get((start, start + k * length), 0))
        rates = [count / size if size else 0.0 for count in retained]
        cohorts.append(RetentionCohort(cohort_start=start, size=size, retained=retained,
                                       rates=rates))  # fmt: skip
        start += length
    headline = {k: _headline(cohorts, k) if query.period == "day" else None for k in HEADLINE_DAYS}
    return RetentionResult(period=query.period, periods=query.periods, cohorts=cohorts,
                           d1=headline[1], d7=headline[7], d30=headline[30])  # fmt: skip


def _headline(cohorts: list[RetentionCohort], k: int) -> float | None:
    """Persons retained in period ``k`` over the persons of the cohorts where it is complete."""
    complete = [cohort for cohort in cohorts if len(cohort.retained) > k]
    persons = sum(cohort.size for cohort in complete)
    return sum(cohort.retained[k] for cohort in complete) / persons if persons else None
