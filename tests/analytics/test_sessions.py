"""Sessions from events (30 minutes of inactivity) on DuckDB and PostgreSQL, and against a
brute-force reference on random event streams."""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from journeys import (  # the two fixtures are used by name: pg_url, store
    ingest_rows,
    journeys_for,
    open_store,
    pg_url_fixture,  # noqa: F401
    store_fixture,  # noqa: F401
)

from shequ.analytics.sessions import SessionsQuery, SessionsRunner
from shequ.analytics.store import EventStore
from shequ.analytics.taobao import default_taobao_path, taobao_to_arrow
from shequ.core.errors import ValidationFailed

DAY = date(2026, 11, 20)
TAOBAO = default_taobao_path()


def ev(clock: str, day: int = 20, name: str = "view", **fields: Any) -> dict[str, Any]:
    return {"event": name, "ts": f"2026-11-{day:02d}T{clock}+08:00", **fields}


def sessions(store: EventStore, date_to: date = DAY, **options: Any) -> Any:
    return SessionsRunner(SessionsQuery(date_from=DAY, date_to=date_to, **options)).run(store)


def test_a_gap_of_more_than_30_minutes_starts_a_session(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [ev("10:00"), ev("10:30"), ev("11:00:01"), ev("11:10")],
        "c2": [ev("10:00")],
    })  # fmt: skip
    result = sessions(store)
    assert [(s.person_id, s.events, s.duration_seconds) for s in result.items] == [
        ("c1", 2, 1800.0), ("c2", 1, 0.0), ("c1", 2, 599.0),
    ]  # fmt: skip
    assert result.sessions == 3
    assert result.median_duration_seconds == 599.0
    assert result.bounce_rate == pytest.approx(1 / 3)


def test_client_session_ids_are_not_trusted(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [ev("10:00", session_id="s1"), ev("10:05", session_id="s2"),
               ev("12:00", session_id="s2")],
    })  # fmt: skip
    assert [s.events for s in sessions(store).items] == [2, 1]


def test_out_of_order_arrival_and_ties(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [ev("10:40", event_id="b"), ev("10:00", event_id="z"), ev("10:00", event_id="a")],
    })  # fmt: skip
    assert [(s.events, s.duration_seconds) for s in sessions(store).items] == [(2, 0.0), (1, 0.0)]


def test_a_session_may_cross_local_midnight(store: EventStore) -> None:
    journeys_for(store, {"c1": [ev("23:50"), ev("00:10", day=21), ev("00:20", day=21)]})
    [crossing] = sessions(store, date_to=date(2026, 11, 21)).items
    assert (crossing.events, crossing.duration_seconds) == (3, 1800.0)
    assert crossing.start == datetime(2026, 11, 20, 15, 50, tzinfo=UTC)
    assert [s.events for s in sessions(store).items] == [1]


def test_visitor_who_logs_in_keeps_one_session(store: EventStore) -> None:
    journeys_for(store, {
        "a1": [ev("10:00", anonymous_id="a1"), ev("10:05", anonymous_id="a1", customer_id="c1"),
               ev("10:10", customer_id="c1")],
        "a2": [ev("10:00", anonymous_id="a2")],
    })  # fmt: skip
    result = sessions(store)
    assert [(s.person_id, s.events) for s in result.items] == [("anon:a2", 1), ("c1", 3)]


def test_empty_range() -> None:
    with tempfile.TemporaryDirectory() as folder, open_store(f"duckdb://{folder}/e.duckdb") as s:
        result = sessions(s)
    assert (result.sessions, result.median_duration_seconds, result.bounce_rate) == (0, None, 0)


def test_reversed_range_is_rejected() -> None:
    with pytest.raises(ValidationFailed) as info:
        SessionsRunner(SessionsQuery(date_from=DAY, date_to=date(2026, 11, 19)))
    assert (info.value.code, info.value.attr) == ("bad_date_range", "date_to")


@pytest.mark.skipif(not TAOBAO.exists(), reason=f"Taobao evaluation data absent: {TAOBAO}")
def test_sessions_agree_with_the_taobao_import(tmp_path: Any) -> None:
    with open_store(f"duckdb://{tmp_path}/taobao.duckdb") as store:
        store.ingest_arrow(taobao_to_arrow(TAOBAO))
        query = SessionsQuery(date_from=date(2017, 9, 1), date_to=date(2017, 12, 3))
        result = SessionsRunner(query).run(store)
        assert result.sessions == 14_122  # the importer's distinct session_ids (docs/events.md)


def reference_sessions(rows: list[dict[str, Any]], start: datetime, end: datetime) -> list[Any]:
    """(person, start, end, events) per session, by plain Python."""
    timelines: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if start <= row["ts"] < end:
            timelines.setdefault(row["customer_id"], []).append(row)
    found = []
    for person, events in timelines.items():
        events.sort(key=lambda e: (e["ts"], e["event_id"]))
        current = [events[0]]
        for event in events[1:]:
            if event["ts"] - current[-1]["ts"] > timedelta(minutes=30):
                found.append((person, current[0]["ts"], current[-1]["ts"], len(current)))
                current = []
            current.append(event)
        found.append((person, current[0]["ts"], current[-1]["ts"], len(current)))
    return sorted(found)


BASE = datetime(2026, 11, 20, 15, tzinfo=UTC)  # 23:00 in Asia/Shanghai

stream = st.lists(st.tuples(st.sampled_from(["c0", "c1", "c2"]), st.integers(-40, 40)), max_size=30)


@settings(max_examples=30, deadline=None)
@given(events=stream)
def test_sessions_match_brute_force_reference(events: list[tuple[str, int]]) -> None:
    rows = [
        {"event_id": f"e{len(events) - i:02d}", "name": "view", "customer_id": person,
         "ts": BASE + timedelta(minutes=5 * step)}
        for i, (person, step) in enumerate(events)
    ]  # fmt: skip
    query = SessionsQuery(date_from=DAY, date_to=DAY)
    with tempfile.TemporaryDirectory() as folder, open_store(f"duckdb://{folder}/e.duckdb") as s:
        ingest_rows(s, rows)
        result = SessionsRunner(query).run(s)
    got = sorted((i.person_id, i.start, i.end, i.events) for i in result.items)
    assert got == reference_sessions(rows, *query.bounds())
