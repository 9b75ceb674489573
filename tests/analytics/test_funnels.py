"""Funnels on hand-written journeys (DuckDB and PostgreSQL) and against a brute-force
reference on random event streams."""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from journeys import (
    draw_identity,  # the two fixtures are used by name: pg_url, store
    ingest_rows,
    journeys_for,
    open_store,
    pg_url_fixture,  # noqa: F401
    store_fixture,  # noqa: F401
)

from shequ.analytics.funnels import FunnelQuery, FunnelRunner, diagnose
from shequ.analytics.store import EventStore
from shequ.core.errors import ValidationFailed

DAY = date(2026, 11, 20)
HOUR = timedelta(hours=1)


def at(clock: str, day: int = 20) -> str:
    """An Asia/Shanghai wall-clock instant on 2026-11-<day>."""
    return f"2026-11-{day:02d}T{clock}+08:00"


def ev(name: str, clock: str, day: int = 20, **fields: Any) -> dict[str, Any]:
    return {"event": name, "ts": at(clock, day), **fields}


def funnel(store: EventStore, steps: list[str], **options: Any) -> FunnelRunner:
    options.setdefault("window", HOUR)
    query = FunnelQuery(steps=steps, date_from=DAY, date_to=DAY, **options)
    return FunnelRunner(query)


def counts(store: EventStore, steps: list[str], **options: Any) -> list[int]:
    return [step.count for step in funnel(store, steps, **options).run(store).steps]


ORDER_JOURNEYS = {
    "c1": [ev("view", "10:00"), ev("other", "10:01"), ev("cart", "10:02"), ev("pay", "10:03")],
    "c2": [ev("view", "10:00"), ev("cart", "10:01")],
    "c3": [ev("cart", "10:00"), ev("view", "10:01")],
    "c4": [ev("pay", "10:00")],
}


@pytest.mark.parametrize(
    ("order", "expected"),
    [("ordered", [3, 2, 1]), ("strict", [3, 1, 0]), ("any_order", [4, 3, 1])],
)
def test_order_modes(store: EventStore, order: str, expected: list[int]) -> None:
    journeys_for(store, ORDER_JOURNEYS)
    assert counts(store, ["view", "cart", "pay"], order=order) == expected


def test_window_is_inclusive_and_measured_from_the_first_step(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [ev("view", "10:00"), ev("cart", "10:59"), ev("pay", "11:01")],
        "c2": [ev("view", "10:00"), ev("cart", "11:00:00")],
        "c3": [ev("view", "10:00"), ev("cart", "11:00:01")],
    })  # fmt: skip
    assert counts(store, ["view", "cart", "pay"]) == [3, 2, 0]
    assert counts(store, ["view", "cart", "pay"], window=2 * HOUR) == [3, 3, 1]


def test_ties_in_time_are_broken_by_event_id(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [ev("view", "10:00", event_id="e1"), ev("cart", "10:00", event_id="e2")],
        "c2": [ev("view", "10:00", event_id="e4"), ev("cart", "10:00", event_id="e3")],
    })  # fmt: skip
    for order in ("ordered", "strict"):
        assert counts(store, ["view", "cart"], order=order) == [2, 1]
    assert counts(store, ["view", "cart"], order="any_order") == [2, 2]


def test_repeated_steps(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [ev("view", "10:00"), ev("pay", "10:01"), ev("view", "10:02"), ev("pay", "10:03")],
        "c2": [ev("view", "10:00"), ev("pay", "10:01")],
        "c3": [ev("view", "10:00"), ev("view", "10:01"), ev("pay", "10:02")],
    })  # fmt: skip
    assert counts(store, ["view", "view", "pay"]) == [3, 2, 2]
    assert counts(store, ["view", "view", "pay"], order="strict") == [3, 1, 1]


def test_only_the_first_first_step_counts(store: EventStore) -> None:
    journeys_for(store, {"c1": [ev("view", "10:00"), ev("view", "12:00"), ev("cart", "12:01")]})
    assert counts(store, ["view", "cart"]) == [1, 0]
    assert counts(store, ["view", "cart"], window=timedelta(days=90)) == [1, 1]


def test_out_of_order_arrival_is_ordered_by_time(store: EventStore) -> None:
    journeys_for(store, {"c1": [ev("pay", "10:02"), ev("cart", "10:01"), ev("view", "10:00")]})
    assert counts(store, ["view", "cart", "pay"], order="strict") == [1, 1, 1]


def test_local_midnight_in_shanghai(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [ev("view", "23:50"), ev("pay", "00:10", day=21)],
        "c2": [ev("view", "00:05", day=21), ev("pay", "00:06", day=21)],
        "c3": [ev("view", "23:59", day=19)],
    })  # fmt: skip
    assert counts(store, ["view", "pay"]) == [1, 1]
    assert counts(store, ["view", "pay"], tz="UTC") == [2, 2]


def test_anonymous_visitor_who_logs_in_is_one_person(store: EventStore) -> None:
    journeys_for(store, {
        "a1": [ev("view", "10:00", anonymous_id="a1"),
               ev("login", "10:01", anonymous_id="a1", customer_id="c9"),
               ev("pay", "10:02", customer_id="c9")],
        "a2": [ev("view", "10:00", anonymous_id="a2")],
    })  # fmt: skip
    assert counts(store, ["view", "pay"]) == [2, 1]
    persons = store.to_arrow(funnel(store, ["view", "pay"]).build(store))
    assert sorted(persons["person_id"].to_pylist()) == ["anon:a2", "c9"]


def test_breakdown_by_channel_of_the_first_step(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [ev("view", "10:00", channel="web"), ev("pay", "10:01", channel="app")],
        "c2": [ev("view", "10:00", channel="app")],
        "c3": [ev("view", "10:00", channel="app"), ev("pay", "10:01")],
        "c4": [ev("view", "10:00"), ev("pay", "10:01")],
    })  # fmt: skip
    result = funnel(store, ["view", "pay"], breakdown="channel").run(store)
    assert [(s.breakdown_value, [step.count for step in s.steps]) for s in result.breakdown] == [
        ("app", [2, 1]), ("", [1, 1]), ("web", [1, 1]),
    ]  # fmt: skip
    assert [step.count for step in result.steps] == [4, 3]


def test_conversion_drop_off_and_median_time(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [ev("view", "10:00"), ev("cart", "10:01"), ev("pay", "10:02")],
        "c2": [ev("view", "10:00"), ev("cart", "10:02")],
        "c3": [ev("view", "10:00"), ev("cart", "10:05")],
        "c4": [ev("view", "10:00")],
    })  # fmt: skip
    steps = funnel(store, ["view", "cart", "pay"]).run(store).steps
    assert [(s.count, s.dropped_from_previous) for s in steps] == [(4, 0), (3, 1), (1, 2)]
    assert [s.conversion_from_previous for s in steps] == [1.0, 0.75, pytest.approx(1 / 3)]
    assert [s.conversion_from_first for s in steps] == [1.0, 0.75, 0.25]
    assert [s.median_seconds_from_previous for s in steps] == [None, 120.0, 60.0]


def test_diagnose_names_the_step_whose_loss_grew_most(store: EventStore) -> None:
    usual = [ev("view", "10:00", 19), ev("cart", "10:01", 19), ev("pay", "10:02", 19)]
    journeys_for(store, {
        **{f"b{i}": usual for i in range(4)},
        **{f"c{i}": [ev("view", "10:00"), ev("cart", "10:01")] for i in range(3)},
        "c9": [ev("view", "10:00"), ev("cart", "10:01"), ev("pay", "10:02")],
    })  # fmt: skip
    current = funnel(store, ["view", "cart", "pay"]).run(store)
    query = FunnelQuery(steps=["view", "cart", "pay"], window=HOUR,
                        date_from=date(2026, 11, 19), date_to=date(2026, 11, 19))  # fmt: skip
    baseline = FunnelRunner(query).run(store)
    found = diagnose(current, baseline)
    assert (found.order, found.name, found.loss_rate, found.baseline_loss_rate) == (
        2, "pay", 0.75, 0.0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("options", "code"),
    [
        ({"steps": ["view"]}, "funnel_needs_two_steps"),
        ({"steps": [f"s{i}" for i in range(11)]}, "funnel_too_many_steps"),
        ({"window": timedelta(days=91)}, "window_too_long"),
        ({"window": timedelta(0)}, "window_not_positive"),
        ({"window": timedelta(seconds=1.5)}, "window_not_positive"),
        ({"date_to": date(2026, 11, 19)}, "bad_date_range"),
        ({"date_to": date(2027, 12, 1)}, "date_range_too_long"),
        ({"tz": "Mars/Olympus"}, "unknown_timezone"),
        ({"order": "any_order", "steps": ["view", "view"]}, "any_order_repeated_step"),
    ],
)
def test_validation_codes(options: dict[str, Any], code: str) -> None:
    fields: dict[str, Any] = {"steps": ["view", "pay"], "date_from": DAY, "date_to": DAY}
    with pytest.raises(ValidationFailed) as info:
        FunnelRunner(FunnelQuery(**{**fields, **options}))
    assert info.value.code == code


def test_unknown_query_field_is_invalid_query() -> None:
    with pytest.raises(ValidationFailed) as info:
        FunnelRunner.parse({"steps": ["a", "b"], "date_from": DAY, "date_to": DAY, "colour": 1})
    assert (info.value.code, info.value.attr) == ("invalid_query", "colour")


# --- brute force reference -----------------------------------------------------------------


def reference_persons(rows: list[dict[str, Any]], query: FunnelQuery) -> dict[str, Any]:
    """Per person: (breakdown, [ts of each step reached]), by plain Python."""
    start, end = query.bounds()
    links: dict[str, str] = {}
    for row in rows:
        if row.get("anonymous_id") and row.get("customer_id"):
            links.setdefault(row["anonymous_id"], row["customer_id"])
    timelines: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if not start <= row["ts"] < end + query.window:
            continue
        if query.order != "strict" and row["name"] not in query.steps:
            continue
        anonymous = row.get("anonymous_id")
        person = row.get("customer_id") or links.get(anonymous or "") or f"anon:{anonymous}"
        timelines.setdefault(person, []).append(row)
    found = {}
    for person, events in timelines.items():
        events.sort(key=lambda e: (e["ts"], e["event_id"]))
        reached = reference_reached(events, query, end)
        if reached is not None:
            found[person] = reached
    return found


def reference_reached(events: list[dict[str, Any]], query: FunnelQuery, end: datetime) -> Any:
    starters = query.steps if query.order == "any_order" else query.steps[:1]
    anchor = next((i for i, e in enumerate(events) if e["name"] in starters and e["ts"] < end),
                  None)  # fmt: skip
    if anchor is None:
        return None
    deadline = events[anchor]["ts"] + query.window
    breakdown = (events[anchor].get("channel") or "") if query.breakdown else ""
    if query.order == "any_order":
        seen: dict[str, datetime] = {}
        for e in events[anchor:]:
            if e["ts"] <= deadline:
                seen.setdefault(e["name"], e["ts"])
        return breakdown, list(seen.values())
    position, times = anchor, [events[anchor]["ts"]]
    for step in query.steps[1:]:
        later = events[position + 1 : position + 2] if query.order == "strict" else (
            events[position + 1 :])  # fmt: skip
        match = next((i for i, e in enumerate(later) if e["name"] == step), None)
        if match is None or later[match]["ts"] > deadline:
            break
        position += match + 1
        times.append(events[position]["ts"])
    return breakdown, times


BASE = datetime(2026, 11, 20, 15, tzinfo=UTC)  # 23:00 in Asia/Shanghai


@st.composite
def event_streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    size = draw(st.integers(0, 30))
    ids = draw(st.permutations(range(size)))
    rows = []
    for i in range(size):
        person = draw(st.sampled_from(["c0", "c1", "a0", "a1"]))
        row = {"event_id": f"e{ids[i]:02d}", "name": draw(st.sampled_from(NAMES)),
               "ts": BASE + timedelta(minutes=10 * draw(st.integers(-9, 12))),
               "channel": draw(st.sampled_from([None, "web", "app"]))}  # fmt: skip
        rows.append(draw_identity(draw, row, person))
    return rows


NAMES = ["view", "cart", "pay", "other"]


@st.composite
def funnel_queries(draw: st.DrawFn) -> FunnelQuery:
    order = draw(st.sampled_from(["ordered", "strict", "any_order"]))
    names = st.sampled_from(NAMES[:3])
    steps = draw(st.lists(names, min_size=2, max_size=3, unique=order == "any_order"))
    minutes = draw(st.sampled_from([10, 30, 60, 120]))
    breakdown = draw(st.sampled_from([None, "channel"]))
    return FunnelQuery(steps=steps, order=order, window=timedelta(minutes=minutes),
                       date_from=DAY, date_to=DAY, breakdown=breakdown)  # fmt: skip


@settings(max_examples=30, deadline=None)
@given(rows=event_streams(), query=funnel_queries())
def test_runner_matches_brute_force_reference(
    rows: list[dict[str, Any]], query: FunnelQuery
) -> None:
    with (
        tempfile.TemporaryDirectory() as folder,
        open_store(f"duckdb://{folder}/e.duckdb") as store,
    ):
        ingest_rows(store, rows)
        runner = FunnelRunner(query)
        built = store.to_arrow(runner.build(store)).to_pylist()
        result = runner.run(store)
    got = {
        row["person_id"]: (row["breakdown"], [row[f"ts_{k}"] for k in range(len(query.steps))
                                              if row[f"ts_{k}"] is not None])
        for row in built
    }  # fmt: skip
    expected = reference_persons(rows, query)
    assert got == expected
    depths = [len(times) for _, times in expected.values()]
    assert [s.count for s in result.steps] == [
        sum(1 for d in depths if d > k) for k in range(len(query.steps))
    ]


def dims(store: EventStore) -> None:
    store.replace_rows("dim_devices", pa.table({"device_id": ["d1", "d2"],
                                                "kind": ["ios", "pc"]}))
    store.replace_rows("dim_products", pa.table({"sku": ["SK1", "SK2"], "brand_id": ["b01", "b02"],
                                                 "category_id": ["beauty.cream", None]}))
    store.replace_rows("segment_members", pa.table({"segment": ["vip", "vip", "new"],
                                                    "customer_id": ["c1", "c2", "c2"]}))


BREAKDOWN_JOURNEYS = {
    "c1": [ev("view", "08:00", device_id="d1", properties='{"sku": "SK1"}'),
           ev("pay", "08:10", device_id="d1")],
    "c2": [ev("view", "09:00", device_id="d2", properties='{"sku":"SK2","quantity":1}'),
           ev("pay", "09:10", device_id="d2")],
    "c3": [ev("view", "10:00", device_id="d9", properties='{"sku": "SK9"}')],
}


@pytest.mark.parametrize(("breakdown", "expected"), [
    ("device", [("", [1, 0]), ("ios", [1, 1]), ("pc", [1, 1])]),
    ("brand", [("", [1, 0]), ("b01", [1, 1]), ("b02", [1, 1])]),
    ("segment", [("vip", [2, 2]), ("", [1, 0]), ("new", [1, 1])]),
])  # fmt: skip
def test_breakdown_by_device_brand_and_segment(
    store: EventStore, breakdown: str, expected: list[tuple[str, list[int]]]
) -> None:
    dims(store)
    journeys_for(store, BREAKDOWN_JOURNEYS)
    result = funnel(store, ["view", "pay"], breakdown=breakdown).run(store)
    assert [(s.breakdown_value, [step.count for step in s.steps])
            for s in result.breakdown] == expected  # fmt: skip
    assert [step.count for step in result.steps] == [3, 2]  # c2 in two segments counts once


def test_breakdown_segments_limits_the_series(store: EventStore) -> None:
    dims(store)
    journeys_for(store, BREAKDOWN_JOURNEYS)
    result = funnel(store, ["view", "pay"], breakdown="segment",
                    breakdown_segments=["new"]).run(store)  # fmt: skip
    assert [(s.breakdown_value, s.steps[0].count) for s in result.breakdown] == [
        ("", 2), ("new", 1)]


@pytest.mark.parametrize(("filters", "expected"), [
    ({"channels": ["web"]}, [1, 1]),
    ({"devices": ["ios", "pc"]}, [2, 2]),
    ({"devices": ["android"]}, [0, 0]),
    ({"segment": "vip"}, [2, 2]),
    ({"segment": "nobody"}, [0, 0]),
])  # fmt: skip
def test_filters_by_channel_device_and_segment(
    store: EventStore, filters: dict[str, Any], expected: list[int]
) -> None:
    dims(store)
    journeys = {person: [dict(e, channel="web" if person == "c1" else "app") for e in events]
                for person, events in BREAKDOWN_JOURNEYS.items()}  # fmt: skip
    journeys_for(store, journeys)
    result = funnel(store, ["view", "pay"], **filters).run(store)
    assert [step.count for step in result.steps] == expected


def test_segment_rules() -> None:
    with pytest.raises(ValidationFailed) as caught:
        FunnelRunner(FunnelQuery(steps=["a", "b"], date_from=DAY, date_to=DAY,
                                 breakdown="channel", breakdown_segments=["vip"]))
    assert caught.value.code == "segments_without_segment_breakdown"
    with pytest.raises(ValidationFailed) as caught:
        FunnelRunner(FunnelQuery(steps=["a", "b"], date_from=DAY, date_to=DAY, segment=" "))
    assert (caught.value.code, caught.value.attr) == ("blank_segment", "segment")
