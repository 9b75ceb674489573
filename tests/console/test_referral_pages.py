"""The invite-task and referral console pages over HTTP on real stores: the task list with
its create form and field errors, a task's progress table with the reason each invitee
did not count, the promoters list with the rule form and the settle button, a promoter's
two-level tree and statement, and who may open or change what."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from console_data import add_user, csrf_in, log_in
from fastapi import FastAPI
from fastapi.testclient import TestClient

from shequ.core.web import Services
from shequ.domains.campaigns import referrals
from shequ.entrypoints.app import create_app
from shequ.entrypoints.console.referral_pages import router

# The domain tests' builders (shop, orders, the referral chain, invite tasks).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "domains"))
from test_invite_tasks import invite, task
from test_referrals import add_people, advance, buy, chain, move

TASKS = "/console/invite-tasks"
REFERRALS = "/console/referrals"


def app_for(services: Services) -> FastAPI:
    """The app with the referral pages (mounted here until the console includes them)."""
    app = create_app(services=services)
    if not any(getattr(r, "path", "") == TASKS for r in app.routes):
        app.include_router(router)
        # The console's catch-all routes (if any) must not shadow these pages.
        mine = [r for r in app.router.routes if getattr(r, "path", "").startswith(
            (TASKS, REFERRALS))]
        others = [r for r in app.router.routes if r not in mine]
        app.router.routes[:] = mine + others
    return app


def seed(services: Services) -> None:
    """A three-deep referral chain with a settled, a refunded and a pending order, and
    an invite task with one counted and two refused invitees."""
    chain(services)
    buy(services, "o1", "buyer", to="completed")
    buy(services, "o2", "buyer", to="completed")
    buy(services, "o3", "buyer")
    advance(services, timedelta(days=8))
    referrals.settle_commissions(services)
    move(services, "o2", "refunded")
    task(services, goal=2, days=30)
    add_people(services, "newbie")
    invite(services, "p1", "newbie")
    invite(services, "p1", "p1")
    invite(services, "p1", "p3", device="x")  # p3 registered days ago: existing customer


@pytest.fixture
def admin(services: Services) -> Iterator[TestClient]:
    seed(services)
    add_user(services, "admin", "admin")
    with TestClient(app_for(services)) as client:
        assert log_in(client, "admin").status_code == 303
        # these tests read the English labels; test_console_i18n covers the catalogs
        assert client.get("/console/lang/en", follow_redirects=False).status_code == 303
        yield client


def test_task_list_and_create_form(admin: TestClient) -> None:
    page = admin.get(TASKS)
    assert page.status_code == 200
    assert 'id="task-t1"' in page.text
    token = csrf_in(page.text)
    bad = admin.post(TASKS, data={"csrf_token": token, "code": "bad code", "name": "",
                                  "goal": "0", "counts": "registered", "starts_on": "2026-11-20",
                                  "ends_on": "2026-11-19", "reward_points": "10"})
    assert bad.status_code == 422
    for field in ("code", "name", "goal"):
        assert f'id="error-{field}"' in bad.text
    assert 'value="bad code"' in bad.text  # the form keeps what was typed
    backwards = admin.post(TASKS, data={
        "csrf_token": token, "code": "t2", "name": "邀请", "goal": "3",
        "counts": "first_paid_order", "starts_on": "2026-11-20", "ends_on": "2026-11-10",
        "reward_points": "10"})
    assert backwards.status_code == 422
    assert 'id="error-ends_on"' in backwards.text
    made = admin.post(TASKS, data={
        "csrf_token": token, "code": "t2", "name": "邀请好友首单", "goal": "3",
        "counts": "first_paid_order", "starts_on": "2026-11-20", "ends_on": "2026-11-30",
        "reward_points": "800"}, follow_redirects=False)
    assert made.status_code == 303
    assert made.headers["location"] == f"{TASKS}/t2"
    shown = admin.get(f"{TASKS}/t2")
    assert 'id="progress-empty"' in shown.text
    assert "邀请好友首单" in admin.get(TASKS).text


def test_task_page_shows_progress_and_reasons(admin: TestClient) -> None:
    page = admin.get(f"{TASKS}/t1")
    assert page.status_code == 200
    row = re.search(r'<tr id="inviter-p1">.*?</tr>', page.text, re.S)
    assert row is not None
    assert "1 / 2" in row.group(0)
    assert 'data-state="counted"' in row.group(0)
    assert "Invited themselves" in row.group(0)
    assert "Already a customer before the invite" in row.group(0)
    assert re.search(r'id="kpi-rejected">2<', page.text)
    assert admin.get(f"{TASKS}/nope").status_code == 404


def test_referrals_page_rule_form_and_settle(admin: TestClient) -> None:
    page = admin.get(REFERRALS)
    assert page.status_code == 200
    assert "/r/CODEP1" in page.text
    row = re.search(r'<tr id="promoter-p1">.*?</tr>', page.text, re.S)
    assert row is not None
    assert "¥10.00" in row.group(0)  # o1 settled (¥10); o2 clawed back before settling
    token = csrf_in(page.text)
    bad = admin.post(f"{REFERRALS}/rules", data={"csrf_token": token, "level1_bp": "100",
                                                  "level2_bp": "200", "attribution_days": "7",
                                                  "return_days": "7"})
    assert bad.status_code == 422
    assert 'id="error-level2_bp"' in bad.text
    good = admin.post(f"{REFERRALS}/rules", data={"csrf_token": token, "level1_bp": "800",
                                                   "level2_bp": "200", "attribution_days": "3",
                                                   "return_days": "5"}, follow_redirects=True)
    assert "Level 1 (the promoter whose link the buyer came by): 8 %" in good.text
    settled = admin.post(f"{REFERRALS}/settle", data={"csrf_token": token},
                         follow_redirects=True)
    assert 'id="settle-report"' in settled.text
    made = admin.post(f"{REFERRALS}/promoters", data={"csrf_token": token, "customer": "nobody",
                                                       "code": ""})
    assert made.status_code == 422
    assert 'id="error-promoter_customer"' in made.text


def test_tree_and_statement(admin: TestClient) -> None:
    tree = admin.get(f"{REFERRALS}/p2")
    assert tree.status_code == 200
    assert re.search(r'id="kpi-level1">1<', tree.text)
    assert re.search(r'id="kpi-level2">1<', tree.text)
    level2 = re.search(r'<li class="level-2" data-customer="buyer">.*?</li>', tree.text, re.S)
    assert level2 is not None
    assert 'data-order="o1"' in level2.group(0)
    assert "¥3.00" in level2.group(0)  # p2 earns 3 % of ¥100 on o1 at level 2
    # Under p1: o1 settled and o3 pending pay p2 ¥3 each; o2 was clawed back.
    assert re.search(r'class="muted level2-total">Level 2 below: ¥6.00<', tree.text)
    statement = admin.get(f"{REFERRALS}/p1/statement")
    assert statement.status_code == 200
    kinds = re.findall(r'<tr data-kind="(\w+)"', statement.text)
    assert kinds == ["clawback", "settle", "settle"]
    assert re.search(r'id="kpi-balance">¥10.00<', statement.text)
    assert admin.get(f"{REFERRALS}/buyer").status_code == 404  # not a promoter


def test_who_may_open_and_change(services: Services) -> None:
    add_user(services, "ana", "analyst")
    add_user(services, "partner", "partner", brand_ids=[1])
    with TestClient(app_for(services)) as client:
        log_in(client, "ana")
        page = client.get(TASKS)
        assert page.status_code == 200
        assert 'id="task-form"' not in page.text
        assert 'id="tasks-empty"' in page.text
        assert 'id="promoters-empty"' in client.get(REFERRALS).text
        assert client.post(TASKS, data={"csrf_token": csrf_in(page.text)}).status_code == 403
    with TestClient(app_for(services)) as client:
        log_in(client, "partner")
        assert client.get(TASKS).status_code == 403
        assert client.get(REFERRALS).status_code == 403
