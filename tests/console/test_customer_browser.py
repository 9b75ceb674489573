"""The customer-intelligence pages in a real browser (Debian Chromium via playwright) on the
small demo: the growth trajectory, the value matrix and the lifecycle series are drawn
from the page's figures, with no script error and nothing fetched from outside."""

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
from test_customer_pages import prepare_insight

from conftest import T0, _wire
from shequ.core.clock import FixedClock
from shequ.core.permissions import CLI_PRINCIPAL
from shequ.core.web import Services
from shequ.demo.loader import load_demo
from shequ.domains.customers import service as customers
from shequ.domains.insight import service as insight
from shequ.domains.insight import view
from shequ.entrypoints.bootstrap import close

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="Debian chromium is not installed (apt-get install chromium)"),
]

OPTION = "echarts.getInstanceByDom(document.querySelector('#{}')).getOption()"


@pytest.fixture(scope="module")
def wired(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """The small demo with stages, tiers, profiles and one segment."""
    found = _wire(Path(tmp_path_factory.mktemp("customer-browser")), FixedClock(T0), None)
    load_demo(found, size="small", seed=7, end=date(2026, 11, 20))
    prepare_insight(found)
    add_user(found, "admin", "admin")
    yield found
    close(found)


@pytest.fixture(scope="module")
def live_url(wired: Services) -> Iterator[str]:
    with serving(wired) as url:
        yield url


def _repeat_buyer(wired: Services) -> str:
    with wired.sessions() as session:
        for customer in customers.list_customers(session, limit=200).items:
            profile = insight.get_profile(session, CLI_PRINCIPAL, customer.external_id)
            if profile is not None and profile.orders >= 2:
                return customer.external_id
    raise AssertionError("the demo has no repeat buyer")


def test_360_trajectory_value_matrix_and_lifecycle_are_drawn(wired: Services, live_url: str,
                                                            tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    buyer = _repeat_buyer(wired)
    with wired.sessions() as session:
        story = view.customer_360(wired, session, CLI_PRINCIPAL, buyer).trajectory
        matrix = insight.value_matrix(session, CLI_PRINCIPAL)
    shots = _screenshot_dir(tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page, problems = watched_page(browser, live_url)
            page.goto(f"{live_url}/console/login")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", "admin-pass-1")
            page.click("#login-form button[type=submit]")
            page.wait_for_url(f"{live_url}/console/")

            def draw(path: str, chart: str, shot: str) -> dict:
                page.goto(f"{live_url}{path}")
                page.wait_for_function(f"document.querySelector('#{chart} canvas') !== null")
                page.screenshot(path=str(shots / f"{shot}.png"), full_page=True)
                option: dict = page.evaluate(OPTION.format(chart))
                return option

            # From the list to the 360° view by the customer's link.
            page.goto(f"{live_url}/console/customers?q={buyer}")
            page.click(f"#customer-{buyer} a")
            page.wait_for_url(f"{live_url}/console/customers/{buyer}")
            trajectory = draw(f"/console/customers/{buyer}", "trajectory-chart", "customer-360")
            points = trajectory["series"][1]["data"]
            assert [p["name"].split(" · ")[0] for p in points] == [m.title for m in story]
            assert page.locator("#trajectory-table tbody tr").count() == len(story)

            # Value matrix: bars are the table's shares.
            tiers = draw("/console/value-matrix", "tier-chart", "value-matrix")
            assert tiers["series"][0]["data"] == [round(t.share_of_customers * 100, 1)
                                                  for t in matrix.tiers]
            assert page.locator("#group-chart canvas").count() == 1
            assert page.locator("#groups-table tbody tr").count() == 8

            # Lifecycle: one line per stage.
            series = draw("/console/lifecycle", "stage-series", "lifecycle")
            assert len(series["series"]) == 6

            # Segments: the size-history chart of the saved segment.
            page.goto(f"{live_url}/console/segments")
            page.click("#segments-table tbody tr a")
            page.wait_for_selector("#size-chart canvas")
            page.screenshot(path=str(shots / "segment.png"), full_page=True)
            assert problems == []
        finally:
            browser.close()
