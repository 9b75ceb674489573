"""Dwell time on hand-written journeys (DuckDB and PostgreSQL) and against a brute-force
reference on random event streams."""

from __future__ import annotations

import statistics
from datetime import UTC, date, datetime, timedelta
from typing import Any

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

from shequ.analytics.dwell import (
    BIN_EDGES,
    CONTENT_TYPES,
    DwellGroup,
    DwellQuery,
    DwellResult,
    DwellRunner,
)
from shequ.analytics.pages import python_page_template
from shequ.analytics.store import EventStore
from shequ.core.errors import ValidationFailed

DAY = date(2026, 11, 20)


def ev(name: str, clock: str, day: int = 20, **fields: Any) -> dict[str, Any]:
    """An event at an Asia/Shanghai wall-clock time on 2026-11-<day>."""
    return {"event": name, "ts": f"2026-11-{day:02d}T{clock}+08:00", **fields}


def dwell(store: EventStore, **options: Any) -> DwellResult:
    options.setdefault("date_from", DAY)
    options.setdefault("date_to", DAY)
    return DwellRunner(DwellQuery(**options)).run(store)


def by_group(result: DwellResult) -> dict[str, DwellGroup]:
    return {group.group: group for group in result.groups}


def test_client_dwell_wins_and_the_next_event_is_the_fallback(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [ev("product_view", "10:00:00", page="/product/SK1", dwell_ms=4200),
               ev("click", "10:00:30", page="/product/SK1"),
               ev("product_view", "10:01:00", page="/product/SK2"),
               ev("add_to_cart", "10:01:12.5", page="/product/SK2"),
               ev("product_view", "10:05:00", page="/product/SK3")],
    })  # fmt: skip
    [group] = dwell(store).groups
    assert (group.group, group.views, group.with_dwell, group.unknown) == ("/product/*", 3, 2, 1)
    assert (group.median_seconds, group.mean_seconds) == (pytest.approx(8.35), pytest.approx(8.35))
    assert [b.views for b in group.histogram] == [0, 0, 1, 1, 0, 0, 0, 0]


def test_the_last_view_of_a_session_is_unknown(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [ev("page_view", "10:00", page="/home"), ev("page_view", "10:30", page="/home"),
               ev("page_view", "11:00:01", page="/home"), ev("page_view", "11:10", page="/home")],
        "c2": [ev("page_view", "10:00", page="/home")],
    })  # fmt: skip
    [home] = dwell(store).groups
    assert (home.views, home.with_dwell, home.unknown) == (5, 2, 3)
    assert (home.median_seconds, home.p90_seconds) == (1199.5, pytest.approx(1679.9))


def test_the_next_event_is_another_persons_never(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [ev("post_view", "10:00", page="/post/p1")],
        "c2": [ev("like", "10:00:05", page="/post/p1")],
    })  # fmt: skip
    assert by_group(dwell(store))["/post/*"].unknown == 1


def test_a_view_before_local_midnight_looks_past_the_range(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [ev("page_view", "23:50", page="/home"), ev("click", "00:10", 21, page="/home"),
               ev("page_view", "00:20", 21, page="/home")],
        "c2": [ev("page_view", "23:59", 19, page="/home"), ev("click", "00:00:30", page="/home")],
    })  # fmt: skip
    [home] = dwell(store).groups
    assert (home.views, home.with_dwell, home.median_seconds) == (1, 1, 1200.0)


def test_ties_and_out_of_order_arrival(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [ev("click", "10:00:20", event_id="z"),
               ev("page_view", "10:00:00", page="/a", event_id="b"),
               ev("page_view", "10:00:00", page="/b", event_id="a")],
    })  # fmt: skip
    groups = by_group(dwell(store, page_grouping="exact"))
    assert (groups["/b"].median_seconds, groups["/a"].median_seconds) == (0.0, 20.0)


def test_visitor_who_logs_in_keeps_one_timeline(store: EventStore) -> None:
    journeys_for(store, {
        "a1": [ev("product_view", "10:00", anonymous_id="a1", page="/product/SK1"),
               ev("login", "10:00:40", anonymous_id="a1", customer_id="c9")],
    })  # fmt: skip
    [group] = dwell(store).groups
    assert group.median_seconds == 40.0


def test_groups_by_content_type_sorted_by_views(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [ev("page_view", "10:00", page="/home", dwell_ms=1000),
               ev("product_view", "10:01", page="/product/SK1", dwell_ms=2000),
               ev("product_view", "10:02", page="/product/SK2", dwell_ms=3000),
               ev("post_view", "10:03", page="/post/p1", dwell_ms=600_000),
               ev("post_view", "10:04", page="/post/p2", dwell_ms=0),
               ev("search", "10:05", page="/search", dwell_ms=9000)],
    })  # fmt: skip
    result = dwell(store, by="content_type")
    assert [(g.group, g.views, g.median_seconds) for g in result.groups] == [
        ("post", 2, 300.0), ("product", 2, 2.5), ("page", 1, 1.0),
    ]  # fmt: skip
    post = result.groups[0]
    assert [(b.label, b.views) for b in post.histogram if b.views] == [("0-1", 1), ("600+", 1)]
    assert [g.group for g in dwell(store, by="content_type", limit=2).groups] == ["post", "product"]


def test_template_pages_and_the_limit(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [ev("product_view", "10:00", page="/product/SK1", dwell_ms=1),
               ev("product_view", "10:01", page="/product/SK2", dwell_ms=1),
               ev("page_view", "10:02", page="/home", dwell_ms=1),
               ev("page_view", "10:03", dwell_ms=1),
               ev("page_view", "10:04", page="/", dwell_ms=1)],
    })  # fmt: skip
    assert [(g.group, g.views) for g in dwell(store).groups] == [
        ("/product/*", 2), ("", 1), ("/", 1), ("/home", 1),
    ]  # fmt: skip
    assert [g.group for g in dwell(store, limit=2).groups] == ["/product/*", ""]
    assert len(dwell(store, page_grouping="exact").groups) == 5


def test_filters_choose_views_not_the_next_event(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [ev("page_view", "10:00", page="/home", channel="web"),
               ev("click", "10:00:07", page="/home", channel="app")],
    })  # fmt: skip
    [home] = dwell(store, channels=["web"]).groups
    assert home.median_seconds == 7.0
    assert dwell(store, channels=["app"]).groups == []


def test_quantiles_interpolate_between_order_statistics(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [ev("page_view", f"10:0{i}", page="/a", dwell_ms=ms)
               for i, ms in enumerate([8000, 1000, 4000, 2000])],
        "c2": [ev("page_view", "10:00", page="/b", dwell_ms=7000)],
    })  # fmt: skip
    groups = by_group(dwell(store))
    spread = [(g.median_seconds, g.p75_seconds, g.p90_seconds, g.mean_seconds)
              for g in (groups["/a"], groups["/b"])]  # fmt: skip
    assert spread == [(3.0, 5.0, pytest.approx(6.8), 3.75), (7.0, 7.0, 7.0, 7.0)]


@pytest.mark.parametrize(
    ("options", "code", "attr"),
    [
        ({"limit": 0}, "limit_out_of_range", "limit"),
        ({"limit": 101}, "limit_out_of_range", "limit"),
        ({"date_to": date(2026, 11, 19)}, "bad_date_range", "date_to"),
        ({"tz": "Mars/Olympus"}, "unknown_timezone", "tz"),
    ],
)
def test_validation_codes(options: dict[str, Any], code: str, attr: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        DwellRunner(DwellQuery(**{"date_from": DAY, "date_to": DAY, **options}))
    assert (info.value.code, info.value.attr) == (code, attr)


def test_unknown_query_field_is_invalid_query() -> None:
    with pytest.raises(ValidationFailed) as info:
        DwellRunner.parse({"date_from": DAY, "date_to": DAY, "by": "referrer"})
    assert (info.value.code, info.value.attr) == ("invalid_query", "by")


# --- brute force reference -----------------------------------------------------------------


def reference(rows: list[dict[str, Any]], query: DwellQuery) -> dict[str, list[float | None]]:
    """Per group, the dwell of each view (None: unknown), by plain Python."""
    start, end = query.bounds()
    links: dict[str, str] = {}
    for row in rows:
        if row.get("anonymous_id") and row.get("customer_id"):
            links.setdefault(row["anonymous_id"], row["customer_id"])
    timelines: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if start <= row["ts"] < end + timedelta(minutes=30):
            anonymous = row.get("anonymous_id")
            person = row.get("customer_id") or links.get(anonymous or "") or f"anon:{anonymous}"
            timelines.setdefault(person, []).append(row)
    groups: dict[str, list[float | None]] = {}
    for events in timelines.values():
        events.sort(key=lambda e: (e["ts"], e["event_id"]))
        for i, event in enumerate(events):
            if event["name"] not in CONTENT_TYPES or event["ts"] >= end:
                continue
            if query.channels is not None and event.get("channel") not in query.channels:
                continue
            groups.setdefault(reference_group(event, query), []).append(
                reference_dwell(event, events[i + 1 : i + 2])
            )
    return groups


def reference_group(event: dict[str, Any], query: DwellQuery) -> str:
    if query.by == "content_type":
        return CONTENT_TYPES[event["name"]]
    page = event.get("page")
    if page is None:
        return ""
    return python_page_template(page) if query.page_grouping == "template" else page


def reference_dwell(event: dict[str, Any], following: list[dict[str, Any]]) -> float | None:
    if event.get("dwell_ms") is not None:
        return event["dwell_ms"] / 1000
    if following and following[0]["ts"] - event["ts"] <= timedelta(minutes=30):
        return (following[0]["ts"] - event["ts"]).total_seconds()
    return None


def expected_group(group: str, dwells: list[float | None]) -> dict[str, Any]:
    known = sorted(d for d in dwells if d is not None)
    spread: dict[str, Any] = {"median_seconds": None, "p75_seconds": None, "p90_seconds": None,
                              "mean_seconds": None}  # fmt: skip
    if len(known) == 1:
        spread = dict.fromkeys(spread, known[0])
    elif known:
        cuts = statistics.quantiles(known, n=20, method="inclusive")
        spread = {"median_seconds": statistics.median(known), "p75_seconds": cuts[14],
                  "p90_seconds": cuts[17], "mean_seconds": statistics.fmean(known)}  # fmt: skip
    edges = [*BIN_EDGES, float("inf")]
    histogram = [sum(1 for d in known if edges[k] <= d < edges[k + 1]) for k in range(8)]
    return {"group": group, "views": len(dwells), "with_dwell": len(known),
            "unknown": len(dwells) - len(known), **spread, "histogram": histogram}  # fmt: skip


BASE = datetime(2026, 11, 20, 15, tzinfo=UTC)  # 23:00 in Asia/Shanghai
NAMES = [*CONTENT_TYPES, "click", "payment"]
PAGES = [None, "/", "/home", "/product/SK1", "/product/SK2", "/post/p1", "/post/p1/comments"]


@st.composite
def event_streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    size = draw(st.integers(0, 30))
    ids = draw(st.permutations(range(size)))
    rows = []
    for i in range(size):
        person = draw(st.sampled_from(["c0", "c1", "a0", "a1"]))
        row = {"event_id": f"e{ids[i]:02d}", "name": draw(st.sampled_from(NAMES)),
               "ts": BASE + timedelta(minutes=10 * draw(st.integers(-9, 12)),
                                      seconds=draw(st.sampled_from([0, 0, 1, 59]))),
               "page": draw(st.sampled_from(PAGES)),
               "channel": draw(st.sampled_from([None, "web", "app"])),
               "dwell_ms": draw(st.sampled_from([None, None, None, 0, 999, 1000, 45_000,
                                                 3_600_000]))}  # fmt: skip
        rows.append(draw_identity(draw, row, person))
    return rows


@st.composite
def dwell_queries(draw: st.DrawFn) -> DwellQuery:
    return DwellQuery(
        by=draw(st.sampled_from(["page", "content_type"])),
        page_grouping=draw(st.sampled_from(["template", "exact"])),
        limit=draw(st.integers(1, 4)), channels=draw(st.sampled_from([None, ["web"]])),
        date_from=DAY, date_to=DAY,
    )  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(rows=event_streams(), query=dwell_queries())
def test_runner_matches_brute_force_reference(
    backend_url: str, rows: list[dict[str, Any]], query: DwellQuery
) -> None:
    with open_store(backend_url) as store:
        ingest_rows(store, rows)
        result = DwellRunner(query).run(store)
    groups = [expected_group(g, dwells) for g, dwells in reference(rows, query).items()]
    groups.sort(key=lambda g: (-g["views"], g["group"]))
    got = [{**g.model_dump(exclude={"histogram"}), "histogram": [b.views for b in g.histogram]}
           for g in result.groups]  # fmt: skip
    assert [g["group"] for g in got] == [g["group"] for g in groups[: query.limit]]
    for found, expected in zip(got, groups, strict=False):
        assert found == {key: pytest.approx(value) if isinstance(value, float) else value
                         for key, value in expected.items()}  # fmt: skip
