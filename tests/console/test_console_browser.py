"""The console in a real browser: Debian's Chromium driven by playwright over a live server."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from console_data import GMV_FEN, PAID_ORDERS, Shop, add_user, seed_shop

from shequ.core.web import Services
from shequ.entrypoints.app import create_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
CHART_DATA = ("echarts.getInstanceByDom(document.querySelector('#events-chart'))"
              ".getOption().{}")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="Debian chromium is not installed (apt-get install chromium)"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def shop(services: Services) -> Shop:
    seeded = seed_shop(services)
    add_user(services, "admin", "admin")
    return seeded


@contextmanager
def serving(services: Services) -> Iterator[str]:
    """A uvicorn server on a free port over ``services`` (sharing the test's wiring and its
    event store); yields its base URL and stops it on exit."""
    port = _free_port()
    config = uvicorn.Config(create_app(services=services), host="127.0.0.1", port=port,
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
def live_url(services: Services, shop: Shop) -> Iterator[str]:
    """A live server over the test's shop."""
    with serving(services) as url:
        yield url


def watched_page(browser: Any, base_url: str) -> tuple[Any, list[str]]:
    """A 1440×900 zh-CN page whose script errors, console errors and requests outside
    ``base_url`` are collected in the returned list (a test asserts it stays empty)."""
    page = browser.new_page(viewport={"width": 1440, "height": 900}, locale="zh-CN")
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("request", lambda req: None if req.url.startswith(base_url)
            else problems.append(f"outside request: {req.url}"))
    return page, problems


def _screenshot_dir(tmp_path: Path) -> Path:
    wanted = os.environ.get("SHEQU_CONSOLE_SCREENSHOTS")
    target = Path(wanted) if wanted else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    return target


def test_log_in_read_the_chart_switch_language_log_out(live_url: str, shop: Shop,
                                                       tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    shots = _screenshot_dir(tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page, problems = watched_page(browser, live_url)

            page.goto(f"{live_url}/console/")
            assert page.url == f"{live_url}/console/login?next=/console/"
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", "admin-pass-1")
            page.click("#login-form button[type=submit]")
            page.wait_for_url(f"{live_url}/console/")

            assert page.inner_text("h1.page-title") == "概览"
            assert page.inner_text("#kpi-gmv .kpi-value") == "¥1.32万"
            assert page.inner_text("#kpi-orders .kpi-value") == str(PAID_ORDERS)
            assert page.inner_text("#kpi-events .kpi-value") == str(shop.events_total)
            page.wait_for_function("document.querySelector('#events-chart canvas') !== null")
            assert page.evaluate(CHART_DATA.format("series[0].data")) == shop.events_per_day
            labels = page.evaluate(CHART_DATA.format("xAxis[0].data"))
            assert (labels[0], labels[-1], len(labels)) == ("10月22日", "11月20日", 30)
            page.screenshot(path=str(shots / "overview-zh.png"), full_page=True)

            page.click(".lang-switch a[lang=en]")
            page.wait_for_function("document.documentElement.lang === 'en'")
            assert page.url == f"{live_url}/console/"
            assert page.inner_text("h1.page-title") == "Overview"
            assert page.inner_text("#kpi-gmv .kpi-label") == "GMV"
            assert page.inner_text("#kpi-gmv .kpi-value") == f"¥{GMV_FEN / 100:,.2f}"
            page.wait_for_function("document.querySelector('#events-chart canvas') !== null")
            assert page.evaluate(CHART_DATA.format("xAxis[0].data"))[0] == "Oct 22"
            assert page.evaluate(CHART_DATA.format("series[0].data")) == shop.events_per_day
            page.screenshot(path=str(shots / "overview-en.png"), full_page=True)

            page.click(".nav a[href='/console/products']")
            page.wait_for_url(f"{live_url}/console/products")
            assert page.locator("#products-table tbody tr").count() == 3
            page.select_option("#brand-filter", "b2")
            page.wait_for_url(f"{live_url}/console/products?brand=b2")
            page.wait_for_function(
                "document.querySelectorAll('#products-table tbody tr').length === 1")
            assert page.inner_text("#products-table tbody tr td code") == "SKU3"
            page.screenshot(path=str(shots / "products-en.png"), full_page=True)

            page.click("#logout")
            page.wait_for_url(f"{live_url}/console/login")
            assert page.inner_text("h1.bare-title") == "Log in to the console"
            page.goto(f"{live_url}/console/")
            assert page.url.startswith(f"{live_url}/console/login")
            assert problems == []
        finally:
            browser.close()
