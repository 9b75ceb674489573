"""The behaviour-analytics pages over HTTP on the small demo: real figures, filters, CSV."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from console_data import add_user, log_in
from fastapi.testclient import TestClient

from conftest import T0, _wire
from shequ.core.clock import FixedClock
from shequ.core.web import Services
from shequ.demo.loader import load_demo
from shequ.entrypoints.app import create_app
from shequ.entrypoints.bootstrap import close

END = date(2026, 11, 20)
DROP = "from=2026-10-26&to=2026-10-27"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """The small demo ending 2026-11-20 (the clock's day), loaded once for the module."""
    wired = _wire(Path(tmp_path_factory.mktemp("demo")), FixedClock(T0), None)
    load_demo(wired, size="small", seed=7, end=END)
    add_user(wired, "admin", "admin")
    add_user(wired, "partner", "partner", brand_ids=[1])
    yield wired
    close(wired)


@pytest.fixture(scope="module")
def admin(demo: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services=demo)) as c:
        assert log_in(c, "admin").status_code == 303
        yield c


def cells(html: str, table_id: str) -> list[list[str]]:
    """The body cells of table ``table_id`` (tags stripped)."""
    body = re.search(rf'<table class="[^"]*" id="{table_id}">.*?<tbody>(.*?)</tbody>', html, re.S)
    assert body is not None, f"no table {table_id}"
    rows = re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)
    return [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)]
            for r in rows]  # fmt: skip


def test_funnel_page_shows_the_steps_and_names_the_payment_drop(admin: TestClient) -> None:
    page = admin.get(f"/console/funnel?{DROP}")
    assert page.status_code == 200
    rows = cells(page.text, "funnel-steps-table")
    assert [row[1] for row in rows] == ["product_view", "add_to_cart", "checkout", "payment"]
    people = [int(row[2].replace(",", "")) for row in rows]
    assert people[0] > people[1] > people[2] > people[3] > 0
    diagnosis = re.search(r'id="funnel-diagnosis".*?kpi-value">(.*?)<', page.text, re.S)
    assert diagnosis is not None
    assert diagnosis.group(1) == "payment"


def test_funnel_csv_export_matches_the_page(admin: TestClient) -> None:
    page = admin.get(f"/console/funnel?{DROP}&breakdown=channel")
    shown = cells(page.text, "funnel-breakdown-table")
    exported = admin.get(f"/console/funnel?{DROP}&breakdown=channel&format=csv&table=breakdown")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text.lstrip("\ufeff"))))
    assert rows[0][0] == "值"  # headers in the visitor's language
    assert [r[0] for r in rows[1:]] == [r[0] for r in shown]
    assert {r[0] for r in rows[1:]} <= {"app", "wechat_mini", "h5", "douyin", "web", "–"}
    assert sum(int(r[1]) for r in rows[1:]) == int(cells(page.text, "funnel-steps-table")[0][2]
                                                   .replace(",", ""))


def test_funnel_filters_narrow_the_figures(admin: TestClient) -> None:
    everyone = cells(admin.get(f"/console/funnel?{DROP}").text, "funnel-steps-table")
    app_only = cells(admin.get(f"/console/funnel?{DROP}&channel=app").text, "funnel-steps-table")
    ios = cells(admin.get(f"/console/funnel?{DROP}&device=ios").text, "funnel-steps-table")
    first = [int(rows[0][2].replace(",", "")) for rows in (everyone, app_only, ios)]
    assert 0 < first[1] < first[0]
    assert 0 < first[2] < first[0]


@pytest.mark.parametrize(("query", "message"), [
    ("from=2026-13-01", "is not a date"),
    ("from=2026-11-10&to=2026-11-01", "before the start date"),
    ("channel=telegram", "unknown channel"),
    ("steps=only_one", "at least 2 steps"),
    ("window=0", "window must be a whole number"),
])  # fmt: skip
def test_bad_filters_are_explained_in_the_page(admin: TestClient, query: str,
                                               message: str) -> None:
    page = admin.get(f"/console/funnel?{query}")
    assert page.status_code == 422
    assert message in page.text
    assert 'id="filters"' in page.text


def test_partners_cannot_open_behaviour_analytics(demo: Services) -> None:
    with TestClient(create_app(services=demo)) as c:
        log_in(c, "partner")
        page = c.get("/console/funnel")
        assert page.status_code == 403
        assert "partners cannot run them" in page.text


LAST_WEEK = "from=2026-11-14&to=2026-11-20"


def test_paths_page_draws_a_sankey_of_real_sessions(admin: TestClient) -> None:
    page = admin.get(f"/console/paths?{LAST_WEEK}&anchor=start&page=/cart")
    assert page.status_code == 200
    rows = cells(page.text, "paths-table")
    assert rows
    assert all(row[0].startswith("/cart") for row in rows)
    option = re.search(r'id="paths-sankey-data">(.*?)</script>', page.text, re.S)
    assert option is not None
    assert '"type": "sankey"' in option.group(1)
    assert '"0:/cart"' in option.group(1)
    neighbours = cells(page.text, "paths-neighbours")
    assert any(row[1] == "/checkout" for row in neighbours)


def test_heatmap_page_bins_the_clicks_of_a_page(admin: TestClient) -> None:
    page = admin.get(f"/console/heatmap?{LAST_WEEK}&page=/product/*&bins=20")
    assert page.status_code == 200
    elements = cells(page.text, "heatmap-elements")
    assert elements
    assert "buy_button" in {row[0] for row in elements}
    grid = admin.get(f"/console/heatmap?{LAST_WEEK}&page=/product/*&bins=20&format=csv"
                     "&table=cells")
    rows = list(csv.reader(io.StringIO(grid.text.lstrip("\ufeff"))))[1:]
    assert rows
    assert all(0 <= int(x) < 20 and 0 <= int(y) < 20 for x, y, _ in rows)
    assert sum(int(n) for *_, n in rows) == sum(int(r[1].replace(",", "")) for r in elements)
    assert "wireframe.svg" in page.text


def test_dwell_page_shows_spread_and_histogram(admin: TestClient) -> None:
    page = admin.get(f"/console/dwell?{LAST_WEEK}&by=content_type")
    assert page.status_code == 200
    groups = [row[0] for row in cells(page.text, "dwell-table")]
    assert set(groups) <= {"page", "product", "post"}
    assert "product" in groups
    histogram = admin.get(f"/console/dwell?{LAST_WEEK}&by=content_type&group=product"
                          "&format=csv&table=histogram")
    rows = list(csv.reader(io.StringIO(histogram.text.lstrip("\ufeff"))))[1:]
    assert len(rows) == 8
    assert sum(int(n) for _, n in rows) > 0


def test_retention_page_shows_a_triangle(admin: TestClient) -> None:
    page = admin.get("/console/retention?from=2026-09-28&to=2026-11-20&period=week")
    assert page.status_code == 200
    rows = cells(page.text, "retention-table")
    assert len(rows) >= 7
    period_zero = [row[2] for row in rows if row[2]]
    assert len(period_zero) >= 6  # the cohort of the unfinished last week has no periods yet
    assert set(period_zero) == {"100.0%"}
    filled = [sum(1 for cell in row[2:] if cell) for row in rows]
    assert filled == sorted(filled, reverse=True)  # older cohorts have more periods


def test_metrics_board_is_red_on_the_payment_rate_of_the_planted_drop(
        admin: TestClient) -> None:
    page = admin.get("/console/metrics?from=2026-10-20&to=2026-11-02")
    assert page.status_code == 200
    card = re.search(r'id="metric-payment_rate" data-level="(\w+)"', page.text)
    assert card is not None
    assert card.group(1) == "red"
    levels = re.findall(r'id="metric-(\w+)" data-level="(\w+)"', page.text)
    assert len(levels) == 18
    exported = admin.get("/console/metrics?from=2026-10-20&to=2026-11-02&format=csv")
    rows = list(csv.reader(io.StringIO(exported.text.lstrip("\ufeff"))))
    assert len(rows) == 19
    assert len(rows[0]) == 15  # the metric and 14 days
    payment = next(r for r in rows if r[0] == "支付转化率")
    drop = [float(payment[1 + i]) for i in (6, 7)]  # 10-26 and 10-27
    usual = [float(v) for i, v in enumerate(payment[1:]) if i not in (6, 7) and v]
    assert max(drop) < 0.6 * min(usual)


def test_alert_history_acknowledge_and_resolve(admin: TestClient) -> None:
    listed = admin.get("/console/alerts?from=2026-10-26&to=2026-10-27&metric=payment_rate")
    assert listed.status_code == 200
    ids = re.findall(r'<tr id="alert-(\d+)" class="level-red">', listed.text)
    assert ids, "the planted drop raised no red payment-rate alert"
    token = re.search(r'name="csrf_token" value="([^"]+)"', listed.text)
    assert token is not None
    back = "/console/alerts?from=2026-10-26&to=2026-10-27&metric=payment_rate"
    done = admin.post(f"/console/alerts/{ids[0]}/acknowledge",
                      data={"csrf_token": token.group(1), "back": back},
                      follow_redirects=False)
    assert (done.status_code, done.headers["location"]) == (303, back)
    assert "已确认" in admin.get(back).text
    admin.post(f"/console/alerts/{ids[0]}/resolve", data={"csrf_token": token.group(1)})
    resolved = admin.get(f"{back}&state=resolved")
    assert f'id="alert-{ids[0]}"' in resolved.text
    again = admin.post(f"/console/alerts/{ids[0]}/acknowledge",
                       data={"csrf_token": token.group(1)})
    assert again.status_code == 409


def test_trends_page_splits_by_channel_and_adds_up(admin: TestClient) -> None:
    whole = cells(admin.get(f"/console/trends?{LAST_WEEK}&event=payment").text, "trend-table")
    split = cells(admin.get(f"/console/trends?{LAST_WEEK}&event=payment&breakdown=channel")
                  .text, "trend-table")
    assert len(whole) == 1
    assert len(whole[0]) == 2 + 7  # series, total, one column per day
    total = int(whole[0][1].replace(",", ""))
    assert total > 0
    assert sum(int(row[1].replace(",", "")) for row in split) == total
    gmv = admin.get(f"/console/trends?{LAST_WEEK}&event=payment&measure=sum&format=csv")
    rows = list(csv.reader(io.StringIO(gmv.text.lstrip("\ufeff"))))
    assert float(rows[1][1]) > 100 * total  # amount_fen: every order is worth over ¥1
