"""``shequ report needs``: the Needs White Paper as HTML and a real PDF."""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from needs_community import build_community
from shequ.core.web import Services
from shequ.entrypoints.cli import app
from shequ.entrypoints.reports.needs import Bar, Line, bar_chart, line_chart, sentiment_colour

runner = CliRunner()


def pdf_objects(pdf: bytes) -> bytes:
    """The PDF's bytes with every Flate stream inflated (page objects hide in them)."""
    parts = [pdf]
    for raw in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.DOTALL):
        try:
            parts.append(zlib.decompress(raw))
        except zlib.error:
            continue
    return b"\n".join(parts)


SECTIONS = ("需求白皮书 2026Q3", "核心发现", "一、用户最关心什么", "二、成分党",
            "三、话题份额周趋势", "四、上升话题", "五、品类 × 方面情感", "六、用户原声",
            "附录：数据与方法")


def test_report_needs_writes_html_and_pdf(client: TestClient, admin_headers: dict[str, str],
                                          services: Services, tmp_path: Path) -> None:
    build_community(client, admin_headers)
    out = tmp_path / "out"
    result = runner.invoke(app, ["report", "needs", "--quarter", "2026Q3", "--out", str(out),
                                 "--home", str(services.settings.home)])
    assert result.exit_code == 0, result.output
    html_path, pdf_path = out / "needs-2026Q3.html", out / "needs-2026Q3.pdf"
    assert str(html_path) in result.stdout
    assert str(pdf_path) in result.stdout
    data = json.loads((out / "needs-2026Q3.json").read_text(encoding="utf-8"))
    assert data["ingredient_minded"]["share"] == 0.5
    html = html_path.read_text(encoding="utf-8")
    for title in SECTIONS:
        assert title in html
    # The numbers of the known community: 21 texts, 成分 in 11 (52.4 %), 成分党 10 of 20.
    assert "商品评价 <b>20</b> 条 · 社区帖子 <b>1</b> 篇 · 作者 <b>20</b> 人" in html
    assert "52.4 %" in html
    assert "50 %" in html
    assert "（10 / 20 人）" in html
    assert "降噪耳机" in html  # a quote names its product
    assert html.count("<svg") == 2
    pdf = pdf_path.read_bytes()
    assert pdf.startswith(b"%PDF")
    assert pdf.rstrip().endswith(b"%%EOF")
    objects = pdf_objects(pdf)
    assert len(re.findall(rb"/Type\s*/Page[^s]", objects)) >= 3
    assert b"WenQuanYi" in objects  # the CJK font is embedded, not tofu boxes


def test_default_quarter_and_bad_quarter(client: TestClient, admin_headers: dict[str, str],
                                         services: Services, tmp_path: Path) -> None:
    home = str(services.settings.home)
    empty = runner.invoke(app, ["report", "needs", "--home", home, "--out", str(tmp_path)])
    assert empty.exit_code == 1
    assert "no reviews or posts yet" in empty.output
    build_community(client, admin_headers)
    bad = runner.invoke(app, ["report", "needs", "--quarter", "2026Q7", "--home", home,
                              "--out", str(tmp_path)])
    assert bad.exit_code == 1
    assert "quarter:" in bad.output
    assert not list(tmp_path.glob("needs-*"))
    found = runner.invoke(app, ["report", "needs", "--home", home, "--out", str(tmp_path)])
    assert found.exit_code == 0, found.output
    assert (tmp_path / "needs-2026Q3.pdf").exists()


def test_charts_are_plain_svg() -> None:
    bars = bar_chart([Bar("成分", 0.5, 0.25, 0.9), Bar("物流<", 0.1, None, None)])
    assert bars.startswith("<svg")
    assert "50.0 %" in bars
    assert "物流&lt;" in bars  # labels are escaped
    lines = line_chart(["07-06", "07-13"], [Line("成分", [0.1, 0.4])])
    assert "<polyline" in lines
    assert sentiment_colour(0.0) == "#d64541"
    assert sentiment_colour(1.0) == "#2ea05a"
