"""The content-ecosystem pages in a real browser (Debian Chromium via playwright) on the
small community of test_content_pages: the library filtered through htmx, a post's score
bars, a creator's and a hub's charts and the needs report's charts, drawn from the page's
figures with no script error and nothing fetched from outside."""

from __future__ import annotations

from collections.abc import Iterator
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
from test_content_pages import build_content

from conftest import T0, _wire
from shequ.core.clock import FixedClock
from shequ.core.permissions import CLI_PRINCIPAL
from shequ.core.web import Services
from shequ.domains.community import service as community
from shequ.domains.content import needs
from shequ.domains.content import service as content
from shequ.entrypoints.bootstrap import close

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="Debian chromium is not installed (apt-get install chromium)"),
]

OPTION = "echarts.getInstanceByDom(document.querySelector('#{}')).getOption()"


@pytest.fixture(scope="module")
def wired(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    found = _wire(Path(tmp_path_factory.mktemp("content-browser")), FixedClock(T0), None)
    build_content(found)
    add_user(found, "admin", "admin")
    yield found
    close(found)


@pytest.fixture(scope="module")
def live_url(wired: Services) -> Iterator[str]:
    with serving(wired) as url:
        yield url


def test_library_post_creator_hub_and_report_are_drawn(wired: Services, live_url: str,
                                                       tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with wired.sessions() as session:
        score = content.get_post_score(session, CLI_PRINCIPAL, "p6")
        metrics = community.hub_metrics(session, wired.clock, "h1", weeks=12,
                                        zone=wired.settings.zone)
        report = needs.needs_report(session, CLI_PRINCIPAL, "2026Q3", zone=wired.settings.zone)
    assert score.components is not None
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
                if path:
                    page.goto(f"{live_url}{path}")
                page.wait_for_function(f"document.querySelector('#{chart} canvas') !== null")
                page.screenshot(path=str(shots / f"{shot}.png"), full_page=True)
                option: dict = page.evaluate(OPTION.format(chart))
                return option

            # The library: the dwell chart, then the type filter swaps the table by htmx.
            dwell = draw("/console/content", "dwell-chart", "content")
            assert len(dwell["series"]) == 3
            assert page.locator("#posts-table tbody tr").count() == 6
            page.select_option("#type-filter", "review")
            page.wait_for_function(
                "document.querySelectorAll('#posts-table tbody tr').length === 2")
            assert "type=review" in page.url  # htmx pushed the filtered URL
            assert sorted(page.locator("#posts-table tbody tr").evaluate_all(
                "rows => rows.map(r => r.id)")) == ["post-p3", "post-p6"]
            assert page.locator("#dwell-chart canvas").count() == 1  # the page was not reloaded

            # A post: its score bars are the explained contributions; its source is linked.
            page.click("#post-p6 a")
            page.wait_for_url(f"{live_url}/console/content/p6")
            bars = draw("", "components-chart", "post")
            assert [d["value"] for d in bars["series"][0]["data"]] == [
                round(c.contribution, 1) for c in score.components.values()]
            page.click("#sources-table a")
            page.wait_for_url(f"{live_url}/console/content/p3")

            # A creator and a hub.
            page.goto(f"{live_url}/console/creators")
            page.click("#creator-cr1 a")
            page.wait_for_url(f"{live_url}/console/creators/cr1")
            trend = draw("", "trend-chart", "creator")
            assert len(trend["series"][0]["data"]) == 3  # p1, p2 and p3, all scored
            assert page.locator("#comparison-chart canvas").count() == 1
            page.goto(f"{live_url}/console/hubs")
            page.click("#hub-h1 a")
            page.wait_for_url(f"{live_url}/console/hubs/h1")
            weeks = draw("", "weeks-chart", "hub")
            assert weeks["series"][1]["data"] == [w.posts for w in metrics.weeks]

            # The needs report of 2026Q3, picked from the quarter list.
            page.goto(f"{live_url}/console/reports/needs")
            page.select_option("#quarter-filter", "2026Q3")
            page.click("#quarter-apply")
            page.wait_for_url(f"{live_url}/console/reports/needs?quarter=2026Q3")
            shares = draw("", "needs-chart", "needs")
            assert shares["yAxis"][0]["data"] == [n.name for n in report.top_needs if n.texts]
            assert page.locator("#weekly-chart canvas").count() == 1
            assert page.locator("#heat-chart canvas").count() == 1
            assert problems == []
        finally:
            browser.close()
