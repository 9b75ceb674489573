"""The campaign calendar in a real browser (Debian Chromium via playwright): an admin opens
the month, sees the phases as bars and the conflicts panel, switches to the week, follows a
conflict's link to the other campaign, and the campaign page shows the same conflict, with
no script error and nothing fetched from outside."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from test_campaign_pages import app_for, ids, wire
from test_console_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    _free_port,
    _screenshot_dir,
    watched_page,
)

from shequ.core.web import Services
from shequ.entrypoints.bootstrap import close

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="Debian chromium is not installed (apt-get install chromium)"),
]


@contextmanager
def serving(services: Services) -> Iterator[str]:
    """A uvicorn server over ``services`` with the campaign pages mounted."""
    port = _free_port()
    config = uvicorn.Config(app_for(services), host="127.0.0.1", port=port,
                            log_level="warning", ws="none", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.fixture(scope="module")
def wired(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    found = wire(Path(tmp_path_factory.mktemp("campaign-browser")))
    yield found
    close(found)


def test_calendar_week_and_conflict_link(wired: Services, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    known = ids(wired)
    shots = _screenshot_dir(tmp_path)
    with serving(wired) as live_url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page, problems = watched_page(browser, live_url)
            page.goto(f"{live_url}/console/login")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", "admin-pass-1")
            page.click("#login-form button[type=submit]")
            page.wait_for_url(f"{live_url}/console/")

            page.goto(f"{live_url}/console/calendar?date=2026-11-25")
            assert page.locator("#calendar-range").inner_text() == "2026-11"
            assert page.locator("#calendar-grid td[id^=day-]").count() == 30
            bars = page.locator("#day-2026-11-24 a.cal-entry")
            assert bars.count() == 3
            # The bars take their phase's colour.
            colour = bars.first.evaluate("e => getComputedStyle(e).backgroundColor")
            assert colour == "rgb(232, 69, 60)"  # conversion
            assert page.locator("#conflicts li").count() == 4
            page.screenshot(path=str(shots / "campaign-calendar-month.png"), full_page=True)

            page.click("#view-week")
            page.wait_for_url(f"{live_url}/console/calendar?view=week&date=2026-11-25")
            assert page.locator("#view-week").get_attribute("aria-current") == "true"
            assert page.locator("#calendar-grid td[id^=day-]").count() == 7
            assert page.locator("#day-2026-11-23").is_visible()
            page.screenshot(path=str(shots / "campaign-calendar-week.png"), full_page=True)

            channel = page.locator("#conflicts li[data-kind=channel]")
            assert "live_room" in channel.inner_text()
            channel.locator("a.conflict-link").nth(1).click()
            page.wait_for_url(f"{live_url}/console/campaigns/{known['b']}")
            assert "冬季囤货节" in page.locator("#campaign-head h2").inner_text()
            back = page.locator(f"#campaign-conflict-list a[href='/console/campaigns/"
                                f"{known['a']}']")
            assert back.count() >= 1
            back.first.click()
            page.wait_for_url(f"{live_url}/console/campaigns/{known['a']}")
            assert page.locator("#phase-timeline .timeline-bar").count() == 4
            assert problems == []
        finally:
            browser.close()
