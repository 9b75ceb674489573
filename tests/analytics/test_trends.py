"""Trends on hand-written journeys (DuckDB and PostgreSQL) and against a brute-force
reference on random event streams."""

from __future__ import annotations

import json
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

from shequ.analytics.store import EventStore
from shequ.analytics.trends import TrendsQuery, TrendsResult, TrendsRunner, bucket_starts
from shequ.core.errors import ValidationFailed

DAY = date(2026, 11, 20)  # a Friday
SHANGHAI = ZoneInfo("Asia/Shanghai")


def ev(name: str, clock: str, day: int = 20, **fields: Any) -> dict[str, Any]:
    """An event at an Asia/Shanghai wall-clock time on 2026-11-<day>."""
    return {"event": name, "ts": f"2026-11-{day:02d}T{clock}+08:00", **fields}


def trends(store: EventStore, event: str = "payment", **options: Any) -> TrendsResult:
    options.setdefault("date_from", DAY)
    options.setdefault("date_to", DAY)
    return TrendsRunner(TrendsQuery(event=event, **options)).run(store)


def values(result: TrendsResult, series: int = 0) -> list[int | float]:
    return [point.value for point in result.series[series].points]


def local(day: int, hour: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=SHANGHAI)


def test_every_day_of_the_range_has_a_point(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [ev("payment", "10:00", 20), ev("payment", "09:00", 22),
               ev("page_view", "09:00", 21)],
        "c2": [ev("payment", "11:00", 22), ev("payment", "11:00", 24)],
    })  # fmt: skip
    result = trends(store, date_from=date(2026, 11, 19), date_to=date(2026, 11, 23))
    [series] = result.series
    assert [p.start for p in series.points] == [local(d) for d in range(19, 24)]
    assert values(result) == [0, 1, 0, 2, 0]
    assert (series.breakdown_value, series.total) == ("", 3)
    assert series.points[0].start.utcoffset() == timedelta(hours=8)


def test_local_midnight_in_shanghai(store: EventStore) -> None:
    journeys_for(store, {"c1": [ev("payment", "23:59", 20), ev("payment", "00:01", 21)]})
    two_days = {"date_from": DAY, "date_to": date(2026, 11, 21)}
    assert values(trends(store, **two_days)) == [1, 1]
    assert values(trends(store, **two_days, tz="UTC")) == [2, 0]
    hourly = trends(store, **two_days, interval="hour")
    points = hourly.series[0].points
    assert len(points) == 48
    assert [(p.start, p.value) for p in points if p.value] == [(local(20, 23), 1), (local(21), 1)]


def test_weeks_start_on_monday(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [ev("payment", "23:30", 22), ev("payment", "00:10", 23), ev("payment", "10:00", 30)],
        "c2": [ev("payment", "10:00", 18)],
    })  # fmt: skip
    result = trends(store, interval="week", date_from=date(2026, 11, 19),
                    date_to=date(2026, 11, 30))  # fmt: skip
    assert [p.start for p in result.series[0].points] == [local(16), local(23), local(30)]
    assert [p.start.weekday() for p in result.series[0].points] == [0, 0, 0]
    # the Wednesday 11-18 is before date_from: its week is partial
    assert values(result) == [1, 1, 1]


def test_sum_of_a_numeric_property(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [ev("payment", "10:00", properties=json.dumps({"amount_fen": 12990})),
               ev("payment", "11:00", properties='{"order_id":"o1","amount_fen":500,"items":2}'),
               ev("payment", "12:00", properties='{"amount_fen": -99.5}'),
               ev("payment", "13:00", properties='{"amount_fen": "700"}'),
               ev("payment", "14:00", properties='{"amount_fen_total": 5}'),
               ev("payment", "15:00"),
               ev("checkout", "15:00", properties='{"amount_fen": 1}')],
    })  # fmt: skip
    result = trends(store, measure="sum", property="amount_fen", interval="hour")
    assert result.series[0].total == pytest.approx(13390.5)
    assert values(result)[10:16] == [12990.0, 500.0, -99.5, 0.0, 0.0, 0.0]
    assert sum(values(result)) == pytest.approx(13390.5)


def test_unique_persons_count_a_visitor_who_logs_in_once(store: EventStore) -> None:
    journeys_for(store, {
        "a1": [ev("page_view", "10:00", anonymous_id="a1"),
               ev("login", "10:01", anonymous_id="a1", customer_id="c9"),
               ev("page_view", "10:02", customer_id="c9"),
               ev("page_view", "10:00", 21, customer_id="c9")],
        "c2": [ev("page_view", "11:00"), ev("page_view", "11:30")],
    })  # fmt: skip
    two_days = {"date_from": DAY, "date_to": date(2026, 11, 21)}
    unique = trends(store, "page_view", measure="unique_persons", **two_days)
    assert (values(unique), unique.series[0].total) == ([2, 1], 2)
    counted = trends(store, "page_view", **two_days)
    assert (values(counted), counted.series[0].total) == ([4, 1], 5)


def test_breakdown_by_channel(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [ev("payment", "10:00", channel="app"), ev("payment", "10:00", 21, channel="web")],
        "c2": [ev("payment", "10:00", channel="app"), ev("payment", "11:00", channel="app")],
        "c3": [ev("payment", "10:00", 21)],
    })  # fmt: skip
    result = trends(store, measure="unique_persons", breakdown="channel",
                    date_to=date(2026, 11, 21))  # fmt: skip
    assert [(s.breakdown_value, [p.value for p in s.points], s.total) for s in result.series] == [
        ("app", [2, 0], 2), ("", [0, 1], 1), ("web", [0, 1], 1),
    ]  # fmt: skip


def test_filters_and_an_empty_range(store: EventStore) -> None:
    journeys_for(store, {"c1": [ev("payment", "10:00", channel="app"), ev("payment", "11:00")]})
    assert values(trends(store, channels=["app"])) == [1]
    empty = trends(store, channels=["web"])
    assert ([s.breakdown_value for s in empty.series], values(empty)) == ([""], [0])
    assert trends(store, channels=["web"], breakdown="channel").series == []


def test_dst_hours_are_wall_clock_hours() -> None:
    def hours(day: date) -> list[datetime]:
        query = TrendsQuery(event="payment", date_from=day, date_to=day, interval="hour",
                            tz="America/New_York")  # fmt: skip
        return bucket_starts(query)

    fall_back, spring_forward = hours(date(2026, 11, 1)), hours(date(2026, 3, 8))
    assert len(fall_back) == len(set(fall_back)) == 24
    assert len(spring_forward) == 23
    assert datetime(2026, 3, 8, 2) not in spring_forward


def test_hours_in_a_dst_fold_share_one_bucket(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [{"event": "payment", "ts": "2026-11-01T01:10:00-04:00"},
               {"event": "payment", "ts": "2026-11-01T01:20:00-05:00"},
               {"event": "payment", "ts": "2026-11-01T02:00:00-05:00"}],
    })  # fmt: skip
    day = date(2026, 11, 1)
    result = trends(store, interval="hour", date_from=day, date_to=day, tz="America/New_York")
    assert values(result)[:4] == [0, 2, 1, 0]


@pytest.mark.parametrize(
    ("options", "code", "attr"),
    [
        ({"measure": "sum"}, "sum_needs_property", "property"),
        ({"property": "amount_fen"}, "property_needs_sum", "property"),
        ({"measure": "sum", "property": "Amount"}, "bad_property_name", "property"),
        ({"measure": "sum", "property": 'a"b'}, "bad_property_name", "property"),
        ({"measure": "sum", "property": "x" * 65}, "bad_property_name", "property"),
        ({"event": "Payment"}, "bad_event_name", "event"),
        ({"event": ""}, "bad_event_name", "event"),
        ({"interval": "hour", "date_to": date(2026, 12, 21)}, "too_many_buckets", "date_to"),
        ({"date_to": date(2026, 11, 19)}, "bad_date_range", "date_to"),
        ({"tz": "Mars/Olympus"}, "unknown_timezone", "tz"),
        ({"segment": " "}, "blank_segment", "segment"),
    ],
)
def test_validation_codes(options: dict[str, Any], code: str, attr: str) -> None:
    fields: dict[str, Any] = {"event": "payment", "date_from": DAY, "date_to": DAY}
    with pytest.raises(ValidationFailed) as info:
        TrendsRunner(TrendsQuery(**{**fields, **options}))
    assert (info.value.code, info.value.attr) == (code, attr)


def test_hourly_range_of_31_days_is_allowed() -> None:
    query = TrendsQuery(event="payment", interval="hour", date_from=DAY,
                        date_to=date(2026, 12, 20))  # fmt: skip
    assert len(bucket_starts(TrendsRunner(query).query)) == 31 * 24


def test_unknown_query_field_is_invalid_query() -> None:
    with pytest.raises(ValidationFailed) as info:
        TrendsRunner.parse({"event": "payment", "date_from": DAY, "date_to": DAY, "math": "avg"})
    assert (info.value.code, info.value.attr) == ("invalid_query", "math")


# --- brute force reference -----------------------------------------------------------------


def reference(rows: list[dict[str, Any]], query: TrendsQuery) -> dict[str, Any]:
    """Per breakdown value: ({naive local bucket: value}, total), by plain Python."""
    start, end = query.bounds()
    zone = ZoneInfo(query.tz)
    links: dict[str, str] = {}
    for row in rows:
        if row.get("anonymous_id") and row.get("customer_id"):
            links.setdefault(row["anonymous_id"], row["customer_id"])
    found: dict[str, list[tuple[datetime, Any]]] = {}
    for row in rows:
        if row["name"] != query.event or not start <= row["ts"] < end:
            continue
        if query.channels is not None and row.get("channel") not in query.channels:
            continue
        anonymous = row.get("anonymous_id")
        person = row.get("customer_id") or links.get(anonymous or "") or f"anon:{anonymous}"
        wall = row["ts"].astimezone(zone).replace(tzinfo=None)
        if query.interval == "hour":
            bucket = wall.replace(minute=0, second=0, microsecond=0)
        else:
            bucket = datetime.combine(wall.date(), datetime.min.time())
            if query.interval == "week":
                bucket -= timedelta(days=bucket.weekday())
        key = (row.get("channel") or "") if query.breakdown else ""
        item = person if query.measure == "unique_persons" else reference_amount(row)
        found.setdefault(key, []).append((bucket, item))
    return {key: (_measure(items, query), _measure([(None, i) for _, i in items], query)[None])
            for key, items in found.items()}  # fmt: skip


def reference_amount(row: dict[str, Any]) -> float:
    value = json.loads(row["properties"]).get("amount_fen") if row.get("properties") else None
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if numeric else 0.0


def _measure(items: list[tuple[Any, Any]], query: TrendsQuery) -> dict[Any, Any]:
    grouped: dict[Any, list[Any]] = {}
    for bucket, item in items:
        grouped.setdefault(bucket, []).append(item)
    if query.measure == "count":
        return {bucket: len(found) for bucket, found in grouped.items()}
    if query.measure == "unique_persons":
        return {bucket: len(set(found)) for bucket, found in grouped.items()}
    return {bucket: sum(found) for bucket, found in grouped.items()}


BASE = datetime(2026, 11, 22, 15, tzinfo=UTC)  # Sunday 23:00 in Asia/Shanghai
RANGE = {"date_from": date(2026, 11, 22), "date_to": date(2026, 11, 23)}
PROPERTIES = [None, "{}", '{"amount_fen": 1200}', '{"amount_fen":-5.5}', '{"amount_fen": 1e2}',
              '{"amount_fen": "700"}', '{"items": 2, "amount_fen": 30}',
              '{"amount_fen": true}']  # fmt: skip


@st.composite
def event_streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    size = draw(st.integers(0, 30))
    ids = draw(st.permutations(range(size)))
    rows = []
    for i in range(size):
        person = draw(st.sampled_from(["c0", "c1", "a0", "a1"]))
        offset = timedelta(hours=draw(st.sampled_from([-25, -1, 0, 0, 1, 24])),
                           minutes=10 * draw(st.integers(-6, 6)))  # fmt: skip
        row = {"event_id": f"e{ids[i]:02d}", "name": draw(st.sampled_from(["payment", "login"])),
               "ts": BASE + offset, "channel": draw(st.sampled_from([None, "web", "app"])),
               "properties": draw(st.sampled_from(PROPERTIES))}  # fmt: skip
        rows.append(draw_identity(draw, row, person))
    return rows


@st.composite
def trends_queries(draw: st.DrawFn) -> TrendsQuery:
    measure = draw(st.sampled_from(["count", "unique_persons", "sum"]))
    return TrendsQuery(
        event="payment", measure=measure, property="amount_fen" if measure == "sum" else None,
        interval=draw(st.sampled_from(["hour", "day", "week"])),
        breakdown=draw(st.sampled_from([None, "channel"])),
        channels=draw(st.sampled_from([None, ["web", "app"]])),
        tz=draw(st.sampled_from(["Asia/Shanghai", "UTC"])), **RANGE,
    )  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(rows=event_streams(), query=trends_queries())
def test_runner_matches_brute_force_reference(
    backend_url: str, rows: list[dict[str, Any]], query: TrendsQuery
) -> None:
    with open_store(backend_url) as store:
        ingest_rows(store, rows)
        result = TrendsRunner(query).run(store)
    expected = reference(rows, query)
    if query.breakdown is None:
        expected.setdefault("", ({}, 0))
    starts = bucket_starts(query)
    got = {s.breakdown_value: ([p.value for p in s.points], s.total) for s in result.series}
    assert set(got) == set(expected)
    for key, (buckets, total) in expected.items():
        points, got_total = got[key]
        assert set(buckets) <= set(starts)
        assert points == pytest.approx([buckets.get(start, 0) for start in starts])
        assert got_total == pytest.approx(total)
    totals = [s.total for s in result.series]
    assert totals == sorted(totals, reverse=True)
