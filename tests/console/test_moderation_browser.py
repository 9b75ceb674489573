"""The moderation console in a real browser (Debian Chromium via playwright): a moderator
works the queue with the keyboard (claim, B + Enter blocks and the next case shows, E
escalates, J moves on, P passes), an operator adds a lexicon term and "try it" flags a text
with it (htmx, in English), and the incidents board shows the demo's incident card, with no
script error and nothing fetched from outside."""

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
from test_moderation_pages import MODERATOR_PASSWORD, case_id, open_demo_incident, wire

from conftest import T0, _wire
from shequ.core.clock import FixedClock
from shequ.core.permissions import CLI_PRINCIPAL
from shequ.core.web import Services
from shequ.domains.content import service as content
from shequ.domains.moderation import incidents
from shequ.domains.moderation import service as moderation
from shequ.entrypoints.bootstrap import close

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="Debian chromium is not installed (apt-get install chromium)"),
]


@pytest.fixture(autouse=True)
def fresh_lexicon(monkeypatch: pytest.MonkeyPatch) -> None:
    """Look for a new lexicon version on every check."""
    monkeypatch.setattr(moderation, "RELOAD_EVERY_S", 0.0)


@pytest.fixture(scope="module")
def wired(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    found = wire(Path(tmp_path_factory.mktemp("moderation-browser")))
    yield found
    close(found)


@pytest.fixture(scope="module")
def live_url(wired: Services) -> Iterator[str]:
    with serving(wired) as url:
        yield url


def log_in(page: object, live_url: str, username: str, password: str) -> None:
    page.goto(f"{live_url}/console/login")  # type: ignore[attr-defined]
    page.fill("input[name=username]", username)  # type: ignore[attr-defined]
    page.fill("input[name=password]", password)  # type: ignore[attr-defined]
    page.click("#login-form button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_url(f"{live_url}/console/")  # type: ignore[attr-defined]


def test_keyboard_work_mode(wired: Services, live_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    first, second, third = (case_id(wired, key) for key in ("p1", "p2", "p5"))
    shots = _screenshot_dir(tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page, problems = watched_page(browser, live_url)
            log_in(page, live_url, "mod_li", MODERATOR_PASSWORD)
            page.goto(f"{live_url}/console/moderation?level=1")
            assert page.locator("#queue-table tbody tr.is-overdue").count() == 1
            page.screenshot(path=str(shots / "moderation-queue-zh.png"), full_page=True)
            page.click("#claim-next")
            page.wait_for_url(f"{live_url}/console/moderation/work/{first}?level=1")
            assert page.locator("#case-text mark").all_inner_texts() == ["abc12345"]
            page.screenshot(path=str(shots / "moderation-work-zh.png"), full_page=True)

            # B chooses block and puts the prefilled reason in focus; Enter submits it.
            page.keyboard.press("b")
            reason = page.locator("#decision-reason")
            assert reason.input_value() == "广告或联系方式"
            assert page.evaluate("document.activeElement.id") == "decision-reason"
            assert page.locator("#decide-block.is-chosen").count() == 1
            page.keyboard.press("Enter")
            page.wait_for_url(f"{live_url}/console/moderation/work/{second}?level=1"
                              f"&done={first}&did=block")
            assert "已拦截" in page.locator("#done-note").inner_text()
            assert page.locator("#case-head").get_attribute("data-case") == str(second)

            # E escalates; letters typed into the reason stay text, not shortcuts.
            page.keyboard.press("e")
            page.keyboard.press("Control+A")
            page.keyboard.type("bp 价格异常")
            assert page.locator("#decision-action").input_value() == "escalate"
            page.keyboard.press("Enter")
            page.wait_for_url(f"{live_url}/console/moderation/work/{third}?level=1"
                              f"&done={second}&did=escalate")

            # J moves on: the case goes back to the queue and, alone at level 1, returns.
            page.keyboard.press("j")
            page.wait_for_url(f"{live_url}/console/moderation/work/{third}?level=1")
            # Enter with nothing chosen does not submit; P then passes.
            page.focus("#decision-reason")
            page.keyboard.press("Enter")
            assert page.url == f"{live_url}/console/moderation/work/{third}?level=1"
            page.keyboard.press("Escape")
            page.keyboard.press("p")
            page.keyboard.press("Enter")
            page.wait_for_url(f"{live_url}/console/moderation?level=1&empty=true"
                              f"&done={third}&did=pass")
            assert page.locator("#queue-empty").is_visible()
            assert problems == []
        finally:
            browser.close()
    with wired.sessions() as session:
        cases = [moderation.get_case(session, wired.clock, CLI_PRINCIPAL, c)
                 for c in (first, second, third)]
        statuses = [content.get_post(session, CLI_PRINCIPAL, k).status
                    for k in ("p1", "p2", "p5")]
    assert [(c.state, c.label, c.level) for c in cases] == [
        ("decided", "block", 1), ("queued", "review", 2), ("decided", "pass", 1)]
    assert (cases[0].decision_reason, cases[2].decision_reason) == ("广告或联系方式",
                                                                    "未发现违规")
    assert cases[1].actions[-1].reason == "bp 价格异常"
    assert statuses == ["blocked", "held", "published"]


def test_add_a_term_and_try_it_in_english(wired: Services, live_url: str,
                                          tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    shots = _screenshot_dir(tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page, problems = watched_page(browser, live_url)
            log_in(page, live_url, "admin", "admin-pass-1")
            page.goto(f"{live_url}/console/moderation/lexicon")
            page.click(".lang-option[lang=en]")
            page.wait_for_url(f"{live_url}/console/moderation/lexicon")
            assert page.locator("#try-card h2").inner_text() == "Try it"
            # Before: the text passes.
            page.fill("#try-text", "我爱火星果，真好吃")
            page.click("#try-button")
            page.wait_for_selector("#verdict-result[data-label=pass]")
            # A missing category is named under its field; the term is kept.
            page.fill("#term-input", "火星果")
            page.click("#add-button")
            page.wait_for_selector("#error-category")
            assert page.locator("#error-category").inner_text() == \
                "Choose one of the categories."
            assert page.locator("#term-input").input_value() == "火星果"
            # The refused form answers 422, which Chromium logs; nothing else went wrong.
            assert [m for m in problems if "status of 422" not in m] == []
            problems.clear()
            page.select_option("#category-input", "other")
            page.select_option("#severity-input", "2")
            page.fill("#note-input", "browser test")
            page.click("#add-button")
            page.wait_for_selector("#term-added")
            assert page.locator("#terms-table tr[data-term='火星果']").count() == 1
            # After: "try it" flags the text with the new term, swapped in by htmx.
            page.fill("#try-text", "我爱火星果，真好吃")
            page.click("#try-button")
            page.wait_for_selector("#verdict-result[data-label=review]")
            assert page.locator("#verdict-text mark").all_inner_texts() == ["火星果"]
            assert page.url.startswith(f"{live_url}/console/moderation/lexicon?added=")
            page.screenshot(path=str(shots / "moderation-lexicon-en.png"), full_page=True)
            assert problems == []
        finally:
            browser.close()
    with wired.sessions() as session:
        terms = moderation.lexicon_summary(session, CLI_PRINCIPAL).terms
    assert [(t.term, t.category, t.severity, t.note) for t in terms] == [
        ("火星果", "other", 2, "browser test")]


def test_incidents_board_shows_the_card(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    services = _wire(tmp_path / "incident", FixedClock(T0), None)
    try:
        key = open_demo_incident(services)
        add_user(services, "admin", "admin")
        with services.sessions() as session:
            detail = incidents.get_incident(session, services.clock, key)
        with serving(services) as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page, problems = watched_page(browser, url)
                log_in(page, url, "admin", "admin-pass-1")
                page.click("a.nav-link[href='/console/moderation/incidents']")
                page.wait_for_url(f"{url}/console/moderation/incidents")
                card = page.locator(f"#col-monitor article[data-key='{key}']")
                assert card.count() == 1
                assert card.locator(".observed").inner_text() == str(detail.observed)
                assert card.locator(".sla-left").get_attribute("data-left") == "1440"
                page.screenshot(path=str(_screenshot_dir(tmp_path) / "incidents-zh.png"),
                                full_page=True)
                card.locator("h3 a").click()
                page.wait_for_selector("#incident-timeline li[data-kind=opened]")
                page.fill("#owner-input", "王敏")
                page.click("#owner-button")
                page.wait_for_selector("#incident-owner:has-text('王敏')")
                assert problems == []
            finally:
                browser.close()
    finally:
        close(services)
