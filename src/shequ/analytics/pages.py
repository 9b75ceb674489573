"""Page grouping shared by paths, dwell time and heatmaps."""

from __future__ import annotations

from typing import Literal, cast

import ibis
import ibis.expr.types as ir

PageGrouping = Literal["exact", "template"]


def page_template(page: ir.StringValue) -> ir.StringValue:
    """``/product/SK100001`` → ``/product/*``: keep the first path segment and replace the
    rest by ``*`` when there is more than one segment (``/home`` and ``/`` stay as they are).

    Plain ``substr``/``find`` (no regex back-references), so it compiles the same on DuckDB,
    PostgreSQL and PySpark.
    """
    slash = page.substr(1).find("/")
    grouped = ibis.ifelse(slash >= 0, page.substr(0, slash + 1).concat("/*"), page)
    return cast(ir.StringValue, grouped)


def python_page_template(page: str) -> str:
    """The same rule in Python (references in tests, labels in the console)."""
    slash = page.find("/", 1)
    return page[:slash] + "/*" if slash >= 0 else page


def grouped_page(page: ir.StringValue, grouping: PageGrouping) -> ir.StringValue:
    """The page as grouped by ``grouping``."""
    return page_template(page) if grouping == "template" else page
