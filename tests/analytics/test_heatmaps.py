"""Click heatmaps on hand-written journeys (DuckDB and PostgreSQL) and against a brute-force
reference on random click streams."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from journeys import (  # the two fixtures are used by name: pg_url, store
    backend_url_fixture,  # noqa: F401
    ingest_rows,
    journeys_for,
    open_store,
    pg_url_fixture,  # noqa: F401
    store_fixture,  # noqa: F401,
)

from shequ.analytics.heatmaps import TOP_ELEMENTS, HeatmapQuery, HeatmapResult, HeatmapRunner
from shequ.analytics.pages import python_page_template
from shequ.analytics.store import EventStore
from shequ.core.errors import ValidationFailed

DAY = date(2026, 11, 20)


def click(clock: str, x: float | None, y: float | None, page: str = "/product/SK1",
          element: str | None = None, day: int = 20, **fields: Any) -> dict[str, Any]:  # fmt: skip
    """A click at an Asia/Shanghai wall-clock time on 2026-11-<day>."""
    properties = json.dumps({"element": element}) if element is not None else None
    return {"event": "click", "ts": f"2026-11-{day:02d}T{clock}+08:00", "page": page,
            "x": x, "y": y, "properties": properties, **fields}  # fmt: skip


def heatmap(store: EventStore, page: str = "/product/SK1", **options: Any) -> HeatmapResult:
    options.setdefault("date_from", DAY)
    options.setdefault("date_to", DAY)
    return HeatmapRunner(HeatmapQuery(page=page, **options)).run(store)


def cells(result: HeatmapResult) -> list[tuple[int, int, int]]:
    return [(c.x_bin, c.y_bin, c.clicks) for c in result.cells]


def test_cells_edges_and_order(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [click("10:00", 1.0, 1.0), click("10:01", 0.0, 0.0), click("10:02", 0.999, 0.0),
               click("10:03", 0.25, 0.5), click("10:04", 0.2499, 0.5), click("10:05", 0.05, 1.0),
               click("10:06", None, 0.5), click("10:07", 0.5, None),
               {"event": "page_view", "ts": "2026-11-20T10:08:00+08:00", "page": "/product/SK1",
                "x": 0.5, "y": 0.5}],
    })  # fmt: skip
    result = heatmap(store, bins=4)
    assert cells(result) == [(0, 0, 1), (3, 0, 1), (0, 2, 1), (1, 2, 1), (0, 3, 1), (3, 3, 1)]
    assert (result.bins, result.clicks, result.max_cell, result.page) == (4, 6, 1, "/product/SK1")


def test_x_of_one_is_the_last_bin_for_any_bin_count(store: EventStore) -> None:
    journeys_for(store, {"c1": [click("10:00", 1.0, 0.1), click("10:01", 1.0, 0.1)]})
    assert cells(heatmap(store, bins=100)) == [(99, 10, 2)]
    assert cells(heatmap(store, bins=7)) == [(6, 0, 2)]
    assert heatmap(store, bins=7).max_cell == 2


def test_template_pages_and_exact_pages(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [click("10:00", 0.1, 0.1, page="/product/SK1"),
               click("10:01", 0.1, 0.1, page="/product/SK2"),
               click("10:02", 0.1, 0.1, page="/product/SK2/reviews"),
               click("10:03", 0.1, 0.1, page="/product"),
               click("10:04", 0.1, 0.1, page="/home")],
    })  # fmt: skip
    assert heatmap(store, "/product/*").clicks == 3
    assert heatmap(store, "/product/SK2").clicks == 1
    assert heatmap(store, "/product").clicks == 1
    assert heatmap(store, "/home").clicks == 1


def test_top_elements(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [click("10:00", 0.8, 0.9, element="buy_button"),
               click("10:01", 0.8, 0.9, element="buy_button"),
               click("10:02", 0.5, 0.1, properties='{"element":"buy\\u005fbutton"}'),
               click("10:03", 0.5, 0.5, element="说\"明\""),
               click("10:04", 0.5, 0.5, element="banner"),
               click("10:05", 0.5, 0.5, properties='{"element": ""}'),
               click("10:06", 0.5, 0.5, properties='{"elements": "tab_bar"}'),
               click("10:07", 0.5, 0.5)],
    })  # fmt: skip
    result = heatmap(store)
    assert [(e.element, e.clicks) for e in result.elements] == [
        ("buy_button", 3), ("banner", 1), ("说\"明\"", 1),
    ]  # fmt: skip
    assert result.clicks == 8


def test_range_is_local_days_and_filters_apply(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [click("23:59", 0.1, 0.1, day=19), click("00:00", 0.1, 0.1, channel="app"),
               click("23:59:59", 0.1, 0.1, channel="web"), click("00:00", 0.1, 0.1, day=21)],
    })  # fmt: skip
    assert heatmap(store).clicks == 2
    assert heatmap(store, channels=["web"]).clicks == 1
    empty = heatmap(store, channels=["mini_program"])
    assert (empty.clicks, empty.cells, empty.max_cell, empty.elements) == (0, [], 0, [])


@pytest.mark.parametrize(
    ("options", "code", "attr"),
    [
        ({"bins": 3}, "heatmap_bins_out_of_range", "bins"),
        ({"bins": 101}, "heatmap_bins_out_of_range", "bins"),
        ({"page": ""}, "blank_page", "page"),
        ({"page": "  "}, "blank_page", "page"),
        ({"page": "/*"}, "bad_page_template", "page"),
        ({"page": "/product/SK1/*"}, "bad_page_template", "page"),
        ({"date_to": date(2026, 11, 19)}, "bad_date_range", "date_to"),
    ],
)
def test_validation_codes(options: dict[str, Any], code: str, attr: str) -> None:
    fields: dict[str, Any] = {"page": "/product/*", "date_from": DAY, "date_to": DAY}
    with pytest.raises(ValidationFailed) as info:
        HeatmapRunner(HeatmapQuery(**{**fields, **options}))
    assert (info.value.code, info.value.attr) == (code, attr)


@pytest.mark.parametrize("bins", [4, 100])
def test_bin_limits_are_allowed(bins: int) -> None:
    query = HeatmapQuery(page="/home", bins=bins, date_from=DAY, date_to=DAY)
    assert HeatmapRunner(query).query.bins == bins


def test_unknown_query_field_is_invalid_query() -> None:
    with pytest.raises(ValidationFailed) as info:
        HeatmapRunner.parse({"page": "/home", "date_from": DAY, "date_to": DAY, "zoom": 2})
    assert (info.value.code, info.value.attr) == ("invalid_query", "zoom")


# --- brute force reference -----------------------------------------------------------------


def reference(rows: list[dict[str, Any]], query: HeatmapQuery) -> dict[str, Any]:
    """Cells and element counts, by plain Python."""
    start, end = query.bounds()
    grid: dict[tuple[int, int], int] = {}
    named: dict[str, int] = {}
    for row in rows:
        page = row.get("page")
        if page is not None and query.page.endswith("/*"):
            page = python_page_template(page)
        if row["name"] != "click" or page != query.page or not start <= row["ts"] < end:
            continue
        if query.channels is not None and row.get("channel") not in query.channels:
            continue
        if row.get("x") is None or row.get("y") is None:
            continue
        cell = (min(math.floor(row["x"] * query.bins), query.bins - 1),
                min(math.floor(row["y"] * query.bins), query.bins - 1))  # fmt: skip
        grid[cell] = grid.get(cell, 0) + 1
        element = json.loads(row["properties"]).get("element") if row.get("properties") else None
        if element:
            named[element] = named.get(element, 0) + 1
    elements = sorted(named.items(), key=lambda item: (-item[1], item[0]))[:TOP_ELEMENTS]
    return {"cells": sorted(((x, y, n) for (x, y), n in grid.items()), key=lambda c: (c[1], c[0])),
            "elements": elements, "clicks": sum(grid.values())}  # fmt: skip


BASE = datetime(2026, 11, 20, 15, tzinfo=UTC)  # 23:00 in Asia/Shanghai
POSITIONS = [None, 0.0, 0.1, 0.25, 0.3, 0.5, 0.7, 0.999, 1.0]
PROPERTIES = [None, "{}", '{"element": "buy_button"}', '{"element":"banner"}',
              '{"element": "b\\u0075y_button"}', '{"element": ""}', '{"element": "a\\"b"}',
              '{"element": "标签"}', '{"other": 1, "element": "tab_bar"}']  # fmt: skip


@st.composite
def click_streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    size = draw(st.integers(0, 30))
    return [
        {"event_id": f"e{i:02d}", "customer_id": draw(st.sampled_from(["c0", "c1"])),
         "name": draw(st.sampled_from(["click", "click", "click", "page_view"])),
         "ts": BASE + timedelta(minutes=10 * draw(st.integers(-9, 12))),
         "page": draw(st.sampled_from([None, "/home", "/product/SK1", "/product/SK2"])),
         "channel": draw(st.sampled_from([None, "web", "app"])),
         "x": draw(st.sampled_from(POSITIONS)), "y": draw(st.sampled_from(POSITIONS)),
         "properties": draw(st.sampled_from(PROPERTIES))}
        for i in range(size)
    ]  # fmt: skip


@st.composite
def heatmap_queries(draw: st.DrawFn) -> HeatmapQuery:
    return HeatmapQuery(
        page=draw(st.sampled_from(["/home", "/product/SK1", "/product/*"])),
        bins=draw(st.integers(4, 12)), channels=draw(st.sampled_from([None, ["web", "app"]])),
        date_from=DAY, date_to=DAY,
    )  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(rows=click_streams(), query=heatmap_queries())
def test_runner_matches_brute_force_reference(
    backend_url: str, rows: list[dict[str, Any]], query: HeatmapQuery
) -> None:
    with open_store(backend_url) as store:
        ingest_rows(store, rows)
        result = HeatmapRunner(query).run(store)
    expected = reference(rows, query)
    assert cells(result) == expected["cells"]
    assert [(e.element, e.clicks) for e in result.elements] == expected["elements"]
    assert result.clicks == expected["clicks"]
    assert result.max_cell == max((n for _, _, n in expected["cells"]), default=0)
