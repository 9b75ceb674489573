"""Paths on hand-written journeys (DuckDB and PostgreSQL) and against a brute-force reference
on random event streams (both backends)."""

from __future__ import annotations

from collections import Counter
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

from shequ.analytics.pages import python_page_template
from shequ.analytics.paths import (
    PageCount,
    PathItem,
    PathLink,
    PathNode,
    PathsQuery,
    PathsResult,
    PathsRunner,
)
from shequ.analytics.store import EventStore
from shequ.core.errors import ValidationFailed

DAY = date(2026, 11, 20)


def ev(name: str, page: str | None, clock: str, day: int = 20, **fields: Any) -> dict[str, Any]:
    """An event at an Asia/Shanghai wall-clock time on 2026-11-<day>."""
    return {"event": name, "page": page, "ts": f"2026-11-{day:02d}T{clock}+08:00", **fields}


def pv(page: str, clock: str, day: int = 20, **fields: Any) -> dict[str, Any]:
    return ev("page_view", page, clock, day, **fields)


def paths(store: EventStore, date_to: date = DAY, **options: Any) -> PathsResult:
    return PathsRunner(PathsQuery(date_from=DAY, date_to=date_to, **options)).run(store)


def pages(result: PathsResult) -> list[tuple[list[str], int]]:
    return [(item.pages, item.count) for item in result.paths]


def test_paths_collapse_repeats_skip_clicks_and_group_templates(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [pv("/home", "10:00"), ev("click", "/home", "10:01"), ev("login", None, "10:02"),
               pv("/home", "10:03"), ev("product_view", "/product/SK1", "10:04"),
               ev("click", "/banner", "10:05"), ev("product_view", "/product/SK2", "10:06"),
               pv("/cart", "10:07"), ev("checkout", "", "10:08")],
        "c2": [pv("/home", "10:00"), ev("product_view", "/product/SK9", "10:01"),
               pv("/cart", "10:02")],
        "c3": [ev("post_view", "/post/p000123", "10:00"), ev("like", "/post/p000123", "10:01")],
        "c4": [pv("/home", "10:00")],
    })  # fmt: skip
    grouped = paths(store)
    assert pages(grouped) == [
        (["/home", "/product/*", "/cart"], 2), (["/home"], 1), (["/post/*"], 1),
    ]  # fmt: skip
    assert [item.share for item in grouped.paths] == [0.5, 0.25, 0.25]
    assert (grouped.sessions, grouped.anchor_page, grouped.next_pages) == (4, None, [])
    assert pages(paths(store, page_grouping="exact")) == [
        (["/home"], 1), (["/home", "/product/SK1", "/product/SK2", "/cart"], 1),
        (["/home", "/product/SK9", "/cart"], 1), (["/post/p000123"], 1),
    ]  # fmt: skip


def test_sessions_split_after_more_than_30_minutes_of_any_activity(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [pv("/home", "10:00"), pv("/cart", "10:30"), pv("/pay", "11:00:01")],
        "c2": [pv("/home", "10:00"), ev("login", None, "10:25"), pv("/cart", "10:50")],
        "c3": [pv("/home", "10:00"), ev("click", "/home", "10:29"), pv("/home", "10:59")],
    })  # fmt: skip
    assert pages(paths(store)) == [(["/home", "/cart"], 2), (["/home"], 1), (["/pay"], 1)]


def test_depth_truncates_and_a_short_session_is_not_padded(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [pv("/home", "10:00"), pv("/search", "10:01"), pv("/product/SK1", "10:02"),
               pv("/cart", "10:03"), pv("/checkout", "10:04")],
        "c2": [pv("/home", "10:00")],
    })  # fmt: skip
    result = paths(store, depth=3)
    assert pages(result) == [(["/home"], 1), (["/home", "/search", "/product/*"], 1)]
    assert [(node.id, node.count) for node in result.nodes] == [
        ("0:/home", 2), ("1:/search", 1), ("2:/product/*", 1),
    ]  # fmt: skip
    assert [(link.source, link.target, link.value) for link in result.links] == [
        ("0:/home", "1:/search", 1), ("1:/search", "2:/product/*", 1),
    ]  # fmt: skip


def test_start_page_goes_forward_from_its_first_visit(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [pv("/home", "10:00"), pv("/search", "10:01"), pv("/product/SK1", "10:02"),
               pv("/cart", "10:03"), pv("/product/SK2", "10:04"), pv("/pay", "10:05")],
        "c2": [pv("/home", "10:00"), pv("/product/SK3", "10:01")],
        "c3": [pv("/home", "10:00"), pv("/cart", "10:01")],
    })  # fmt: skip
    result = paths(store, start_page="/product/SK1")
    assert result.anchor_page == "/product/*"
    assert result.sessions == 2
    assert pages(result) == [
        (["/product/*"], 1), (["/product/*", "/cart", "/product/*", "/pay"], 1),
    ]  # fmt: skip
    assert result.next_pages == [PageCount(page="/cart", count=1, share=0.5)]
    assert result.previous_pages == [PageCount(page="/home", count=1, share=0.5),
                                     PageCount(page="/search", count=1, share=0.5)]  # fmt: skip
    assert [node.id for node in result.nodes] == [
        "0:/product/*", "1:/cart", "2:/product/*", "3:/pay",
    ]  # fmt: skip
    exact = paths(store, start_page="/product/SK1", page_grouping="exact")
    assert pages(exact) == [(["/product/SK1", "/cart", "/product/SK2", "/pay"], 1)]
    assert paths(store, start_page="/nowhere").model_dump() == {
        "anchor_page": "/nowhere", "sessions": 0, "paths": [], "nodes": [], "links": [],
        "next_pages": [], "previous_pages": [],
    }  # fmt: skip


def test_end_page_goes_backwards_from_its_first_visit(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [pv("/home", "10:00"), pv("/cart", "10:01"), pv("/product/SK1", "10:02"),
               pv("/cart", "10:03"), pv("/pay", "10:04")],
        "c2": [pv("/home", "10:00"), pv("/search", "10:01"), pv("/product/SK1", "10:02"),
               pv("/cart", "10:03"), pv("/checkout", "10:04")],
        "c3": [pv("/cart", "10:00")],
        "c4": [pv("/home", "10:00"), pv("/me", "10:01")],
    })  # fmt: skip
    result = paths(store, end_page="/cart", depth=3)
    assert pages(result) == [
        (["/cart"], 1), (["/home", "/cart"], 1), (["/search", "/product/*", "/cart"], 1),
    ]  # fmt: skip
    assert result.nodes == [
        PathNode(id="-2:/search", name="/search", step=-2, count=1),
        PathNode(id="-1:/home", name="/home", step=-1, count=1),
        PathNode(id="-1:/product/*", name="/product/*", step=-1, count=1),
        PathNode(id="0:/cart", name="/cart", step=0, count=3),
    ]
    assert result.links == [
        PathLink(source="-2:/search", target="-1:/product/*", value=1),
        PathLink(source="-1:/home", target="0:/cart", value=1),
        PathLink(source="-1:/product/*", target="0:/cart", value=1),
    ]
    assert [(p.page, p.count) for p in result.previous_pages] == [("/home", 1), ("/product/*", 1)]
    assert [(p.page, p.count) for p in result.next_pages] == [("/checkout", 1), ("/product/*", 1)]
    assert result.previous_pages[0].share == pytest.approx(1 / 3)


def test_sankey_keeps_nodes_and_links_of_at_least_min_count(store: EventStore) -> None:
    journeys_for(store, {
        **{f"c{i}": [pv("/home", "10:00"), pv("/cart", "10:01")] for i in range(3)},
        "c9": [pv("/home", "10:00"), pv("/search", "10:01")],
    })  # fmt: skip
    result = paths(store, min_count=2)
    assert [(node.id, node.count) for node in result.nodes] == [("0:/home", 4), ("1:/cart", 3)]
    assert result.links == [PathLink(source="0:/home", target="1:/cart", value=3)]
    assert len(result.paths) == 2
    everything = paths(store)
    assert [(link.target, link.value) for link in everything.links] == [
        ("1:/cart", 3), ("1:/search", 1),
    ]  # fmt: skip


def test_limit_and_ties_sorted_by_path(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [pv("/me", "10:00")],
        "c2": [pv("/cart", "10:00"), pv("/me", "10:01")],
        "c3": [pv("/cart", "10:00")],
        "c4": [pv("/home", "10:00")],
        "c5": [pv("/home", "10:00")],
    })  # fmt: skip
    result = paths(store, limit=3)
    assert [(item.pages, item.count, item.share) for item in result.paths] == [
        (["/home"], 2, 0.4), (["/cart"], 1, 0.2), (["/cart", "/me"], 1, 0.2),
    ]  # fmt: skip
    assert result.sessions == 5


def test_ties_in_time_are_broken_by_event_id(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [pv("/home", "10:00", event_id="e1"), pv("/cart", "10:00", event_id="e2")],
        "c2": [pv("/home", "10:00", event_id="e4"), pv("/cart", "10:00", event_id="e3")],
    })  # fmt: skip
    assert pages(paths(store)) == [(["/cart", "/home"], 1), (["/home", "/cart"], 1)]


def test_out_of_order_arrival_is_ordered_by_time(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [pv("/pay", "10:02"), pv("/home", "10:00"), pv("/cart", "10:01"),
               pv("/home", "09:00")],
    })  # fmt: skip
    assert pages(paths(store)) == [(["/home"], 1), (["/home", "/cart", "/pay"], 1)]


def test_a_session_crossing_local_midnight_in_shanghai(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [pv("/home", "23:50"), pv("/cart", "00:10", day=21), pv("/pay", "00:20", day=21)],
        "c2": [pv("/me", "23:59", day=19), pv("/home", "00:01")],
    })  # fmt: skip
    assert pages(paths(store)) == [(["/home"], 2)]
    assert pages(paths(store, date_to=date(2026, 11, 21))) == [
        (["/home"], 1), (["/home", "/cart", "/pay"], 1),
    ]  # fmt: skip
    assert pages(paths(store, tz="UTC")) == [(["/home", "/cart", "/pay"], 1)]


def test_filters_apply_to_the_events_before_sessions_are_cut(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [pv("/home", "10:00", channel="web"), pv("/cart", "10:01", channel="app"),
               pv("/pay", "10:02", channel="web")],
        "c2": [pv("/home", "10:00", channel="app")],
        "c3": [pv("/me", "10:00", channel="web"), pv("/home", "10:20", channel="app"),
               pv("/cart", "10:40", channel="web")],
    })  # fmt: skip
    assert pages(paths(store, channels=["web"])) == [
        (["/cart"], 1), (["/home", "/pay"], 1), (["/me"], 1),
    ]  # fmt: skip
    assert pages(paths(store, channels=["web", "app"])) == [
        (["/home"], 1), (["/home", "/cart", "/pay"], 1), (["/me", "/home", "/cart"], 1),
    ]  # fmt: skip


def test_anonymous_visitor_who_logs_in_has_one_path(store: EventStore) -> None:
    journeys_for(store, {
        "a1": [pv("/home", "10:00", anonymous_id="a1"),
               ev("login", "/login", "10:01", anonymous_id="a1", customer_id="c1"),
               pv("/cart", "10:02", customer_id="c1")],
    })  # fmt: skip
    assert pages(paths(store)) == [(["/home", "/login", "/cart"], 1)]


@pytest.mark.parametrize(
    ("options", "code", "attr"),
    [
        ({"start_page": "/home", "end_page": "/cart"}, "start_and_end_page", "end_page"),
        ({"start_page": " "}, "blank_page", "start_page"),
        ({"end_page": ""}, "blank_page", "end_page"),
        ({"depth": 1}, "path_depth_out_of_range", "depth"),
        ({"depth": 11}, "path_depth_out_of_range", "depth"),
        ({"limit": 0}, "path_limit_out_of_range", "limit"),
        ({"limit": 101}, "path_limit_out_of_range", "limit"),
        ({"min_count": 0}, "path_min_count_out_of_range", "min_count"),
        ({"date_to": date(2026, 11, 19)}, "bad_date_range", "date_to"),
        ({"tz": "Mars/Olympus"}, "unknown_timezone", "tz"),
        ({"segment": " "}, "blank_segment", "segment"),
    ],
)
def test_validation_codes(options: dict[str, Any], code: str, attr: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        PathsRunner(PathsQuery(**{"date_from": DAY, "date_to": DAY, **options}))
    assert (info.value.code, info.value.attr) == (code, attr)


def test_parse_rejects_unknown_fields_and_bad_grouping() -> None:
    with pytest.raises(ValidationFailed) as info:
        PathsRunner.parse({"date_from": DAY, "date_to": DAY, "steps": 3})
    assert (info.value.code, info.value.attr) == ("invalid_query", "steps")
    with pytest.raises(ValidationFailed) as info:
        PathsRunner.parse({"date_from": DAY, "date_to": DAY, "page_grouping": "regex"})
    assert (info.value.code, info.value.attr) == ("invalid_query", "page_grouping")
    query = PathsRunner.parse({"date_from": "2026-11-20", "date_to": "2026-11-20"})
    defaults = (query.depth, query.limit, query.min_count, query.page_grouping)
    assert defaults == (5, 20, 1, "template")


# --- brute force reference -----------------------------------------------------------------


def reference_result(rows: list[dict[str, Any]], query: PathsQuery) -> PathsResult:
    """The paths result by plain Python: sessions, visits, anchor, truncation, counts."""
    start, end = query.bounds()
    links: dict[str, str] = {}
    for row in rows:
        if row.get("anonymous_id") and row.get("customer_id"):
            links.setdefault(row["anonymous_id"], row["customer_id"])
    timelines: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if not start <= row["ts"] < end:
            continue
        if query.channels is not None and row.get("channel") not in query.channels:
            continue
        anonymous = row.get("anonymous_id")
        person = row.get("customer_id") or links.get(anonymous or "") or f"anon:{anonymous}"
        timelines.setdefault(person, []).append(row)
    walks = []
    for events in timelines.values():
        events.sort(key=lambda e: (e["ts"], e["event_id"]))
        session: list[dict[str, Any]] = []
        for event in events:
            if session and event["ts"] - session[-1]["ts"] > timedelta(minutes=30):
                walks.append(reference_walk(session, query))
                session = []
            session.append(event)
        walks.append(reference_walk(session, query))
    return reference_counts([walk for walk in walks if walk is not None], query)


def reference_walk(session: list[dict[str, Any]], query: PathsQuery) -> Any:
    """(path, page before the anchor, page after it) of one session, or None."""
    visits: list[str] = []
    for event in session:
        if not event.get("page") or event["name"] == "click":
            continue
        page = event["page"]
        if query.page_grouping == "template":
            page = python_page_template(page)
        if not visits or visits[-1] != page:
            visits.append(page)
    target = query.start_page or query.end_page
    if target is not None and query.page_grouping == "template":
        target = python_page_template(target)
    if not visits or (target is not None and target not in visits):
        return None
    anchor = 0 if target is None else visits.index(target)
    if query.end_page is not None:
        path = visits[max(0, anchor - query.depth + 1) : anchor + 1]
    else:
        path = visits[anchor : anchor + query.depth]
    before = visits[anchor - 1] if anchor > 0 else None
    after = visits[anchor + 1] if anchor + 1 < len(visits) else None
    return path, before, after


def reference_counts(walks: list[Any], query: PathsQuery) -> PathsResult:
    total = len(walks)
    counted = Counter(tuple(path) for path, _, _ in walks)
    ranked = sorted(counted.items(), key=lambda item: (-item[1], item[0]))
    nodes: Counter[tuple[int, str]] = Counter()
    edges: Counter[tuple[int, str, str]] = Counter()
    for path, _, _ in walks:
        shift = 1 - len(path) if query.end_page is not None else 0
        for i, page in enumerate(path):
            nodes[(i + shift, page)] += 1
            if i + 1 < len(path):
                edges[(i + shift, page, path[i + 1])] += 1
    anchored = (query.start_page or query.end_page) is not None

    def neighbours(position: int) -> list[PageCount]:
        if not anchored:
            return []
        found = Counter(walk[position] for walk in walks if walk[position] is not None)
        return [PageCount(page=page, count=count, share=count / total)
                for page, count in sorted(found.items(), key=lambda i: (-i[1], i[0]))]  # fmt: skip

    return PathsResult(
        anchor_page=query.anchor_page(),
        sessions=total,
        paths=[PathItem(pages=list(p), count=c, share=c / total) for p, c in ranked[: query.limit]],
        nodes=[PathNode(id=f"{s}:{p}", name=p, step=s, count=c)
               for (s, p), c in sorted(nodes.items(), key=lambda i: (i[0][0], -i[1], i[0][1]))
               if c >= query.min_count],
        links=[PathLink(source=f"{s}:{a}", target=f"{s + 1}:{b}", value=c)
               for (s, a, b), c in sorted(edges.items(), key=lambda i: (i[0][0], -i[1], i[0]))
               if c >= query.min_count],
        next_pages=neighbours(2),
        previous_pages=neighbours(1),
    )  # fmt: skip


BASE = datetime(2026, 11, 20, 15, tzinfo=UTC)  # 23:00 in Asia/Shanghai
PAGES = [None, "", "/home", "/cart", "/product/A", "/product/B", "/post/p1"]


@st.composite
def event_streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    size = draw(st.integers(0, 40))
    ids = draw(st.permutations(range(size)))
    rows = []
    for i in range(size):
        person = draw(st.sampled_from(["c0", "c1", "a0", "a1"]))
        row = {"event_id": f"e{ids[i]:02d}", "page": draw(st.sampled_from(PAGES)),
               "name": draw(st.sampled_from(["page_view", "click", "product_view", "login"])),
               "ts": BASE + timedelta(minutes=10 * draw(st.integers(-9, 12))),
               "channel": draw(st.sampled_from([None, "web", "app"]))}  # fmt: skip
        rows.append(draw_identity(draw, row, person))
    return rows


@st.composite
def paths_queries(draw: st.DrawFn) -> PathsQuery:
    anchor = draw(st.sampled_from([None, "start_page", "end_page"]))
    page = draw(st.sampled_from(["/home", "/cart", "/product/A", "/product/Z", "/post/*"]))
    return PathsQuery(
        date_from=DAY, date_to=draw(st.sampled_from([DAY, date(2026, 11, 21)])),
        page_grouping=draw(st.sampled_from(["exact", "template"])),
        depth=draw(st.integers(2, 4)), limit=draw(st.integers(1, 4)),
        min_count=draw(st.integers(1, 2)),
        channels=draw(st.sampled_from([None, ["web"], ["web", "app"]])),
        **({} if anchor is None else {anchor: page}),
    )  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(rows=event_streams(), query=paths_queries())
def test_runner_matches_brute_force_reference(
    backend_url: str, rows: list[dict[str, Any]], query: PathsQuery
) -> None:
    with open_store(backend_url) as store:
        ingest_rows(store, rows)
        result = PathsRunner(query).run(store)
    assert result == reference_result(rows, query)
