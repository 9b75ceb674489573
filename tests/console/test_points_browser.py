"""The points console in a real browser (Debian Chromium via playwright): a customer
redeems an offline reward through the shop API, staff open the redemption page and see its
QR image (the SVG the API draws), a store verifies the code on the verification page and
it is accepted, the same code again is refused as used, and the redemption page then shows
it used; with no script error and nothing fetched from outside."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from console_data import add_user
from test_console_browser import CHROMIUM, CHROMIUM_ARGS, _free_port, _screenshot_dir, watched_page
from test_points_pages import build_points, points_app

from conftest import T0, _wire, bearer, make_key
from shequ.core.clock import FixedClock
from shequ.core.web import Services
from shequ.entrypoints.bootstrap import close

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="Debian chromium is not installed (apt-get install chromium)"),
]


@contextmanager
def serving_points(services: Services) -> Iterator[str]:
    """A uvicorn server on a free port over the app with the points pages."""
    port = _free_port()
    config = uvicorn.Config(points_app(services), host="127.0.0.1", port=port,
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
    found = _wire(Path(tmp_path_factory.mktemp("points-browser")), FixedClock(T0), None)
    build_points(found)
    add_user(found, "admin", "admin")
    yield found
    close(found)


@pytest.fixture(scope="module")
def live_url(wired: Services) -> Iterator[str]:
    with serving_points(wired) as url:
        yield url


def test_redeem_show_the_qr_and_verify_once(wired: Services, live_url: str,
                                            tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    shop_key = bearer(make_key(wired, ["loyalty:read", "loyalty:write"]))
    shots = _screenshot_dir(tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page, problems = watched_page(browser, live_url)
            images: list[Any] = []
            page.on("response", lambda r: images.append(r) if "qr.svg" in r.url else None)

            # The shop app redeems (c1 holds 145 points after the fixture's redemptions).
            bought = page.request.post(f"{live_url}/api/v1/loyalty/redeem", headers=shop_key,
                                       data={"customer_external_id": "c1", "reward": "cafe",
                                             "idempotency_key": "app-cafe-1"})
            assert bought.status == 201, bought.text()
            code = bought.json()["store_code"]["code"]

            page.goto(f"{live_url}/console/login")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", "admin-pass-1")
            page.click("#login-form button[type=submit]")
            page.wait_for_url(f"{live_url}/console/")
            page.goto(f"{live_url}/console/lang/en?next=/console/points")
            page.wait_for_url(f"{live_url}/console/points")
            assert page.get_attribute("#ledger-badge", "data-balanced") == "true"
            page.screenshot(path=str(shots / "points-overview-en.png"), full_page=True)

            # The overview lists the new redemption first; its link opens the page.
            page.click("#redemptions-table tbody tr:first-child a[href*='app-cafe-1']")
            page.wait_for_url(f"{live_url}/console/points/redemptions/app-cafe-1")
            assert page.inner_text("#store-code") == code
            assert page.get_attribute("#code-card [data-code-state]", "data-code-state") \
                == "unused"
            page.wait_for_function("document.querySelector('#qr-image').complete && "
                                   "document.querySelector('#qr-image').naturalWidth > 0")
            assert page.evaluate("document.querySelector('#qr-image').naturalWidth") == 222
            assert [(r.status, r.headers["content-type"]) for r in images] == [
                (200, "image/svg+xml")]
            assert images[0].text().startswith("<?xml")
            page.screenshot(path=str(shots / "points-redemption-en.png"), full_page=True)

            # The store desk: accepted once.
            page.goto(f"{live_url}/console/points/verify")
            page.fill("#verify-code", code)
            page.fill("#verify-store", "store-7")
            page.click("#verify-button")
            page.wait_for_selector("#verify-accepted")
            assert "Accepted" in page.inner_text("#verify-accepted")
            assert "到店咖啡" in page.inner_text("#verify-accepted")
            assert page.input_value("#verify-store") == "store-7"
            assert page.input_value("#verify-code") == ""

            # The same code again: refused, with when and where it was used.
            page.fill("#verify-code", code)
            page.click("#verify-button")
            page.wait_for_selector("#verify-refused")
            assert page.get_attribute("#verify-refused", "data-verdict") == "code_used"
            assert "already used" in page.inner_text("#verify-refused")
            assert "store-7" in page.inner_text("#refused-used")
            page.screenshot(path=str(shots / "points-verify-refused-en.png"), full_page=True)

            page.goto(f"{live_url}/console/points/redemptions/app-cafe-1")
            assert page.get_attribute("#code-card [data-code-state]", "data-code-state") \
                == "used"
            assert "store-7" in page.inner_text("#code-used")
            page.click("#redemption-customer")
            page.wait_for_url(f"{live_url}/console/points/customers/c1")
            # The refund's lot kept the expiry of the lot it came from: both expire together.
            assert page.inner_text("#next-expiry") == page.inner_text("#kpi-balance .kpi-value")
            assert page.evaluate("document.documentElement.scrollWidth") <= 1440
            assert page.inner_text("#entries-table tbody tr:first-child").count("app-cafe-1") == 1
            page.screenshot(path=str(shots / "points-statement-en.png"), full_page=True)
            page.goto(f"{live_url}/console/points/rewards?edit=cafe")
            assert page.input_value("#reward-code") == "cafe"
            page.screenshot(path=str(shots / "points-rewards-en.png"), full_page=True)
            # The refusal page is served as 409 Conflict, which Chromium logs; nothing else.
            assert problems == ["Failed to load resource: the server responded with a "
                                "status of 409 (Conflict)"]
        finally:
            browser.close()
