"""The quarterly Needs White Paper: :class:`NeedsReport` → printable HTML (Jinja2, inline
SVG charts, A4 CSS) → PDF (WeasyPrint)."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from shequ.domains.content.needs_schemas import NeedsReport

TEMPLATES = Path(__file__).parent / "templates"
PALETTE = ("#2f6fdf", "#e4572e", "#17a398", "#f2a541", "#8e5ad8", "#5b8c2a", "#d64f8c",
           "#6c757d")
FONT = "'WenQuanYi Micro Hei', 'Noto Sans CJK SC', sans-serif"
LINE_TOPICS = 6


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = percent
    env.filters["signed_pp"] = signed_pp
    env.filters["num"] = lambda v: f"{v:,}" if isinstance(v, int) else v
    env.filters["score"] = lambda v: "—" if v is None else f"{v:.2f}"
    return env


def percent(value: float | None, digits: int = 1) -> str:
    """``0.372`` → ``37.2 %``; ``None`` → ``—``."""
    return "—" if value is None else f"{100.0 * value:.{digits}f} %"


def signed_pp(value: float | None) -> str:
    """A change in percentage points with its sign (``+3.1 pp``)."""
    return "—" if value is None else f"{value:+.1f} pp"


def sentiment_colour(score: float) -> str:
    """Red (0) → pale yellow (0.5) → green (1)."""
    low, mid, high = (214, 69, 65), (250, 240, 200), (46, 160, 90)
    t = max(0.0, min(1.0, score))
    a, b, u = (low, mid, t / 0.5) if t < 0.5 else (mid, high, (t - 0.5) / 0.5)
    r, g, bl = (round(x + (y - x) * u) for x, y in zip(a, b, strict=True))
    return f"#{r:02x}{g:02x}{bl:02x}"


def _text(x: float, y: float, body: str, *, size: float = 11, anchor: str = "start",
          fill: str = "#333", weight: str = "normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'fill="{fill}" font-weight="{weight}" font-family="{FONT}">{escape(body)}</text>')


@dataclass(frozen=True)
class Bar:
    """One bar: label, value (a share), optional previous value and colour score."""

    label: str
    value: float
    previous: float | None
    score: float | None


def bar_chart(bars: list[Bar], *, width: int = 640) -> Markup:
    """Horizontal share bars coloured by sentiment, a tick at the previous quarter's share."""
    row, left, right, top = 26, 90, 70, 8
    height = top + row * len(bars) + 24
    scale_max = max([b.value for b in bars] + [b.previous or 0.0 for b in bars] + [0.01])
    span = width - left - right
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img">']
    for i, bar in enumerate(bars):
        y = top + i * row
        length = span * bar.value / scale_max
        colour = sentiment_colour(bar.score) if bar.score is not None else "#9aa5b1"
        parts.append(_text(left - 8, y + 15, bar.label, anchor="end", size=12))
        parts.append(f'<rect x="{left}" y="{y + 3}" width="{max(length, 1.0):.1f}" height="16" '
                     f'rx="2" fill="{colour}" stroke="#555" stroke-width="0.4"/>')
        label_x = left + length + 6
        if bar.previous is not None:
            px = left + span * bar.previous / scale_max
            parts.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{y}" y2="{y + 22}" '
                         'stroke="#222" stroke-width="2"/>')
            label_x = max(label_x, px + 6)
        parts.append(_text(label_x, y + 15, percent(bar.value), size=11))
    axis_y = top + row * len(bars) + 4
    parts.append(f'<line x1="{left}" x2="{left + span}" y1="{axis_y}" y2="{axis_y}" '
                 'stroke="#bbb"/>')
    parts.append(_text(left, axis_y + 16, "0 %", size=9, fill="#777"))
    parts.append(_text(left + span, axis_y + 16, percent(scale_max, 0), size=9, fill="#777",
                       anchor="end"))
    parts.append("</svg>")
    return Markup("".join(parts))


@dataclass(frozen=True)
class Line:
    """One series of a line chart."""

    label: str
    values: list[float]


def line_chart(x_labels: list[str], lines: list[Line], *, width: int = 640,
               height: int = 260) -> Markup:
    """Share lines per week with a legend; y from 0 to the largest value."""
    left, right, top, bottom = 46, 110, 12, 34
    span_x, span_y = width - left - right, height - top - bottom
    y_max = max([v for line in lines for v in line.values] + [0.01])
    y_max = min(1.0, (int(y_max * 10) + 1) / 10) if y_max > 0.1 else 0.1
    step = span_x / max(1, len(x_labels) - 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img">']
    for k in range(5):
        value = y_max * k / 4
        y = top + span_y * (1 - value / y_max)
        parts.append(f'<line x1="{left}" x2="{left + span_x}" y1="{y:.1f}" y2="{y:.1f}" '
                     'stroke="#e3e3e3"/>')
        parts.append(_text(left - 6, y + 3, percent(value, 0), size=9, anchor="end",
                           fill="#777"))
    every = max(1, len(x_labels) // 7)
    for i, label in enumerate(x_labels):
        if i % every == 0 or i == len(x_labels) - 1:
            parts.append(_text(left + i * step, height - bottom + 16, label, size=9,
                               anchor="middle", fill="#555"))
    for n, line in enumerate(lines):
        colour = PALETTE[n % len(PALETTE)]
        points = " ".join(f"{left + i * step:.1f},{top + span_y * (1 - v / y_max):.1f}"
                          for i, v in enumerate(line.values))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" '
                     'stroke-width="2" stroke-linejoin="round"/>')
        for i, v in enumerate(line.values):
            parts.append(f'<circle cx="{left + i * step:.1f}" '
                         f'cy="{top + span_y * (1 - v / y_max):.1f}" r="2.2" fill="{colour}"/>')
        ly = top + 6 + n * 18
        parts.append(f'<rect x="{width - right + 12}" y="{ly - 8}" width="14" height="4" '
                     f'fill="{colour}"/>')
        parts.append(_text(width - right + 32, ly - 2, line.label, size=11))
    parts.append("</svg>")
    return Markup("".join(parts))


def _charts(report: NeedsReport) -> dict[str, Any]:
    mentioned = [n for n in report.top_needs if n.texts > 0]
    bars = bar_chart([Bar(n.name, n.share, n.previous_share, n.sentiment) for n in mentioned])
    top_keys = [n.aspect for n in mentioned[:LINE_TOPICS]]
    series = {s.topic: s for s in report.weekly.series}
    # Weeks without texts (before the data starts, after it ends) are left out, not zero.
    kept = [i for i, total in enumerate(report.weekly.totals) if total > 0]
    lines = [Line(series[k].name, [series[k].shares[i] for i in kept])
             for k in top_keys if k in series]
    weeks = [f"{report.weekly.weeks[i]:%m-%d}" for i in kept]
    cells = {(c.category, c.aspect): c for c in report.category_sentiment.cells}
    heat = [[(cells.get((cat, a)), sentiment_colour(cells[(cat, a)].sentiment)
              if (cat, a) in cells else "#f4f4f4") for a in report.category_sentiment.aspects]
            for cat in report.category_sentiment.categories]
    return {"share_chart": bars, "weekly_chart": line_chart(weeks, lines) if weeks else None,
            "heat": heat, "mentioned": mentioned}


def render_html(report: NeedsReport) -> str:
    """The white paper as one self-contained HTML page."""
    names = {n.aspect: n.name for n in report.top_needs}
    quotes: dict[str, list[Any]] = {}
    for quote in report.quotes:
        quotes.setdefault(quote.aspect, []).append(quote)
    template = _environment().get_template("needs.html")
    return template.render(report=report, names=names, quotes=quotes, font=FONT,
                           **_charts(report))


def write_pdf(html: str, path: Path) -> Path:
    """Render ``html`` to a PDF file at ``path``."""
    from weasyprint import HTML  # heavy import, only when a PDF is asked for

    HTML(string=html, base_url=str(TEMPLATES)).write_pdf(str(path))
    return path


def write_needs_report(report: NeedsReport, out_dir: Path) -> tuple[Path, Path, Path]:
    """Write ``needs-<quarter>.html``, ``.pdf`` and ``.json`` (the report's data) into
    ``out_dir``; their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"needs-{report.quarter}"
    html = render_html(report)
    html_path = stem.with_suffix(".html")
    html_path.write_text(html, encoding="utf-8")
    json_path = stem.with_suffix(".json")
    json_path.write_text(report.model_dump_json(indent=2), encoding="utf-8")
    return html_path, write_pdf(html, stem.with_suffix(".pdf")), json_path
