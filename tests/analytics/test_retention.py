"""Retention on hand-written journeys (DuckDB and PostgreSQL) and against a brute-force
reference on random event streams (both backends)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from journeys import (
    backend_url_fixture,  # noqa: F401
    draw_identity,  # the two fixtures are used by name: pg_url, store
    ingest_rows,
    journeys_for,
    open_store,
    pg_url_fixture,  # noqa: F401
    store_fixture,  # noqa: F401,
)

from shequ.analytics.retention import (
    RetentionCohort,
    RetentionQuery,
    RetentionResult,
    RetentionRunner,
)
from shequ.analytics.store import EventStore
from shequ.core.errors import ValidationFailed


def ev(name: str, day: date, clock: str, **fields: Any) -> dict[str, Any]:
    """An event at an Asia/Shanghai wall-clock time."""
    return {"event": name, "ts": f"{day.isoformat()}T{clock}+08:00", **fields}


def nov(day: int) -> date:
    return date(2026, 11, day)


def dec(day: int) -> date:
    return date(2026, 12, day)


def retention(store: EventStore, date_from: date, date_to: date, **options: Any) -> Any:
    query = RetentionQuery(date_from=date_from, date_to=date_to, **options)
    return RetentionRunner(query).run(store)


def table(result: RetentionResult) -> list[tuple[date, int, list[int]]]:
    return [(c.cohort_start, c.size, c.retained) for c in result.cohorts]


def test_day_cohorts_use_calendar_days_and_the_first_event_in_the_range(
    store: EventStore,
) -> None:
    journeys_for(store, {
        "c1": [ev("view", nov(20), "23:50"), ev("view", nov(21), "00:10"),
               ev("view", nov(23), "10:00")],
        "c2": [ev("view", nov(20), "08:00"), ev("view", nov(20), "20:00"),
               ev("view", nov(22), "07:00")],
        "c3": [ev("view", nov(21), "10:00"), ev("view", nov(22), "09:00")],
        "c4": [ev("view", nov(19), "10:00"), ev("view", nov(22), "10:00"),
               ev("view", nov(23), "10:00")],
    })  # fmt: skip
    result = retention(store, nov(20), nov(23), periods=4)
    assert table(result) == [
        (nov(20), 2, [2, 1, 1, 1]), (nov(21), 1, [1, 1, 0]), (nov(22), 1, [1, 1]),
        (nov(23), 0, [0]),
    ]  # fmt: skip
    assert result.cohorts[0].rates == [1.0, 0.5, 0.5, 0.5]
    assert result.cohorts[3].rates == [0.0]
    assert (result.d1, result.d7, result.d30) == (0.75, None, None)


def test_midnight_in_shanghai_is_not_midnight_in_utc(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [ev("view", nov(20), "07:00"), ev("view", nov(20), "09:00")],
        "c2": [ev("view", nov(20), "23:50"), ev("view", nov(21), "00:10")],
    })  # fmt: skip
    shanghai = retention(store, nov(20), nov(21), periods=2)
    assert table(shanghai) == [(nov(20), 2, [2, 1]), (nov(21), 0, [0])]
    utc = retention(store, nov(19), nov(20), periods=2, tz="UTC")
    assert table(utc) == [(nov(19), 1, [1, 1]), (nov(20), 1, [1])]


def test_week_cohorts_start_on_monday_and_cross_a_month_boundary(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [ev("view", nov(26), "10:00"), ev("view", dec(1), "10:00"),
               ev("view", dec(13), "23:30")],
        "c2": [ev("view", nov(30), "00:10"), ev("view", dec(6), "23:50"),
               ev("view", dec(7), "00:05")],
        "c3": [ev("view", dec(2), "10:00"), ev("view", dec(14), "00:30")],
    })  # fmt: skip
    result = retention(store, nov(25), dec(13), period="week")
    assert table(result) == [
        (nov(23), 1, [1, 1, 1]), (nov(30), 2, [2, 1]), (dec(7), 0, [0]),
    ]  # fmt: skip
    assert result.periods == 8
    assert (result.d1, result.d7, result.d30) == (None, None, None)
    partial = retention(store, nov(25), dec(10), period="week")
    assert table(partial) == [(nov(23), 1, [1, 1]), (nov(30), 2, [2]), (dec(7), 0, [])]


def test_returns_after_date_to_are_not_read(store: EventStore) -> None:
    journeys_for(store, {"c1": [ev("view", nov(20), "10:00"), ev("view", nov(22), "10:00")]})
    runner = RetentionRunner(RetentionQuery(date_from=nov(20), date_to=nov(21), periods=5))
    rows = store.to_arrow(runner.build(store)).to_pylist()
    assert rows == [{"cohort_start": nov(20), "period_start": nov(20), "persons": 1}]
    assert table(runner.run(store)) == [(nov(20), 1, [1, 0]), (nov(21), 0, [0])]


def test_start_and_return_events(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [ev("login", nov(20), "10:00"), ev("signup", nov(21), "10:00"),
               ev("payment", nov(21), "11:00"), ev("payment", nov(22), "10:00")],
        "c2": [ev("payment", nov(20), "10:00"), ev("signup", nov(22), "10:00"),
               ev("login", nov(23), "10:00")],
        "c3": [ev("payment", nov(21), "10:00"), ev("payment", nov(22), "10:00")],
    })  # fmt: skip
    result = retention(store, nov(20), nov(23), periods=3, start_event="signup",
                       return_event="payment")  # fmt: skip
    assert table(result) == [
        (nov(20), 0, [0, 0, 0]), (nov(21), 1, [1, 1, 0]), (nov(22), 1, [1, 0]), (nov(23), 0, [0]),
    ]  # fmt: skip
    anything = retention(store, nov(20), nov(23), periods=3, start_event="signup")
    assert table(anything)[2] == (nov(22), 1, [1, 1])


def test_headline_rates_are_weighted_by_persons(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [ev("view", nov(1), "10:00"), ev("view", nov(2), "10:00"),
               ev("view", dec(1), "10:00")],
        "c2": [ev("view", nov(1), "10:00")],
        "c3": [ev("view", nov(2), "10:00"), ev("view", nov(3), "10:00")],
        "c4": [ev("view", nov(2), "10:00"), ev("view", nov(9), "10:00")],
        **{f"c{i}": [ev("view", nov(2), "10:00")] for i in (5, 6)},
    })  # fmt: skip
    result = retention(store, nov(1), dec(1))
    assert result.periods == 31
    assert result.cohorts[1].rates[:2] == [1.0, 0.25]
    assert (result.d1, result.d7, result.d30) == (pytest.approx(1 / 3), pytest.approx(1 / 6), 0.5)
    assert retention(store, nov(1), dec(1), periods=5).d7 is None
    assert retention(store, nov(1), nov(1)).d1 is None


def test_ties_and_out_of_order_arrival(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [ev("payment", nov(22), "10:00"), ev("signup", nov(20), "10:00"),
               ev("payment", nov(20), "10:00")],
        "c2": [ev("signup", nov(20), "23:59:59"), ev("payment", nov(21), "00:00:00")],
    })  # fmt: skip
    result = retention(store, nov(20), nov(22), periods=3, start_event="signup",
                       return_event="payment")  # fmt: skip
    assert table(result)[0] == (nov(20), 2, [2, 1, 1])


def test_filters_apply_to_cohorts_and_returns(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [ev("view", nov(20), "10:00", channel="web"),
               ev("view", nov(21), "10:00", channel="app")],
        "c2": [ev("view", nov(20), "10:00", channel="app"),
               ev("view", nov(21), "10:00", channel="web")],
        "c3": [ev("view", nov(20), "10:00", channel="web"),
               ev("view", nov(21), "10:00", channel="web")],
    })  # fmt: skip
    assert table(retention(store, nov(20), nov(21), periods=2, channels=["web"])) == [
        (nov(20), 2, [2, 1]), (nov(21), 1, [1]),
    ]  # fmt: skip
    assert table(retention(store, nov(20), nov(21), periods=2)) == [
        (nov(20), 3, [3, 3]), (nov(21), 0, [0]),
    ]  # fmt: skip


def test_anonymous_visitor_who_logs_in_is_one_person(store: EventStore) -> None:
    journeys_for(store, {
        "a1": [ev("view", nov(20), "10:00", anonymous_id="a1"),
               ev("login", nov(21), "10:00", anonymous_id="a1", customer_id="c1"),
               ev("view", nov(22), "10:00", customer_id="c1")],
    })  # fmt: skip
    assert table(retention(store, nov(20), nov(22), periods=3)) == [
        (nov(20), 1, [1, 1, 1]), (nov(21), 0, [0, 0]), (nov(22), 0, [0]),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("options", "code", "attr"),
    [
        ({"periods": 0}, "retention_periods_out_of_range", "periods"),
        ({"periods": 91}, "retention_periods_out_of_range", "periods"),
        ({"start_event": " "}, "blank_event_name", "start_event"),
        ({"return_event": ""}, "blank_event_name", "return_event"),
        ({"date_to": nov(19)}, "bad_date_range", "date_to"),
        ({"date_to": date(2027, 12, 1)}, "date_range_too_long", "date_to"),
        ({"tz": "Mars/Olympus"}, "unknown_timezone", "tz"),
    ],
)
def test_validation_codes(options: dict[str, Any], code: str, attr: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        RetentionRunner(RetentionQuery(**{"date_from": nov(20), "date_to": nov(20), **options}))
    assert (info.value.code, info.value.attr) == (code, attr)


def test_parse_defaults_and_unknown_fields() -> None:
    days = {"date_from": "2026-11-20", "date_to": "2026-11-20"}
    assert RetentionRunner.parse(days).periods == 31
    assert RetentionRunner.parse({**days, "period": "week"}).periods == 8
    assert RetentionRunner.parse({**days, "period": "week", "periods": None}).periods == 8
    assert RetentionRunner.parse({**days, "periods": 3}).periods == 3
    assert RetentionQuery(date_from=nov(20), date_to=nov(20), period="week").periods == 8
    with pytest.raises(ValidationFailed) as info:
        RetentionRunner.parse({**days, "period": "month"})
    assert (info.value.code, info.value.attr) == ("invalid_query", "period")
    with pytest.raises(ValidationFailed) as info:
        RetentionRunner.parse({**days, "cohort": "signup"})
    assert (info.value.code, info.value.attr) == ("invalid_query", "cohort")


# --- brute force reference -----------------------------------------------------------------


def reference_result(rows: list[dict[str, Any]], query: RetentionQuery) -> RetentionResult:
    """The retention result by plain Python, person by person."""
    zone = ZoneInfo(query.tz)
    start, end = query.bounds()
    length = 7 if query.period == "week" else 1
    links: dict[str, str] = {}
    for row in rows:
        if row.get("anonymous_id") and row.get("customer_id"):
            links.setdefault(row["anonymous_id"], row["customer_id"])

    def period(ts: datetime) -> date:
        day = ts.astimezone(zone).date()
        return day - timedelta(days=day.weekday() if length == 7 else 0)

    firsts: dict[str, datetime] = {}
    visited: dict[str, set[date]] = {}
    for row in rows:
        if not start <= row["ts"] < end:
            continue
        if query.channels is not None and row.get("channel") not in query.channels:
            continue
        anonymous = row.get("anonymous_id")
        person = row.get("customer_id") or links.get(anonymous or "") or f"anon:{anonymous}"
        if query.start_event in (None, row["name"]):
            firsts[person] = min(firsts.get(person, row["ts"]), row["ts"])
        if query.return_event in (None, row["name"]):
            visited.setdefault(person, set()).add(period(row["ts"]))
    cohorts = []
    cohort = period(datetime.combine(query.date_from, datetime.min.time(), zone))
    while cohort <= query.date_to:
        members = [p for p, ts in firsts.items() if period(ts) == cohort]
        retained = []
        for k in range(query.periods):
            if cohort + timedelta(days=length * (k + 1) - 1) > query.date_to:
                break
            later = cohort + timedelta(days=length * k)
            retained.append(len(members) if k == 0 else sum(
                1 for p in members if later in visited.get(p, set())))  # fmt: skip
        rates = [n / len(members) if members else 0.0 for n in retained]
        cohorts.append(RetentionCohort(cohort_start=cohort, size=len(members),
                                       retained=retained, rates=rates))  # fmt: skip
        cohort += timedelta(days=length)

    def headline(k: int) -> float | None:
        if query.period != "day":
            return None
        done = [c for c in cohorts if len(c.retained) > k]
        persons = sum(c.size for c in done)
        return sum(c.retained[k] for c in done) / persons if persons else None

    return RetentionResult(period=query.period, periods=query.periods, cohorts=cohorts,
                           d1=headline(1), d7=headline(7), d30=headline(30))  # fmt: skip


BASE = datetime(2026, 11, 15, 16, tzinfo=UTC)  # Monday 2026-11-16 00:00 in Asia/Shanghai
NAMES = ["signup", "payment", "view"]


@st.composite
def event_streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    size = draw(st.integers(0, 40))
    ids = draw(st.permutations(range(size)))
    rows = []
    for i in range(size):
        person = draw(st.sampled_from(["c0", "c1", "a0", "a1"]))
        hours = draw(st.integers(-30, 24 * 10))
        row = {"event_id": f"e{ids[i]:02d}", "name": draw(st.sampled_from(NAMES)),
               "ts": BASE + timedelta(hours=hours, minutes=draw(st.sampled_from([0, 30, 59]))),
               "channel": draw(st.sampled_from([None, "web", "app"]))}  # fmt: skip
        rows.append(draw_identity(draw, row, person))
    return rows


@st.composite
def retention_queries(draw: st.DrawFn) -> RetentionQuery:
    first = nov(16) + timedelta(days=draw(st.integers(0, 3)))
    return RetentionQuery(
        date_from=first, date_to=first + timedelta(days=draw(st.integers(2, 17))),
        period=draw(st.sampled_from(["day", "week"])),
        periods=draw(st.sampled_from([1, 3, 8, 31, 31])),
        start_event=draw(st.sampled_from([None, *NAMES])),
        return_event=draw(st.sampled_from([None, *NAMES])),
        tz=draw(st.sampled_from(["Asia/Shanghai", "UTC"])),
        channels=draw(st.sampled_from([None, ["web"], ["web", "app"]])),
    )  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(rows=event_streams(), query=retention_queries())
def test_runner_matches_brute_force_reference(
    backend_url: str, rows: list[dict[str, Any]], query: RetentionQuery
) -> None:
    with open_store(backend_url) as store:
        ingest_rows(store, rows)
        result = RetentionRunner(query).run(store)
    assert result == reference_result(rows, query)
