"""Group buying in a real browser (Debian Chromium via playwright): an operator opens the
offers list, the offer's page with its groups and a countdown that ticks, filters the
open groups, and creates an offer through the form after fixing a field error, with no
script error and nothing fetched from outside."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from test_console_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    _free_port,
    _screenshot_dir,
    watched_page,
)
from test_group_pages import app_for, build_shop

from conftest import T0, _wire
from shequ.core.clock import FixedClock
from shequ.core.web import Services
from shequ.entrypoints.bootstrap import close

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="Debian chromium is not installed (apt-get install chromium)"),
]


@contextmanager
def serving(services: Services) -> Iterator[str]:
    """A uvicorn server over the app with the group-buying pages."""
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


@pytest.fixture
def live_url(tmp_path: Path) -> Iterator[str]:
    wired = _wire(tmp_path / "wired", FixedClock(T0), None)
    build_shop(wired)
    try:
        with serving(wired) as url:
            yield url
    finally:
        close(wired)


def log_in(page: Any, live_url: str) -> None:
    page.goto(f"{live_url}/console/login")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "admin-pass-1")
    page.click("#login-form button[type=submit]")
    page.wait_for_url(f"{live_url}/console/")


def test_offer_page_and_create_form(live_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    shots = _screenshot_dir(tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page, problems = watched_page(browser, live_url)
            log_in(page, live_url)
            page.goto(f"{live_url}/console/group-buying")
            assert page.locator("#offers-table tbody tr").count() == 1
            page.screenshot(path=str(shots / "group-offers.png"), full_page=True)
            page.click("#offer-tea a")
            page.wait_for_url(f"{live_url}/console/group-buying/tea")
            rows = page.locator("#groups-table tbody tr")
            assert rows.count() == 3
            assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.state)")) == [
                "open", "refunded", "succeeded"]
            assert page.locator("#fig-opened").inner_text() == "3"
            countdown = page.locator("[data-seconds-left]")
            assert countdown.count() == 1
            page.wait_for_function(
                "document.querySelector('[data-seconds-left]').textContent.startsWith('1:59:')")
            page.screenshot(path=str(shots / "group-offer.png"), full_page=True)
            page.click("#state-open")
            page.wait_for_url(f"{live_url}/console/group-buying/tea?state=open")
            assert page.locator("#groups-table tbody tr").count() == 1

            page.goto(f"{live_url}/console/group-buying/new")
            page.fill("#code-input", "tea-browser")
            page.fill("#title-input", "浏览器建的团")
            page.select_option("#sku-input", "TEA")
            page.fill("#tiers-input", "3:20, 2:30")
            page.click("#create-offer")
            assert page.locator("#error-tiers").is_visible()
            assert page.locator("#tiers-input").get_attribute("aria-invalid") == "true"
            page.screenshot(path=str(shots / "group-offer-form-error.png"), full_page=True)
            page.fill("#tiers-input", "2:10, 4:20")
            page.fill("#stock-input", "12")
            page.click("#create-offer")
            page.wait_for_url(f"{live_url}/console/group-buying/tea-browser")
            assert page.locator("#offer-stock").inner_text().startswith("12")
            assert page.locator("#tiers-table tbody tr").count() == 2
            assert page.locator("#groups-empty").is_visible()
            # The refused form is answered 422 on purpose; Chromium logs that status.
            assert [m for m in problems if "status of 422" not in m] == []
        finally:
            browser.close()
