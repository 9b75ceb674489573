"""The console over HTTP: login, CSRF, roles, navigation, languages, figures."""

from __future__ import annotations

import re
from datetime import timedelta

from console_data import (
    ACTIVE_CUSTOMERS,
    add_user,
    chart_data,
    csrf_in,
    log_in,
    nav_links,
    seed_shop,
)
from fastapi.testclient import TestClient

from conftest import bearer
from shequ.core import auth
from shequ.core.clock import FixedClock
from shequ.core.db import transaction
from shequ.core.permissions import CLI_PRINCIPAL
from shequ.core.web import Services, public
from shequ.domains.catalog import service as catalog
from shequ.domains.catalog.schemas import BrandIn, ProductIn
from shequ.entrypoints.app import create_app

ZH_BAD_LOGIN = "用户名或密码错误。"
ZH_LOCKED = "登录失败次数过多，请 15 分钟后再试。"
ZH_CSRF = "表单已过期或并非来自本后台，请刷新页面后重试。"
ZH_DENIED = "您的角色无权访问此页面。"


# --- logging in and out -------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_the_login_form(client: TestClient) -> None:
    root = client.get("/", follow_redirects=False)
    assert (root.status_code, root.headers["location"]) == (307, "/console/")
    page = client.get("/console/products?brand=b1", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/console/login?next=/console/products%3Fbrand%3Db1"
    form = client.get(page.headers["location"])
    assert form.status_code == 200
    assert 'name="next" value="/console/products?brand=b1"' in form.text


def test_htmx_request_without_session_is_told_to_redirect(client: TestClient) -> None:
    r = client.get("/console/products", headers={"HX-Request": "true"}, follow_redirects=False)
    assert r.status_code == 401
    assert r.headers["hx-redirect"] == "/console/login?next=/console/products"


def test_api_paths_keep_their_json_errors(client: TestClient) -> None:
    r = client.get("/api/v1/products")
    assert r.status_code == 401
    assert r.json() == {"type": "client_error", "code": "not_authenticated",
                        "detail": "log in or send an API key", "attr": None}


def test_login_starts_a_fresh_session(client: TestClient, services: Services) -> None:
    add_user(services, "admin", "admin")
    form_token = csrf_in(client.get("/console/login").text)
    r = log_in(client, "admin", next_path="/console/audit")
    assert (r.status_code, r.headers["location"]) == (303, "/console/audit")
    page = client.get("/console/audit")
    assert page.status_code == 200
    assert csrf_in(page.text) != form_token


def test_login_refuses_a_foreign_next_target(client: TestClient, services: Services) -> None:
    add_user(services, "admin", "admin")
    r = log_in(client, "admin", next_path="https://evil.example/console/")
    assert r.headers["location"] == "/console/"


def test_wrong_password_is_shown_in_the_form(client: TestClient, services: Services) -> None:
    add_user(services, "admin", "admin")
    r = log_in(client, "admin", "not-the-password")
    assert r.status_code == 200
    assert ZH_BAD_LOGIN in r.text
    assert 'name="username" value="admin"' in r.text
    assert client.get("/console/", follow_redirects=False).status_code == 303


def test_login_is_locked_after_five_failures(client: TestClient, services: Services,
                                             clock: FixedClock) -> None:
    add_user(services, "admin", "admin")
    failures = [log_in(client, "admin", "wrong-pass") for _ in range(5)]
    assert [(r.status_code, ZH_BAD_LOGIN in r.text) for r in failures] == [(200, True)] * 5
    locked = log_in(client, "admin")
    assert locked.status_code == 429
    assert ZH_LOCKED in locked.text
    clock.advance(timedelta(minutes=16))
    assert log_in(client, "admin").status_code == 303


def test_login_form_without_its_token_is_refused(client: TestClient, services: Services) -> None:
    add_user(services, "admin", "admin")
    client.get("/console/login")
    r = client.post("/console/login", data={"username": "admin", "password": "admin-pass-1"},
                    follow_redirects=False)
    assert r.status_code == 403
    assert ZH_CSRF in r.text
    assert client.get("/console/", follow_redirects=False).status_code == 303


def test_logout_needs_the_token_and_ends_the_session(client: TestClient,
                                                     services: Services) -> None:
    add_user(services, "admin", "admin")
    log_in(client, "admin")
    refused = client.post("/console/logout", data={"csrf_token": "forged"})
    assert refused.status_code == 403
    token = csrf_in(client.get("/console/").text)
    r = client.post("/console/logout", data={"csrf_token": token}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/console/login")
    assert client.get("/console/", follow_redirects=False).status_code == 303


# --- CSRF and roles ---------------------------------------------------------------------------


def _key_count(services: Services) -> int:
    with transaction(services.sessions) as s:
        return len(auth.list_api_keys(s))


def test_post_without_csrf_token_is_refused(client: TestClient, services: Services) -> None:
    add_user(services, "admin", "admin")
    log_in(client, "admin")
    form = {"name": "erp", "scopes": ["catalog:read"]}
    missing = client.post("/console/api-keys", data=form)
    forged = client.post("/console/api-keys", data=form, headers={"X-CSRF-Token": "forged"})
    assert (missing.status_code, forged.status_code) == (403, 403)
    assert ZH_CSRF in missing.text
    assert _key_count(services) == 0
    token = csrf_in(client.get("/console/api-keys").text)
    created = client.post("/console/api-keys", data=form, headers={"X-CSRF-Token": token})
    assert created.status_code == 201
    assert _key_count(services) == 1


def test_analyst_sees_no_admin_pages(client: TestClient, services: Services) -> None:
    add_user(services, "ana", "analyst")
    log_in(client, "ana")
    page = client.get("/console/")
    assert nav_links(page.text) == [
        "/console/", "/console/metrics", "/console/alerts", "/console/trends", "/console/funnel",
        "/console/paths",
        "/console/heatmap", "/console/dwell", "/console/retention", "/console/customers",
        "/console/value-matrix", "/console/segments", "/console/lifecycle",
        "/console/membership", "/console/content", "/console/creators", "/console/hubs",
        "/console/reports/needs", "/console/moderation", "/console/moderation/lexicon",
        "/console/moderation/incidents", "/console/campaigns", "/console/calendar",
        "/console/group-buying", "/console/coupons", "/console/invite-tasks",
        "/console/referrals", "/console/points", "/console/points/rewards",
        "/console/products"]
    assert "数据分析师" in page.text
    denied = client.get("/console/api-keys")
    assert denied.status_code == 403
    assert ZH_DENIED in denied.text
    assert client.get("/console/audit").status_code == 403


def test_every_nav_link_of_an_admin_opens(client: TestClient, services: Services) -> None:
    add_user(services, "admin", "admin")
    log_in(client, "admin")
    links = nav_links(client.get("/console/").text)
    assert links == ["/console/", "/console/metrics", "/console/alerts", "/console/trends",
                     "/console/funnel",
                     "/console/paths", "/console/heatmap", "/console/dwell",
                     "/console/retention", "/console/customers", "/console/value-matrix",
                     "/console/segments", "/console/lifecycle", "/console/membership",
                     "/console/content", "/console/creators", "/console/hubs",
                     "/console/reports/needs", "/console/moderation",
                     "/console/moderation/lexicon", "/console/moderation/incidents",
                     "/console/campaigns", "/console/calendar", "/console/group-buying",
                     "/console/coupons", "/console/invite-tasks", "/console/referrals",
                     "/console/points", "/console/points/rewards", "/console/points/verify",
                     "/console/products", "/console/audit", "/console/api-keys"]
    assert {link: client.get(link).status_code for link in links} == dict.fromkeys(links, 200)


def test_unknown_console_page_is_an_html_404(client: TestClient, services: Services) -> None:
    add_user(services, "admin", "admin")
    log_in(client, "admin")
    r = client.get("/console/no-such-page")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert "页面不存在" in r.text


# --- languages and figures ----------------------------------------------------------------------


def test_chinese_by_default_english_after_the_switch(client: TestClient,
                                                     services: Services) -> None:
    seed_shop(services)
    add_user(services, "admin", "admin")
    log_in(client, "admin")
    zh = client.get("/console/")
    assert '<html lang="zh-CN">' in zh.text
    assert "<title>概览 · 社区运营后台</title>" in zh.text
    assert "2026年10月22日 – 2026年11月20日" in zh.text
    assert ">¥1.32万<" in zh.text
    switched = client.get("/console/lang/en?next=/console/", follow_redirects=False)
    assert (switched.status_code, switched.headers["location"]) == (303, "/console/")
    en = client.get("/console/")
    assert '<html lang="en">' in en.text
    assert "<title>Overview · shequ console</title>" in en.text
    assert "Oct 22, 2026 – Nov 20, 2026" in en.text
    assert ">¥13,197.00<" in en.text
    assert chart_data(en.text)["labels"][:2] == ["Oct 22", "Oct 23"]


def test_language_choice_survives_logout(client: TestClient, services: Services) -> None:
    add_user(services, "admin", "admin")
    client.get("/console/lang/en?next=/console/login")
    assert log_in(client, "admin").status_code == 303
    token = csrf_in(client.get("/console/").text)
    client.post("/console/logout", data={"csrf_token": token})
    form = client.get("/console/login")
    assert "Log in to the console" in form.text


def test_overview_shows_the_last_30_days(client: TestClient, services: Services) -> None:
    shop = seed_shop(services)
    add_user(services, "admin", "admin")
    log_in(client, "admin")
    html = client.get("/console/").text
    assert '<p class="kpi-value">¥1.32万</p>' in html
    assert '<p class="kpi-value">2</p>' in html
    assert f'<p class="kpi-value">{ACTIVE_CUSTOMERS}</p>' in html
    assert f'<p class="kpi-value">{shop.events_total}</p>' in html
    data = chart_data(html)
    assert data["values"] == shop.events_per_day
    labels = data["labels"]
    assert (labels[0], labels[-1], len(labels)) == ("10月22日", "11月20日", 30)
    assert data["name"] == "行为事件"


def test_partner_sees_only_its_brands_sales(client: TestClient, services: Services) -> None:
    shop = seed_shop(services)
    add_user(services, "partner", "partner", brand_ids=[shop.brand_ids["b1"]])
    log_in(client, "partner")
    html = client.get("/console/").text
    assert '<p class="kpi-value">¥198.00</p>' in html
    assert '<p class="kpi-value">1</p>' in html
    assert 'id="kpi-customers"' not in html
    assert 'id="events-chart"' not in html
    assert "数据仅包含您所属品牌的销售。" in html
    products = client.get("/console/products").text
    assert ("SKU1" in products, "SKU2" in products, "SKU3" in products) == (True, True, False)


def test_products_filter_by_brand_answers_htmx_with_the_table(client: TestClient,
                                                              services: Services) -> None:
    seed_shop(services)
    add_user(services, "admin", "admin")
    log_in(client, "admin")
    full = client.get("/console/products")
    assert "共 3 条" in full.text
    assert "¥12,999.00" in full.text
    assert "¥99.00" in full.text
    part = client.get("/console/products?brand=b2", headers={"HX-Request": "true"})
    assert part.text.lstrip().startswith('<div id="products-table"')
    assert ("SKU3" in part.text, "SKU1" in part.text, "共 1 条" in part.text) == (True, False, True)


def test_api_key_is_shown_once_and_can_be_revoked(client: TestClient, services: Services) -> None:
    add_user(services, "admin", "admin")
    log_in(client, "admin")
    token = csrf_in(client.get("/console/api-keys").text)
    created = client.post("/console/api-keys", data={
        "name": "小程序后端", "scopes": ["catalog:read"], "csrf_token": token})
    assert created.status_code == 201
    secret = created.text.split('<code id="issued-secret">')[1].split("</code>")[0]
    assert secret.startswith("shq_")
    assert client.get("/api/v1/products", headers=bearer(secret)).status_code == 200
    listing = client.get("/console/api-keys").text
    assert secret not in listing
    assert "小程序后端" in listing
    row = client.post("/console/api-keys/1/revoke",
                      headers={"X-CSRF-Token": token, "HX-Request": "true"})
    assert row.text.startswith('<tr id="key-1" class="is-revoked">')
    assert "已于 2026年11月20日 吊销" in row.text
    assert client.get("/api/v1/products", headers=bearer(secret)).status_code == 401


def test_api_key_form_errors_are_shown(client: TestClient, services: Services) -> None:
    add_user(services, "admin", "admin")
    log_in(client, "admin")
    token = csrf_in(client.get("/console/api-keys").text)
    r = client.post("/console/api-keys", data={"name": "erp", "csrf_token": token})
    assert r.status_code == 422
    assert "请至少选择一项权限。" in r.text
    assert 'value="erp"' in r.text
    assert _key_count(services) == 0


def test_audit_page_names_who_changed_what(client: TestClient, services: Services) -> None:
    user_id = add_user(services, "admin", "admin")
    log_in(client, "admin")
    token = csrf_in(client.get("/console/api-keys").text)
    client.post("/console/api-keys", data={"name": "erp", "scopes": ["orders:read"],
                                           "csrf_token": token})
    html = client.get("/console/audit").text
    assert f'admin <code class="muted">user:{user_id}</code>' in html
    assert "<code>api_keys #1</code>" in html
    assert '<span class="badge badge-green">新建</span>' in html
    assert "<ins>***</ins>" in html
    # The audit trail stamps the wall clock, not the test's clock: check the format only.
    assert re.search(r'<td class="nowrap">\d{4}年\d{1,2}月\d{1,2}日 \d{2}:\d{2}</td>', html)


def test_vendored_scripts_are_served(client: TestClient) -> None:
    for name in ("echarts.min.js", "htmx.min.js"):
        r = client.get(f"/console/static/vendor/{name}")
        assert r.status_code == 200
        assert "javascript" in r.headers["content-type"]


def test_a_deactivated_user_is_sent_back_to_the_login_form(client: TestClient,
                                                           services: Services) -> None:
    user_id = add_user(services, "admin", "admin")
    log_in(client, "admin")
    with transaction(services.sessions) as s:
        s.get(auth.User, user_id).is_active = False  # type: ignore[union-attr]
    r = client.get("/console/products")
    assert r.url.path == "/console/login"
    assert 'name="username"' in r.text


def test_unexpected_error_is_an_html_500(services: Services) -> None:
    app = create_app(services=services)

    @app.get("/console/boom", dependencies=[public()])
    def boom() -> None:
        raise RuntimeError("boom")

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/console/boom")
    assert r.status_code == 500
    assert r.headers["content-type"].startswith("text/html")
    assert "出错了" in r.text


def test_products_are_paged_by_twenty(client: TestClient, services: Services) -> None:
    with transaction(services.sessions) as s:
        catalog.create_brand(s, BrandIn(external_id="b1", name="花知晓"))
        for n in range(25):
            catalog.create_product(s, services.clock, CLI_PRINCIPAL, ProductIn(
                sku=f"SKU{n:02d}", name=f"商品{n}", brand_external_id="b1", price_fen=100))
    add_user(services, "admin", "admin")
    log_in(client, "admin")
    first = client.get("/console/products").text
    second = client.get("/console/products?page=2").text
    assert (first.count("<code>SKU"), second.count("<code>SKU")) == (20, 5)
    assert "第 1 页，共 2 页" in first
    assert "<code>SKU24</code>" in second
    assert "已超出最后一页。" in client.get("/console/products?page=3").text
    assert client.get("/console/products?page=0").status_code == 422
