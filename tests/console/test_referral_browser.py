"""The invite-task and referral pages in a real browser (Debian Chromium via playwright):
an operator creates an invite task and lands on its empty progress table, reads the
progress of the seeded task with its refusal reasons, opens a promoter's collapsible
two-level tree (expanding a level-1 customer shows their level-2 customers and orders),
goes on to the statement, and runs the settlement, with no script error and nothing
fetched from outside."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from console_data import add_user
from test_console_browser import CHROMIUM, CHROMIUM_ARGS, _free_port, _screenshot_dir, watched_page
from test_referral_pages import app_for, seed

from shequ.core.web import Services

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="Debian chromium is not installed (apt-get install chromium)"),
]


@contextmanager
def serving(services: Services) -> Iterator[str]:
    """A uvicorn server over the app with the referral pages."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app_for(services), host="127.0.0.1", port=port,
                                           log_level="warning", ws="none", lifespan="on"))
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
def live_url(services: Services) -> Iterator[str]:
    seed(services)
    add_user(services, "admin", "admin")
    with serving(services) as url:
        yield url


def test_tasks_tree_statement_and_settlement(live_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

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

            # A new task: a refused field first, then the task's empty progress page.
            page.goto(f"{live_url}/console/invite-tasks")
            assert page.locator("#tasks-table tbody tr").count() == 1
            page.fill("#task-code", "newyear")
            page.fill("#task-name", "新年邀请有礼")
            page.fill("#task-goal", "3")
            page.select_option("#task-counts", "first_paid_order")
            page.fill("#task-starts", "2026-11-28")
            page.fill("#task-ends", "2026-11-20")
            page.click("#task-save")
            assert page.locator("#error-ends_on").is_visible()
            # The refused form is answered 422 on purpose; Chromium logs that as an error.
            assert problems == ["Failed to load resource: the server responded with a "
                                "status of 422 (Unprocessable Entity)"]
            problems.clear()
            page.fill("#task-ends", "2026-12-31")
            page.click("#task-save")
            page.wait_for_url(f"{live_url}/console/invite-tasks/newyear")
            assert page.locator("#progress-empty").is_visible()

            # The seeded task: one friend counted, two refused with their reasons.
            page.goto(f"{live_url}/console/invite-tasks/t1")
            row = page.locator("#inviter-p1")
            assert row.locator(".progress-count").inner_text() == "1 / 2"
            assert row.locator(".invitee-reason").count() == 2
            page.screenshot(path=str(shots / "invite-task.png"), full_page=True)

            # The tree of p2: p1 (level 1, a promoter) holds the buyer (level 2).
            page.goto(f"{live_url}/console/referrals")
            page.click("#promoter-p2 a:text('p2')")
            page.wait_for_url(f"{live_url}/console/referrals/p2")
            level2 = page.locator("li.level-2[data-customer=buyer]")
            assert not level2.is_visible()
            page.click("li.level-1[data-customer=p1] > details > summary")
            assert level2.is_visible()
            assert not level2.locator("tr[data-order=o1]").is_visible()
            page.click("#expand-all")
            assert level2.locator("tr[data-order=o1]").is_visible()
            page.click("#collapse-all")
            assert not level2.is_visible()
            page.screenshot(path=str(shots / "referral-tree.png"), full_page=True)

            page.click("#statement-link")
            page.wait_for_url(f"{live_url}/console/referrals/p2/statement")
            assert page.locator("#entries-table tbody tr").count() == 3  # 2 settled, 1 back
            assert page.locator("#commissions-table tbody tr").count() == 3

            page.goto(f"{live_url}/console/referrals")
            page.click("#settle-button")
            page.wait_for_selector("#settle-report")
            assert problems == []
        finally:
            browser.close()
