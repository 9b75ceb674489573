"""The content-ecosystem pages over HTTP on a small community: the library's filters and
htmx table, a post's explained score with its sources, creators with the ladder and the
fund, a creator's dashboard, hubs, and the needs white paper with its downloads. The
figures shown are the services' own; partners see their brands and no creator pages."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from console_data import add_user, log_in, nav_links
from fastapi.testclient import TestClient

from conftest import T0, _wire, bearer, make_key
from needs_community import build_community
from shequ.core.clock import FixedClock
from shequ.core.db import transaction
from shequ.core.permissions import CLI_PRINCIPAL, PERMISSIONS
from shequ.core.web import Services
from shequ.domains.community import service as community
from shequ.domains.content import needs
from shequ.domains.content import service as content
from shequ.domains.content.schemas import ContentType, PostSort
from shequ.domains.orders import service as orders
from shequ.domains.orders.schemas import LineIn, OrderIn
from shequ.entrypoints.app import create_app
from shequ.entrypoints.bootstrap import close

PAGES = ("/console/content", "/console/creators", "/console/hubs", "/console/reports/needs")
CREAM = ("这款修护面霜我用了两周，烟酰胺和神经酰胺的搭配很温和，"
         "上脸不油腻，早晚各用一次，干皮秋冬很合适。")
# (post, author, hub, type, days before the clock, sku, title, body)
POSTS = (
    ("p2", "c1", "h1", "knowledge", 3, None, "烟酰胺到底怎么用",
     "烟酰胺浓度从百分之二到百分之五都有，敏感肌先从低浓度开始，配合保湿一起用，不要和高浓度酸叠加。"),
    ("p3", "c1", "h1", "review", 5, "SKU1", "修护面霜两周测评", CREAM),
    ("p4", "c2", "h1", "scenario", 2, None, "出差三天的护肤小包",
     "出差只带三样：洗面奶、修护面霜和防晒，分装到小瓶里，飞机上也能补水，酒店空调房里皮肤不紧绷。"),
    ("p5", "c3", "h2", "story", 4, None, "我和降噪耳机的通勤故事",
     "每天地铁一个小时，以前吵得头疼，戴上降噪耳机以后终于能安静听书，通勤变成一天里最放松的时间。"),
    ("p6", "c2", "h1", "review", 1, "SKU1", "修护面霜测评（转）", CREAM),
)
COMMENTS = (("m1", "p2", "c4", "讲得很清楚，收藏了"), ("m2", "p2", "c5", "敏感肌请问能用吗"),
            ("m3", "p4", "c6", "分装瓶求链接"))
# (event, customer, post, hours before the clock, dwell ms)
VIEWS = (("v1", "c7", "p3", 50, 12_000), ("v2", "c8", "p4", 30, 30_000),
         ("v3", "c9", "p5", 20, 5_000), ("v4", "c7", "p2", 10, 45_000))
Headers = dict[str, str]


def _post(client: TestClient, headers: Headers, path: str, body: dict[str, Any]) -> None:
    got = client.post(path, json=body, headers=headers)
    assert got.status_code in (200, 201), got.text


def build_content(services: Services) -> None:
    """The needs community (reviews of two quarters, post p1), two hubs, three creators,
    five recent posts (p6 copies p3), comments, post views with dwell, one order by a
    viewer of p3, the scores refreshed and the community populated (ladder, academy,
    memberships, a closed fund round)."""
    headers = bearer(make_key(services, sorted(PERMISSIONS)))
    with TestClient(create_app(services=services)) as client:
        build_community(client, headers)
        _post(client, headers, "/api/v1/hubs", {"external_id": "h1", "name": "护肤研究所",
                                                "brand_external_id": "b1"})
        _post(client, headers, "/api/v1/hubs", {"external_id": "h2", "name": "数码生活"})
        for key, customer, hub, name, level in (("cr1", "c1", "h1", "小林", "KOC"),
                                                ("cr2", "c2", "h1", "阿泽", "expert"),
                                                ("cr3", "c3", "h2", "木木", "KOC")):
            _post(client, headers, "/api/v1/creators", {
                "external_id": key, "customer_external_id": customer, "display_name": name,
                "level": level, "hub_external_id": hub,
                "joined_at": (T0 - timedelta(days=60)).isoformat()})
        for key, author, hub, kind, days, sku, title, body in POSTS:
            _post(client, headers, "/api/v1/posts", {
                "external_id": key, "author_customer_external_id": author,
                "hub_external_id": hub, "content_type": kind, "title": title, "body": body,
                "sku": sku, "created_at": (T0 - timedelta(days=days)).isoformat()})
        for key, post, customer, text in COMMENTS:
            _post(client, headers, f"/api/v1/posts/{post}/comments", {
                "external_id": key, "customer_external_id": customer, "text": text,
                "created_at": (T0 - timedelta(hours=12)).isoformat()})
        events = [{"event_id": key, "name": "post_view", "customer_id": customer,
                   "timestamp": (T0 - timedelta(hours=hours)).isoformat(),
                   "properties": {"post_id": post}, "dwell_ms": dwell}
                  for key, customer, post, hours, dwell in VIEWS]
        _post(client, headers, "/api/v1/events", events)  # type: ignore[arg-type]
    paid_at = FixedClock(T0 - timedelta(hours=20))  # c7 viewed p3 30 hours before
    with transaction(services.sessions) as s:
        orders.create_order(s, paid_at, OrderIn(external_id="o1", customer_external_id="c7",
                                                lines=[LineIn(sku="SKU1", quantity=1)]))
        orders.transition_order(s, paid_at, CLI_PRINCIPAL, "o1", "paid")
    content.refresh_scores(services, CLI_PRINCIPAL)
    with transaction(services.sessions) as session:
        community.populate_from_content(session, services.clock)


@pytest.fixture(scope="module")
def wired(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    found = _wire(Path(tmp_path_factory.mktemp("content-pages")), FixedClock(T0), None)
    build_content(found)
    add_user(found, "admin", "admin")
    add_user(found, "ana", "analyst")
    add_user(found, "partner", "partner", brand_ids=[1])
    yield found
    close(found)


def _client(wired: Services, username: str) -> Iterator[TestClient]:
    with TestClient(create_app(services=wired)) as c:
        assert log_in(c, username).status_code == 303
        yield c


@pytest.fixture(scope="module")
def admin(wired: Services) -> Iterator[TestClient]:
    yield from _client(wired, "admin")


def chart_option(html: str, chart_id: str) -> dict[str, Any]:
    found = re.search(rf'<script type="application/json" id="{chart_id}-data">(.*?)</script>',
                      html, re.S)
    assert found is not None, f"no chart {chart_id}"
    option: dict[str, Any] = json.loads(found.group(1))
    return option


def row_ids(html: str, table_id: str, prefix: str) -> list[str]:
    body = re.search(rf'<table class="[^"]*" id="{table_id}">.*?<tbody>(.*?)</tbody>', html, re.S)
    assert body is not None, f"no table {table_id}"
    return re.findall(rf'<tr id="{prefix}-([^"]+)"', body.group(1))


def rows(html: str, table_id: str) -> list[str]:
    body = re.search(rf'<table class="[^"]*" id="{table_id}">.*?<tbody>(.*?)</tbody>', html, re.S)
    assert body is not None, f"no table {table_id}"
    return re.findall(r"<tr[^>]*>.*?</tr>", body.group(1), re.S)


# --- navigation and access ---------------------------------------------------------------


def test_every_content_page_is_linked_and_opens(admin: TestClient) -> None:
    links = nav_links(admin.get("/console/").text)
    for path in PAGES:
        assert path in links
        assert admin.get(path).status_code == 200, path


def test_partner_sees_its_brands_and_no_creator_pages(wired: Services) -> None:
    for c in _client(wired, "partner"):
        links = nav_links(c.get("/console/").text)
        assert {"/console/content", "/console/hubs", "/console/reports/needs"} <= set(links)
        assert "/console/creators" not in links
        assert c.get("/console/creators").status_code == 403
        assert c.get("/console/creators/cr1").status_code == 403
        library = c.get("/console/content").text
        # Brand b1 (id 1): posts about SKU1 only; the hub list holds its brand's hub only.
        assert sorted(row_ids(library, "posts-table", "post")) == ["p1", "p3", "p6"]
        assert c.get("/console/content/p4").status_code == 404
        assert row_ids(c.get("/console/hubs").text, "hubs-table", "hub") == ["h1"]
        assert c.get("/console/hubs/h2").status_code == 404


# --- the content library -----------------------------------------------------------------


def test_library_lists_posts_newest_first_with_their_scores(admin: TestClient,
                                                             wired: Services) -> None:
    html = admin.get("/console/content").text
    with wired.sessions() as session:
        listed = content.list_posts(session, CLI_PRINCIPAL, limit=20)
    assert row_ids(html, "posts-table", "post") == [p.external_id for p in listed.items]
    assert 'id="content-total">共 6 条<' in html
    best = admin.get("/console/content?sort=score").text
    with wired.sessions() as session:
        ranked = content.list_posts(session, CLI_PRINCIPAL, sort=PostSort.SCORE, limit=20)
    assert row_ids(best, "posts-table", "post") == [p.external_id for p in ranked.items]


def test_filters_by_type_sentiment_score_and_hub(admin: TestClient, wired: Services) -> None:
    reviews = admin.get("/console/content?type=review").text
    assert sorted(row_ids(reviews, "posts-table", "post")) == ["p3", "p6"]
    assert 'value="review" selected' in reviews
    assert row_ids(admin.get("/console/content?hub=h2").text, "posts-table", "post") == ["p5"]
    with wired.sessions() as session:
        listed = content.list_posts(session, CLI_PRINCIPAL, limit=50).items
    scored = [p for p in listed if p.quality is not None and p.quality >= 40]
    at_least = admin.get("/console/content?min_score=40").text
    assert sorted(row_ids(at_least, "posts-table", "post")) == sorted(
        p.external_id for p in scored)
    positive = admin.get("/console/content?sentiment=pos").text
    assert sorted(row_ids(positive, "posts-table", "post")) == sorted(
        p.external_id for p in listed if p.sentiment is not None and p.sentiment >= 0.6)
    nothing = admin.get("/console/content?type=story&hub=h1").text
    assert 'id="content-empty"' in nothing
    assert "没有符合筛选条件的帖子" in nothing
    bad = admin.get("/console/content?type=poem")
    assert bad.status_code == 422
    assert "<html" in bad.text
    assert admin.get("/console/content?min_score=101").status_code == 422
    form = admin.get("/console/content?type=review&sentiment=&min_score=&hub=&sort=new").text
    assert sorted(row_ids(form, "posts-table", "post")) == ["p3", "p6"]


def test_htmx_filter_answers_with_the_table_only(admin: TestClient) -> None:
    answer = admin.get("/console/content?type=knowledge", headers={"HX-Request": "true"})
    assert answer.status_code == 200
    assert answer.text.lstrip().startswith('<div id="content-table"')
    assert "<html" not in answer.text
    assert "dwell-chart" not in answer.text
    assert sorted(row_ids(answer.text, "posts-table", "post")) == ["p1", "p2"]
    past = admin.get("/console/content?page=9").text
    assert 'id="content-empty"' in past
    assert "已超出最后一页。" in past


def test_dwell_chart_holds_the_service_figures(admin: TestClient, wired: Services) -> None:
    html = admin.get("/console/content").text
    option = chart_option(html, "dwell-chart")
    with wired.sessions() as session:
        dwell = content.dwell_by_type(session, wired, CLI_PRINCIPAL, T0 - timedelta(days=30), T0)
    assert option["xAxis"]["data"] == [{"knowledge": "知识科普", "review": "产品测评",
                                        "scenario": "场景种草", "story": "用户故事"}[g.group]
                                       for g in dwell.groups]
    assert option["series"][0]["data"] == [round(g.median_seconds or 0, 1) for g in dwell.groups]
    assert len(rows(html, "dwell-table")) == len(dwell.groups) == 4


# --- a post ------------------------------------------------------------------------------


def test_post_page_explains_the_score_and_links_its_source(admin: TestClient,
                                                           wired: Services) -> None:
    html = admin.get("/console/content/p6").text
    with wired.sessions() as session:
        score = content.get_post_score(session, CLI_PRINCIPAL, "p6")
    assert score.quality is not None
    assert score.components is not None
    assert f'id="post-quality">{score.quality:.1f}<' in html
    assert '<a href="/console/content/p3">p3</a>' in html
    assert [s.post for s in score.sources] == ["p3"]
    option = chart_option(html, "components-chart")
    assert option["yAxis"]["data"] == ["原创度", "传播力", "转化率"]
    assert [d["value"] for d in option["series"][0]["data"]] == [
        round(c.contribution, 1) for c in score.components.values()]
    assert len(rows(html, "components-table")) == 3
    assert "独立浏览人数" in html  # the inputs are named
    original = admin.get("/console/content/p2").text
    assert 'id="sources-empty"' in original
    assert len(rows(original, "comments-table")) == 2
    assert "敏感肌请问能用吗" in original
    assert admin.get("/console/content/nope").status_code == 404


# --- creators ----------------------------------------------------------------------------


def test_creators_list_shows_level_score_and_conversion(admin: TestClient,
                                                       wired: Services) -> None:
    html = admin.get("/console/creators").text
    assert row_ids(html, "creators-table", "creator") == ["cr1", "cr2", "cr3"]
    with wired.sessions() as session:
        board = community.dashboard(session, wired.clock, "cr1")
        levels = community.list_levels(session)
        rounds = community.list_rounds(session)
    first = rows(html, "creators-table")[0]
    assert f"{board.score:.1f}" in first
    assert board.creator.orders == 1  # o1, bought after viewing p3
    assert board.creator.conversion is not None
    assert f"{100 * board.creator.conversion:.2f}%" in first
    assert f'data-level="{board.level}"' in first
    assert len(rows(html, "ladder-table")) == len(levels) == 4
    assert row_ids(html, "rounds-table", "round") == [r.key for r in rounds]
    assert len(rows(html, "retention-table")) == 6
    assert admin.get("/console/creators?days=999").status_code == 422


def test_creator_dashboard_shows_criteria_academy_and_trend(admin: TestClient,
                                                            wired: Services) -> None:
    html = admin.get("/console/creators/cr1").text
    with wired.sessions() as session:
        board = community.dashboard(session, wired.clock, "cr1")
        standing = community.standing(session, wired.clock, "cr1")
    assert f'id="creator-score">{board.score:.1f}<' in html
    checks = rows(html, "checks-table")
    assert len(checks) == len(standing.checks)
    assert [('data-passed="yes"' in row) for row in checks] == [c.passed for c in
                                                                standing.checks]
    assert len(rows(html, "academy-table")) == board.academy.tasks
    assert board.academy.completed == 3  # the required tasks, credited at the first post
    assert f'id="academy-progress">已完成 3 / {board.academy.tasks} 项任务<' in html
    trend = chart_option(html, "trend-chart")
    with wired.sessions() as session:
        posts = content.list_posts(session, CLI_PRINCIPAL, author="c1").items
    assert len(trend["series"][0]["data"]) == sum(p.quality is not None for p in posts)
    comparison = chart_option(html, "comparison-chart")
    assert comparison["yAxis"]["data"][0] == "笔记"
    assert len(rows(html, "creator-posts")) == len(posts) == 3
    assert admin.get("/console/creators/nobody").status_code == 404


# --- hubs --------------------------------------------------------------------------------


def test_hubs_and_a_hub_page(admin: TestClient, wired: Services) -> None:
    listed = admin.get("/console/hubs").text
    assert row_ids(listed, "hubs-table", "hub") == ["h1", "h2"]
    with wired.sessions() as session:
        metrics = community.hub_metrics(session, wired.clock, "h1", weeks=12,
                                        zone=wired.settings.zone)
        feed = community.hub_feed(session, "h1", order="best")
    html = admin.get("/console/hubs/h1?order=best").text
    for role, count in metrics.members.items():
        assert f'id="members-{role}">{count}<' in html
    option = chart_option(html, "weeks-chart")
    assert option["series"][1]["data"] == [w.posts for w in metrics.weeks]
    assert sum(option["series"][1]["data"]) == 4
    titles = re.findall(r'<a href="/console/content/([^"]+)">', html.split('id="feed-table"')[1]
                        .split("</table>")[0])
    assert titles == [item.external_id for item in feed.items]
    experts = admin.get("/console/hubs/h1?role=expert").text
    assert [r.count('data-role="expert"') for r in rows(experts, "members-table")] == [1]
    assert "c2" in rows(experts, "members-table")[0]
    assert admin.get("/console/hubs/nohub").status_code == 404


# --- the needs white paper ---------------------------------------------------------------


def test_needs_page_shows_the_report_of_the_chosen_quarter(admin: TestClient,
                                                           wired: Services) -> None:
    with wired.sessions() as session:
        latest = needs.default_quarter(session, CLI_PRINCIPAL, zone=wired.settings.zone)
        report = needs.needs_report(session, CLI_PRINCIPAL, "2026Q3", zone=wired.settings.zone)
    assert latest == "2026Q4"
    html = admin.get("/console/reports/needs?quarter=2026Q3").text
    assert '<option value="2026Q3" selected>' in html
    assert '<option value="2026Q4">' in html
    assert f'id="needs-reviews">{report.counts.reviews}<' in html
    bars = chart_option(html, "needs-chart")
    mentioned = [n for n in report.top_needs if n.texts > 0]
    assert bars["yAxis"]["data"] == [n.name for n in mentioned]
    assert [d["value"] for d in bars["series"][0]["data"]] == [round(100 * n.share, 1)
                                                               for n in mentioned]
    assert chart_option(html, "weekly-chart")["xAxis"]["data"]
    assert 'id="heat-chart"' in html
    assert 'href="/console/reports/needs.pdf?quarter=2026Q3"' in html
    default = admin.get("/console/reports/needs").text
    assert '<option value="2026Q4" selected>' in default
    assert admin.get("/console/reports/needs?quarter=2026Q9").status_code == 422


def test_white_paper_downloads_as_html_and_pdf(admin: TestClient) -> None:
    page = admin.get("/console/reports/needs.html?quarter=2026Q3")
    assert page.status_code == 200
    assert page.headers["content-disposition"] == 'attachment; filename="needs-2026Q3.html"'
    assert "需求白皮书 2026Q3" in page.text
    pdf = admin.get("/console/reports/needs.pdf?quarter=2026Q3")
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")


def test_pages_speak_english_after_the_switch(wired: Services) -> None:
    for c in _client(wired, "ana"):
        c.get("/console/lang/en?next=/console/")
        library = c.get("/console/content").text
        assert "Content library" in library
        assert "Dwell per content type" in library
        assert ContentType.KNOWLEDGE.value in library
        assert "Certification ladder" in c.get("/console/creators").text
        assert "Quality score explained" in c.get("/console/content/p3").text
        assert "What customers care about" in c.get("/console/reports/needs").text
