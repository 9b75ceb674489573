"""What every behaviour-analytics page shares: the filter bar, errors shown in the page,
CSV export of the page's tables, and ECharts options built on the server.

A page is a ``build(filters, params) -> Analysis`` function; :func:`analysis_page` parses
the filters, runs it, and answers HTML or (``?format=csv``) the page's main table as CSV.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import Response

from shequ.core.clock import parse_day
from shequ.core.errors import Unavailable, ValidationFailed
from shequ.core.web import Services
from shequ.entrypoints.console.formatting import Msg
from shequ.entrypoints.console.i18n import N_, load_translations
from shequ.entrypoints.console.rendering import render, request_locale

CHANNELS = ("app", "wechat_mini", "h5", "douyin", "web")
DEVICES = ("ios", "android", "pc")
CHANNEL_NAMES = {"app": N_("App"), "wechat_mini": N_("WeChat mini program"), "h5": N_("H5"),
                 "douyin": N_("Douyin"), "web": N_("Web")}
DEVICE_NAMES = {"ios": "iOS", "android": "Android", "pc": "PC"}
DEFAULT_DAYS = 7
MAX_DAYS = 366


@dataclass(frozen=True)
class Filters:
    """The filter bar: local days ``date_from..date_to``, one channel, one device kind, one
    saved segment (``""`` = all)."""

    date_from: date
    date_to: date
    channel: str = ""
    device: str = ""
    segment: str = ""
    tz: str = "Asia/Shanghai"

    def query_fields(self) -> dict[str, Any]:
        """The runner query fields these filters set (``ScopedQuery``)."""
        return {
            "date_from": self.date_from, "date_to": self.date_to, "tz": self.tz,
            "channels": [self.channel] if self.channel else None,
            "devices": [self.device] if self.device else None,
            "segment": self.segment or None,
        }  # fmt: skip

    def params(self) -> dict[str, str]:
        """The filters as query parameters (links keep them)."""
        found = {"from": self.date_from.isoformat(), "to": self.date_to.isoformat(),
                 "channel": self.channel, "device": self.device, "segment": self.segment}
        return {key: value for key, value in found.items() if value}

    def previous(self) -> Filters:
        """The period of the same length just before this one (a baseline)."""
        days = (self.date_to - self.date_from).days + 1
        return Filters(self.date_from - timedelta(days=days), self.date_from - timedelta(days=1),
                       self.channel, self.device, self.segment, self.tz)


def _day(params: Mapping[str, str], key: str, default: date) -> date:
    raw = params.get(key, "").strip()
    return parse_day(raw, key) if raw else default


def read_filters(params: Mapping[str, str], services: Services,
                 default_days: int = DEFAULT_DAYS) -> Filters:
    """The filters from query parameters; defaults: the last ``default_days`` local days."""
    today = services.clock.now().astimezone(services.settings.zone).date()
    last = _day(params, "to", today)
    first = _day(params, "from", last - timedelta(days=default_days - 1))
    if last < first:
        raise ValidationFailed("bad_date_range", "the end date is before the start date", "to")
    if (last - first).days >= MAX_DAYS:
        raise ValidationFailed("date_range_too_long", f"at most {MAX_DAYS} days", "to")
    channel = params.get("channel", "")
    if channel and channel not in CHANNELS:
        raise ValidationFailed("unknown_channel", f"unknown channel {channel!r}", "channel")
    device = params.get("device", "")
    if device and device not in DEVICES:
        raise ValidationFailed("unknown_device", f"unknown device kind {device!r}", "device")
    segment = params.get("segment", "").strip()[:64]
    return Filters(first, last, channel, device, segment, services.settings.timezone)


@dataclass
class Table:
    """A table the page shows and exports: header msgids and already-formatted cells."""

    name: str
    header: list[str]
    rows: list[list[Any]] = field(default_factory=list)


@dataclass
class Analysis:
    """What a page built: its context for the template and the tables it exports."""

    context: dict[str, Any]
    tables: list[Table]


PageBuilder = Callable[[Filters, Mapping[str, str]], Analysis]


def csv_response(table: Table, translate: Callable[[str], str], stem: str) -> Response:
    """``table`` as a UTF-8 CSV with a byte-order mark (so Excel opens Chinese correctly)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([translate(column) for column in table.header])
    writer.writerows([translate(cell) if isinstance(cell, Msg) else cell for cell in row]
                     for row in table.rows)
    filename = f"{stem}-{table.name}.csv"
    return Response("\ufeff" + buffer.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"',
                             "Cache-Control": "no-store"})


def analysis_page(request: Request, services: Services, template: str, stem: str,
                  build: PageBuilder, default_days: int = DEFAULT_DAYS) -> Response:
    """Parse filters, build the page, answer HTML or ``?format=csv[&table=name]``."""
    params = dict(request.query_params)
    error: ValidationFailed | Unavailable | None = None
    analysis = Analysis({}, [])
    filters = None
    try:
        filters = read_filters(params, services, default_days)
        analysis = build(filters, params)
    except (ValidationFailed, Unavailable) as exc:
        error = exc
    if params.get("format") == "csv" and error is None:
        wanted = params.get("table") or (analysis.tables[0].name if analysis.tables else "")
        for table in analysis.tables:
            if table.name == wanted:
                return csv_response(table, _translator(request), stem)
        raise ValidationFailed("unknown_table", f"this page has no table {wanted!r}", "table")
    if filters is None:  # the form shows the defaults when the given filters were bad
        filters = read_filters({}, services, default_days)
    context = {
        "filters": filters, "error": error, "channels": CHANNELS, "devices": DEVICES,
        "channel_names": CHANNEL_NAMES, "device_names": DEVICE_NAMES, "params": params,
        "tables": {table.name: table for table in analysis.tables},
        "csv_link": lambda name: f"{request.url.path}?"
        + urlencode({**params, "format": "csv", "table": name}),
        **analysis.context,
    }
    return render(request, template, context, status_code=422 if error is not None and
                  isinstance(error, ValidationFailed) else 200)  # fmt: skip


def _translator(request: Request) -> Callable[[str], str]:
    return load_translations(request_locale(request)).gettext


def split_list(raw: str, limit: int) -> list[str]:
    """``"a, b,,c"`` → ``["a", "b", "c"]`` (at most ``limit`` items)."""
    return [item.strip() for item in raw.replace("，", ",").split(",") if item.strip()][:limit]


def sequence_option(labels: Sequence[str], values: Sequence[float], name: str) -> dict[str, Any]:
    """A horizontal bar chart option (funnel steps, histograms)."""
    return {
        "animation": False,
        "grid": {"left": 120, "right": 40, "top": 16, "bottom": 28},
        "tooltip": {"trigger": "axis"},
        "xAxis": {"type": "value", "splitLine": {"lineStyle": {"color": "#eef1f6"}}},
        "yAxis": {"type": "category", "data": list(labels), "inverse": True},
        "series": [{"name": name, "type": "bar", "data": list(values), "barMaxWidth": 28,
                    "itemStyle": {"color": "#2f6bff", "borderRadius": [0, 4, 4, 0]},
                    "label": {"show": True, "position": "right"}}],
    }  # fmt: skip
