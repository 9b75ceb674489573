"""Click heatmaps: where on a page (or page template) people click, on a bins × bins grid.

Semantics (see docs/analytics.md): ``click`` events of the page with both ``x`` and ``y``
in [0, 1]; a click falls in cell ``(min(floor(x·bins), bins-1), min(floor(y·bins),
bins-1))``, so 1.0 belongs to the last cell. The clicked elements come from the
``element`` key of ``properties``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import ibis
import ibis.expr.types as ir
from pydantic import BaseModel

from shequ.analytics.pages import page_template, python_page_template
from shequ.analytics.runner import SCOPED_RULES, QueryRunner, Rule, ScopedQuery, scoped_events

if TYPE_CHECKING:
    from shequ.analytics.store import EventStore

MIN_BINS, MAX_BINS = 4, 100
TOP_ELEMENTS = 10
TEMPLATE_SUFFIX = "/*"
# A JSON string under "element", escapes kept (decoded in Python); portable regex syntax.
ELEMENT_PATTERN = r'"element"\s*:\s*"((?:[^"\\]|\\.)*)"'
CELL, ELEMENT = "cell", "element"


class HeatmapQuery(ScopedQuery):
    """Clicks on ``page`` (exact, or a template such as ``/product/*``) on a grid of
    ``bins`` × ``bins`` cells."""

    page: str
    bins: int = 20


class HeatmapCell(BaseModel):
    """One non-empty cell: column ``x_bin`` (left to right), row ``y_bin`` (top down)."""

    x_bin: int
    y_bin: int
    clicks: int


class ElementClicks(BaseModel):
    """Clicks on one element (the ``element`` property)."""

    element: str
    clicks: int


class HeatmapResult(BaseModel):
    """The grid's non-empty cells by (y_bin, x_bin), the busiest cell's count, the top
    elements (most clicks first, then by name)."""

    page: str
    bins: int
    clicks: int
    cells: list[HeatmapCell]
    max_cell: int
    elements: list[ElementClicks]


def is_template(page: str) -> bool:
    """Whether ``page`` names a page template (``/product/*``) rather than one page."""
    return page.endswith(TEMPLATE_SUFFIX)


def _bins_in_range(query: HeatmapQuery) -> str | None:
    if not MIN_BINS <= query.bins <= MAX_BINS:
        return f"bins must be between {MIN_BINS} and {MAX_BINS}, got {query.bins}"
    return None


def _page_given(query: HeatmapQuery) -> str | None:
    return "a page is required" if not query.page.strip() else None


def _template_well_formed(query: HeatmapQuery) -> str | None:
    if not is_template(query.page):
        return None
    # A template is what the template rule makes of some page under it.
    under = query.page.removesuffix(TEMPLATE_SUFFIX) + "/x"
    if python_page_template(under) != query.page:
        return f"{query.page!r} is not a page template: use one segment and /*, e.g. /product/*"
    return None


HEATMAP_RULES: tuple[Rule[Any], ...] = (
    *SCOPED_RULES,
    Rule("heatmap_bins_out_of_range", "bins", _bins_in_range),
    Rule("blank_page", "page", _page_given),
    Rule("bad_page_template", "page", _template_well_formed),
)


class HeatmapRunner(QueryRunner[HeatmapQuery, HeatmapResult]):
    """Click counts per cell and per element (``build``: the two aggregations, stacked)."""

    query_type = HeatmapQuery
    rules = HEATMAP_RULES

    def build(self, store: EventStore) -> ibis.Table:
        """``kind, x_bin, y_bin, element, clicks``: a ``cell`` row per non-empty cell (null
        element) and an ``element`` row per element as stored (null bins; a null element
        counts the clicks without one)."""
        query = self.query
        events = scoped_events(store, query)
        page = page_template(events.page) if is_template(query.page) else events.page
        clicks = events.filter(
            events.name == "click", page == query.page,
            events.x.between(0, 1), events.y.between(0, 1),
        )  # fmt: skip
        clicks = clicks.mutate(
            x_bin=_bin(clicks.x, query.bins),
            y_bin=_bin(clicks.y, query.bins),
            element=clicks.properties.re_extract(ELEMENT_PATTERN, 1).nullif(""),
        )
        cells = clicks.group_by(["x_bin", "y_bin"]).aggregate(clicks=clicks.count())
        cells = cells.select(kind=ibis.literal(CELL), x_bin=cells.x_bin, y_bin=cells.y_bin,
                             element=ibis.null().cast("string"), clicks=cells.clicks)  # fmt: skip
        elements = clicks.group_by("element").aggregate(clicks=clicks.count())
        no_bin = ibis.null().cast("int64")
        elements = elements.select(kind=ibis.literal(ELEMENT), x_bin=no_bin, y_bin=no_bin,
                                   element=elements.element, clicks=elements.clicks)  # fmt: skip
        return cells.union(elements)

    def run(self, store: EventStore) -> HeatmapResult:
        """Execute the plan; cells are ordered and elements decoded, merged and ranked here."""
        rows = self.execute(store).to_pylist()
        return assemble(self.query, rows)


def _bin(position: ir.FloatingValue, bins: int) -> ir.IntegerValue:
    """``floor(position * bins)``, with 1.0 put in the last bin."""
    return ibis.least((position * bins).floor().cast("int64"), bins - 1)


def decode_element(raw: str) -> str:
    """The element name from the JSON string body the regex captured (escapes decoded)."""
    try:
        decoded = json.loads(f'"{raw}"')
    except ValueError:
        return raw
    return decoded if isinstance(decoded, str) else raw


def assemble(query: HeatmapQuery, rows: list[dict[str, Any]]) -> HeatmapResult:
    """The result from the rows of :meth:`HeatmapRunner.build`."""
    cells = sorted(
        (HeatmapCell(x_bin=row["x_bin"], y_bin=row["y_bin"], clicks=row["clicks"])
         for row in rows if row["kind"] == CELL),
        key=lambda cell: (cell.y_bin, cell.x_bin),
    )  # fmt: skip
    named: dict[str, int] = {}
    for row in rows:
        if row["kind"] == ELEMENT and row["element"] is not None:
            name = decode_element(row["element"])
            named[name] = named.get(name, 0) + int(row["clicks"])
    elements = [ElementClicks(element=name, clicks=count) for name, count in named.items()]
    elements.sort(key=lambda e: (-e.clicks, e.element))
    return HeatmapResult(
        page=query.page, bins=query.bins, clicks=sum(cell.clicks for cell in cells),
        cells=cells, max_cell=max((cell.clicks for cell in cells), default=0),
        elements=elements[:TOP_ELEMENTS],
    )  # fmt: skip
