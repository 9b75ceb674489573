"""The analytics pages in a real browser (Debian Chromium via playwright) on the small demo:
every chart is drawn from the page's real figures, no script errors, nothing from outside."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from console_data import add_user
from test_console_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    _screenshot_dir,
    serving,
    watched_page,
)

from conftest import T0, _wire
from shequ.core.clock import FixedClock
from shequ.core.web import Services
from shequ.demo.loader import load_demo
from shequ.entrypoints.bootstrap import close

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="Debian chromium is not installed (apt-get install chromium)"),
]

OPTION = "echarts.getInstanceByDom(document.querySelector('#{}')).getOption()"


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A live server over the small demo ending on the clock's day (2026-11-20)."""
    wired: Services = _wire(Path(tmp_path_factory.mktemp("browser-demo")), FixedClock(T0),
                            None)
    load_demo(wired, size="small", seed=7, end=date(2026, 11, 20))
    add_user(wired, "admin", "admin")
    with serving(wired) as url:
        yield url
    close(wired)


def test_every_analytics_page_draws_its_real_data(demo_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    shots = _screenshot_dir(tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page, problems = watched_page(browser, demo_url)
            page.goto(f"{demo_url}/console/login")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", "admin-pass-1")
            page.click("#login-form button[type=submit]")
            page.wait_for_url(f"{demo_url}/console/")

            def draw(path: str, chart: str, shot: str) -> dict:
                page.goto(f"{demo_url}{path}")
                page.wait_for_function(f"document.querySelector('#{chart} canvas') !== null")
                page.screenshot(path=str(shots / f"{shot}.png"), full_page=True)
                option: dict = page.evaluate(OPTION.format(chart))
                return option

            # Metrics board: 18 cards, the payment rate red over the planted drop.
            draw("/console/metrics?from=2026-10-20&to=2026-11-02", "spark-payment_rate",
                 "metrics")
            assert page.locator(".metric-card").count() == 18
            assert page.get_attribute("#metric-payment_rate", "data-level") == "red"

            # Trends: one line per channel, each as long as the week.
            trend = draw("/console/trends?from=2026-11-14&to=2026-11-20&event=product_view"
                         "&breakdown=channel", "trend-chart", "trends")
            assert len(trend["series"]) >= 3
            assert all(len(s["data"]) == 7 for s in trend["series"])

            # Funnel: the bars are the table's counts, and the diagnosis names payment.
            funnel = draw("/console/funnel?from=2026-10-26&to=2026-10-27", "funnel-chart",
                          "funnel")
            counts = [int(t.replace(",", "")) for t in page.locator(
                "#funnel-steps-table tbody tr td:nth-child(3)").all_inner_texts()]
            assert funnel["series"][0]["data"] == counts
            assert page.inner_text("#funnel-diagnosis .kpi-value") == "payment"

            # Paths: a Sankey with links out of /cart.
            sankey = draw("/console/paths?from=2026-11-14&to=2026-11-20&page=/cart",
                          "paths-sankey", "paths")
            links = sankey["series"][0]["links"]
            assert links
            assert any(link["source"] == "0:/cart" for link in links)

            # Heatmap: cells of clicks on product pages, laid over the wireframe.
            heat = draw("/console/heatmap?from=2026-11-14&to=2026-11-20&page=/product/*",
                        "heatmap-chart", "heatmap")
            cells = heat["series"][0]["data"]
            assert cells
            per_element = [int(t.replace(",", "")) for t in page.locator(
                "#heatmap-elements tbody tr td:nth-child(2)").all_inner_texts()]
            assert sum(c[2] for c in cells) == sum(per_element)
            assert page.locator("#heatmap-frame img.wireframe").is_visible()

            # Dwell: a histogram of eight bins with views in them.
            dwell = draw("/console/dwell?from=2026-11-14&to=2026-11-20&by=content_type",
                         "dwell-chart", "dwell")
            assert len(dwell["series"][0]["data"]) == 8
            assert sum(dwell["series"][0]["data"]) > 0

            # Retention: the triangle table (no chart), first column 100 %.
            page.goto(f"{demo_url}/console/retention?from=2026-09-28&to=2026-11-20"
                      "&period=week")
            first = page.locator("#retention-table tbody tr td:nth-child(3)").all_inner_texts()
            assert "100.0%" in first
            page.screenshot(path=str(shots / "retention.png"), full_page=True)

            # Alerts: the red payment-rate alert of the drop, acknowledged in the page.
            page.goto(f"{demo_url}/console/alerts?from=2026-10-26&to=2026-10-27"
                      "&metric=payment_rate&state=open")
            row = page.locator("tr.level-red").first
            alert_id = row.get_attribute("id")
            assert alert_id is not None
            row.locator("button", has_text="确认").click()
            page.wait_for_load_state()
            assert page.locator(f"#{alert_id}").count() == 0  # no longer open
            page.goto(f"{demo_url}/console/alerts?from=2026-10-26&to=2026-10-27"
                      "&metric=payment_rate&state=acknowledged")
            assert "已确认" in page.inner_text(f"#{alert_id}")
            page.screenshot(path=str(shots / "alerts.png"), full_page=True)
            assert problems == []
        finally:
            browser.close()
