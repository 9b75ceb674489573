"""The moderation console over HTTP on real stores: the review queue with its figures,
levels and overdue cases, the work mode (claim, decide, escalate, next) with the marked
text and the audit trail, appeals, the lexicon (add with field errors, delete, a file import
with line-numbered errors, "try it"), the incidents board and an incident's workflow, in
both languages, and who may open what."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from console_data import add_user, csrf_in, log_in, nav_links
from fastapi.testclient import TestClient

from conftest import T0, _wire, bearer, make_key, seed_catalog
from shequ.core import auth
from shequ.core.clock import FixedClock
from shequ.core.db import transaction
from shequ.core.permissions import CLI_PRINCIPAL, PERMISSIONS
from shequ.core.web import Services
from shequ.demo.generator import Community, generate
from shequ.domains.catalog import service as catalog
from shequ.domains.content import service as content
from shequ.domains.customers import service as customers
from shequ.domains.moderation import incidents
from shequ.domains.moderation import service as moderation
from shequ.domains.moderation.incident_schemas import DetectIn
from shequ.domains.moderation.schemas import SpanOut
from shequ.domains.orders import service as orders
from shequ.entrypoints.app import create_app
from shequ.entrypoints.bootstrap import close
from shequ.entrypoints.console.moderation_pages import highlighted, parse_terms

PAGES = ("/console/moderation", "/console/moderation/lexicon", "/console/moderation/incidents")
CONTACT = "这款面霜不错，想要代购的加我微信 abc12345"
ESCAPED = "<b>便宜代购</b> 加我微信 xyz98765"
SEVERE = "你这个傻逼"
CLEAN = "这款面霜很滋润，冬天用刚好。"
MODERATOR_PASSWORD = "moderator-pass-1"
# (post, body, minutes before the clock): two level-1 contacts (p1 overdue), an escaped
# one, a block and a pass.
POSTS = (("p1", CONTACT, 30), ("p2", ESCAPED, 5), ("p3", SEVERE, 20), ("p4", CLEAN, 10),
         ("p5", CONTACT + "，私聊", 2))
Headers = dict[str, str]


@pytest.fixture(autouse=True)
def fresh_lexicon(monkeypatch: pytest.MonkeyPatch) -> None:
    """Look for a new lexicon version on every check."""
    monkeypatch.setattr(moderation, "RELOAD_EVERY_S", 0.0)


def build_queue(services: Services) -> None:
    """The test catalog, customers c1-c3 and five posts of c1, checked on arrival through
    the content API."""
    headers = bearer(make_key(services, sorted(PERMISSIONS)))
    with TestClient(create_app(services=services)) as client:
        seed_catalog(client, headers)
        for key in ("c1", "c2", "c3"):
            made = client.post("/api/v1/customers", headers=headers,
                               json={"external_id": key, "nickname": f"用户{key}"})
            assert made.status_code == 201, made.text
        for key, body, minutes in POSTS:
            made = client.post("/api/v1/posts", headers=headers, json={
                "external_id": key, "author_customer_external_id": "c1",
                "title": f"标题{key}", "body": body, "content_type": "review", "sku": "SKU1",
                "created_at": (T0 - timedelta(minutes=minutes)).isoformat()})
            assert made.status_code == 201, made.text


def add_moderator(services: Services, username: str) -> None:
    with transaction(services.sessions) as s:
        auth.create_user(s, services.clock, username=username, role="moderator",
                         password=MODERATOR_PASSWORD)


def wire(tmp: Path) -> Services:
    found = _wire(tmp, FixedClock(T0), None)
    build_queue(found)
    add_user(found, "admin", "admin")
    add_user(found, "ana", "analyst")
    add_user(found, "partner", "partner", brand_ids=[1])
    add_moderator(found, "mod_li")
    return found


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """Read-only tests share one queue."""
    found = wire(Path(tmp_path_factory.mktemp("moderation-pages")))
    yield found
    close(found)


@pytest.fixture
def own(tmp_path: Path) -> Iterator[Services]:
    """Tests that decide cases or change the lexicon get their own queue."""
    found = wire(tmp_path)
    yield found
    close(found)


def client_for(services: Services, username: str) -> Iterator[TestClient]:
    with TestClient(create_app(services=services)) as c:
        password = MODERATOR_PASSWORD if username.startswith("mod_") else None
        assert log_in(c, username, password).status_code == 303
        yield c


def case_id(services: Services, post: str) -> int:
    with services.sessions() as session:
        return moderation.case_of(session, services.clock, CLI_PRINCIPAL, "post", post).id


def row_ids(html: str, table_id: str, prefix: str) -> list[str]:
    body = re.search(rf'<table class="[^"]*" id="{table_id}">.*?<tbody>(.*?)</tbody>', html,
                     re.S)
    assert body is not None, f"no table {table_id}"
    return re.findall(rf'<tr id="{prefix}-([^"]+)"', body.group(1))


def post(c: TestClient, path: str, data: dict[str, Any], page: str = "/console/moderation",
         **kwargs: Any) -> Any:
    token = csrf_in(c.get(page).text)
    return c.post(path, data={**data, "csrf_token": token}, follow_redirects=False, **kwargs)


# --- the marks -------------------------------------------------------------------------------


def span(start: int, end: int, severity: int = 1, category: str = "ads") -> SpanOut:
    return SpanOut(start=start, end=end, text="", category=category, severity=severity,
                   source="lexicon")


def test_highlighted_cuts_the_text_at_the_spans() -> None:
    pieces = highlighted("abcdefgh", [span(5, 7, 3), span(1, 3), span(2, 4, 2), span(6, 99)])
    assert [(p.text, len(p.spans), p.severity) for p in pieces] == [
        ("a", 0, 0), ("bcd", 2, 2), ("e", 0, 0), ("fg", 1, 3), ("h", 0, 0)]
    assert highlighted("", []) == []
    assert [p.text for p in highlighted("abc", [span(0, 3)])] == ["abc"]


def test_import_file_parsing_names_each_bad_line() -> None:
    good = ("term\tcategory\tseverity\tpinyin\tnote\n火星果\tother\t2\tno\t测试\n\n"
            "# 注释\n代写\tads\n")
    terms, lines, errors = parse_terms(good.encode(), "terms.tsv")
    assert errors == []
    assert [(t.term, t.category, t.severity, t.pinyin, t.note) for t in terms] == [
        ("火星果", "other", 2, False, "测试"), ("代写", "ads", 1, False, "")]
    assert lines == [2, 5]
    bad = "火星果,other,2\n,ads,1\n代写,nonsense,1\n刷单,fraud,7\n水军,ads,1,maybe\n"
    terms, lines, errors = parse_terms(bad.encode(), "terms.csv")
    assert [(e.line, e.field) for e in errors] == [
        (2, "term"), (3, "category"), (4, "severity"), (5, "pinyin")]
    assert [t.term for t in terms] == ["火星果"]
    assert parse_terms("火星果".encode("gbk"), "x.csv")[2][0].message == \
        "The file is not UTF-8 text."
    assert parse_terms(b"", "x.csv")[2][0].message == "The file holds no terms."


# --- navigation and access -------------------------------------------------------------------


def test_pages_are_linked_and_open_for_admins(shared: Services) -> None:
    for c in client_for(shared, "admin"):
        links = nav_links(c.get("/console/").text)
        assert [link for link in links if "/moderation" in link] == list(PAGES)
        for path in PAGES:
            page = c.get(path)
            assert page.status_code == 200, path
            assert 'aria-current="page"' in page.text
        lexicon = c.get("/console/moderation/lexicon").text
        # The sub-page marks its own entry, not the queue's.
        assert re.search(r'href="/console/moderation/lexicon" class="nav-link is-active"',
                         lexicon)


def test_readers_see_but_do_not_act_and_partners_are_refused(shared: Services) -> None:
    for c in client_for(shared, "ana"):
        queue = c.get("/console/moderation")
        assert queue.status_code == 200
        assert 'id="claim-next"' not in queue.text
        assert 'id="add-form"' not in c.get("/console/moderation/lexicon").text
        refused = post(c, "/console/moderation/claim", {"level": "1"})
        assert refused.status_code == 403
        assert post(c, f"/console/moderation/cases/{case_id(shared, 'p1')}/decide",
                    {"choice": "pass", "reason": "x"}).status_code == 403
    for c in client_for(shared, "partner"):
        links = nav_links(c.get("/console/").text)
        assert not [link for link in links if "/moderation" in link]
        for path in PAGES:
            assert c.get(path).status_code == 403, path
    with TestClient(create_app(services=shared)) as anonymous:
        gone = anonymous.get("/console/moderation", follow_redirects=False)
        assert gone.status_code == 303
        assert gone.headers["location"].startswith("/console/login?next=")


# --- the queue -------------------------------------------------------------------------------


def test_queue_lists_waiting_cases_by_due_time_with_levels_and_overdue(
        shared: Services) -> None:
    with shared.sessions() as session:
        waiting = moderation.list_cases(session, shared.clock, CLI_PRINCIPAL, state="waiting")
        since = T0 - timedelta(days=7)
        figures = moderation.figures(session, shared.clock, CLI_PRINCIPAL, since,
                                     T0 + timedelta(days=1))
    assert [c.subject_id for c in waiting.items] == ["p1", "p2", "p5"]
    for c in client_for(shared, "admin"):
        html = c.get("/console/moderation").text
        assert row_ids(html, "queue-table", "case") == [str(c.id) for c in waiting.items]
        first = case_id(shared, "p1")
        # p1 arrived 30 minutes ago with a 15-minute SLA: 15 minutes late, and marked.
        assert re.search(rf'<tr id="case-{first}" class="is-overdue"', html)
        assert 'data-late="15"' in html
        assert "15 分钟 超时" in html
        assert 'data-left="13"' in html  # p2: 5 minutes old
        assert re.search(r'id="tab-1".*?data-waiting="3".*?data-overdue="1"', html, re.S)
        assert 'id="tab-2"' in html
        assert 'data-waiting="0"' in html
        # The figures are the service's: 2 of 2 decisions automatic (p3 blocked, p4 passed).
        assert (figures.decided, figures.auto_decided, figures.waiting) == (2, 2, 3)
        assert re.search(r'id="fig-auto">.*?<p class="kpi-value">100.0%</p>', html, re.S)
        assert re.search(r'id="fig-submitted">.*?<p class="kpi-value">5</p>', html, re.S)
        level_two = c.get("/console/moderation?level=2").text
        assert row_ids(level_two, "queue-table", "case") == []
        assert c.get("/console/moderation?level=7").status_code == 422


def test_english_queue_and_lexicon(shared: Services) -> None:
    for c in client_for(shared, "admin"):
        c.get("/console/lang/en", follow_redirects=False)
        html = c.get("/console/moderation").text
        for text in ("Review queue", "Claim next case", "Decided automatically",
                     "15 min late", "Overturn rate", "Waiting cases"):
            assert text in html, text
        lexicon = c.get("/console/moderation/lexicon").text
        for text in ("Lexicon", "Try it", "Add a term", "Import a file", "Shipped terms"):
            assert text in lexicon, text
        chinese = c.get("/console/lang/zh_CN", follow_redirects=False)
        assert chinese.status_code in (302, 303, 307)
        assert "审核队列" in c.get("/console/moderation").text


# --- the work mode ---------------------------------------------------------------------------


def test_claim_mark_block_then_next_case_shows(own: Services) -> None:
    first, second, third = (case_id(own, key) for key in ("p1", "p2", "p5"))
    for c in client_for(own, "mod_li"):
        claimed = post(c, "/console/moderation/claim", {"level": "1"})
        assert claimed.status_code == 303
        assert claimed.headers["location"] == f"/console/moderation/work/{first}?level=1"
        page = c.get(claimed.headers["location"]).text
        assert '<mark class="mod-mark sev-1" data-category="ads"' in page
        assert ">abc12345</mark>" in page
        assert 'data-reason-block="广告或联系方式"' in page
        assert "contact details (wechat)" in page
        # Nothing is decided without a reason; the case stays waiting and the form keeps
        # the choice.
        empty = post(c, f"/console/moderation/cases/{first}/decide",
                     {"action": "block", "reason": " ", "level": "1", "work": "1"},
                     page=claimed.headers["location"])
        assert empty.status_code == 422
        assert "请填写 1 到 500 个字的理由。" in empty.text
        with own.sessions() as session:
            assert moderation.get_case(session, own.clock, CLI_PRINCIPAL, first).state == \
                "queued"
        done = post(c, f"/console/moderation/cases/{first}/decide",
                    {"action": "block", "reason": "广告或联系方式", "level": "1", "work": "1"},
                    page=claimed.headers["location"])
        assert done.status_code == 303
        assert done.headers["location"] == \
            f"/console/moderation/work/{second}?level=1&done={first}&did=block"
        following = c.get(done.headers["location"]).text
        assert f"案件 #{first} 已拦截。" in following
        # The escaped text keeps its tags as text, with the contact marked.
        assert "&lt;b&gt;便宜代购&lt;/b&gt; 加我微信 <mark" in following
        assert ">xyz98765</mark>" in following
        assert "联系方式（微信号）" in following  # the verdict's reason, in Chinese
        # E escalates to level 2; the next level-1 case follows.
        up = post(c, f"/console/moderation/cases/{second}/decide",
                  {"choice": "escalate", "reason": "需要资深审核员判断", "level": "1",
                   "work": "1"}, page=done.headers["location"])
        assert up.headers["location"].startswith(f"/console/moderation/work/{third}?")
        # N puts the held case back; with nothing else at level 1 it comes straight back.
        skipped = post(c, f"/console/moderation/cases/{third}/decide",
                       {"choice": "next", "level": "1", "work": "1"},
                       page=up.headers["location"])
        assert skipped.headers["location"] == f"/console/moderation/work/{third}?level=1"
        passed = post(c, f"/console/moderation/cases/{third}/decide",
                      {"choice": "pass", "reason": "未发现违规", "level": "1", "work": "1"},
                      page=skipped.headers["location"])
        assert passed.headers["location"] == \
            f"/console/moderation?level=1&empty=true&done={third}&did=pass"
        assert "此级别没有待审案件。" in c.get(passed.headers["location"]).text
    with own.sessions() as session:
        cases = {c: moderation.get_case(session, own.clock, CLI_PRINCIPAL, c)
                 for c in (first, second, third)}
        statuses = {p: content.get_post(session, CLI_PRINCIPAL, p).status
                    for p in ("p1", "p2", "p5")}
    assert (cases[first].label, cases[first].decided_by,
            cases[first].decision_reason) == ("block", "mod_li", "广告或联系方式")
    assert (cases[second].state, cases[second].level) == ("queued", 2)
    assert [a.action for a in cases[third].actions] == [
        "queued", "assigned", "released", "assigned", "decided"]
    assert statuses == {"p1": "blocked", "p2": "held", "p5": "published"}


def test_case_page_trail_and_appeal(own: Services) -> None:
    blocked = case_id(own, "p3")
    for c in client_for(own, "admin"):
        page = c.get(f"/console/moderation/cases/{blocked}").text
        assert ">傻逼</mark>" in page
        assert "sev-3" in page
        assert re.search(r'<li data-action="auto_decided">', page)
        assert 'id="appeal-form"' in page
        refused = post(c, f"/console/moderation/cases/{blocked}/appeal", {"reason": ""},
                       page=f"/console/moderation/cases/{blocked}")
        assert refused.status_code == 422
        appealed = post(c, f"/console/moderation/cases/{blocked}/appeal",
                        {"reason": "作者申诉：玩笑话"}, page=f"/console/moderation/cases/{blocked}")
        assert appealed.status_code == 303
        after = c.get(f"/console/moderation/cases/{blocked}").text
        assert 'id="appeal-form"' not in after
        assert '<li data-action="appealed">' in after
        assert "作者申诉：玩笑话" in after
        again = post(c, f"/console/moderation/cases/{blocked}/decide",
                     {"choice": "escalate", "reason": "x"},
                     page=f"/console/moderation/cases/{blocked}")
        assert again.status_code == 409
        assert "第 3 级是最后一级：请做出决定。" in again.text
        assert c.get("/console/moderation/cases/99999").status_code == 404
    with own.sessions() as session:
        case = moderation.get_case(session, own.clock, CLI_PRINCIPAL, blocked)
    assert (case.state, case.level, case.appeals) == ("appealed", 3, 1)


# --- the lexicon -----------------------------------------------------------------------------


def test_add_term_with_field_errors_then_try_it_and_delete(own: Services) -> None:
    lexicon = "/console/moderation/lexicon"
    for c in client_for(own, "admin"):
        missing = post(c, f"{lexicon}/terms", {"term": "火星果", "category": "",
                                               "severity": "9"}, page=lexicon)
        assert missing.status_code == 422
        assert 'id="error-category"' in missing.text
        assert "请选择一个类别。" in missing.text
        assert 'id="error-severity"' in missing.text
        assert 'value="火星果"' in missing.text
        made = post(c, f"{lexicon}/terms", {"term": "火星果", "category": "other",
                                            "severity": "2", "note": "测试"}, page=lexicon)
        assert made.status_code == 303
        page = c.get(made.headers["location"]).text
        assert "“火星果”已添加" in page
        assert 'data-term="火星果"' in page
        twice = post(c, f"{lexicon}/terms", {"term": "火 星 果", "category": "ads"},
                     page=lexicon)
        assert twice.status_code == 409
        assert "这个词与词库中已有的词匹配相同的文本。" in twice.text
        tried = post(c, f"{lexicon}/check", {"text": "<i>我爱火星果</i>"}, page=lexicon,
                     headers={"HX-Request": "true"})
        assert tried.status_code == 200
        assert tried.text.lstrip().startswith('<div id="verdict-result" data-label="review">')
        assert "&lt;i&gt;我爱<mark" in tried.text
        assert ">火星果</mark>" in tried.text
        with own.sessions() as session:
            term = moderation.lexicon_summary(session, CLI_PRINCIPAL).terms[0]
        gone = post(c, f"{lexicon}/terms/{term.id}/delete", {}, page=lexicon)
        assert gone.status_code == 303
        assert 'data-term="火星果"' not in c.get(lexicon).text
        plain = post(c, f"{lexicon}/check", {"text": "我爱火星果"}, page=lexicon)
        assert 'data-label="pass"' in plain.text  # the full page, without the term


def test_import_refuses_a_bad_file_whole_and_takes_a_good_one(own: Services) -> None:
    lexicon = "/console/moderation/lexicon"
    bad = "term,category,severity\n水军,ads,1\n刷单,fraud,5\n".encode()
    for c in client_for(own, "admin"):
        refused = post(c, f"{lexicon}/import", {}, page=lexicon,
                       files={"file": ("terms.csv", bad, "text/csv")})
        assert refused.status_code == 422
        assert "1 行被拒绝，未导入任何内容。" in refused.text
        assert re.search(r'<li data-line="3">第 3 行 · <code>severity</code>', refused.text)
        with own.sessions() as session:
            assert moderation.lexicon_summary(session, CLI_PRINCIPAL).custom_terms == 0
        good = "水军\tads\t1\n刷单\tfraud\t2\t是\t刷好评\n".encode()
        taken = post(c, f"{lexicon}/import", {}, page=lexicon,
                     files={"file": ("terms.tsv", good, "text/tab-separated-values")})
        assert taken.status_code == 200
        assert "新增 2 个词，1 个已存在" not in taken.text
        assert re.search(r'id="import-report">.*?新增 2 个词，0 个已存在；版本 1。', taken.text,
                         re.S)
        nothing = post(c, f"{lexicon}/import", {}, page=lexicon)
        assert nothing.status_code == 422
        assert "请选择要导入的文件。" in nothing.text
    with own.sessions() as session:
        terms = moderation.lexicon_summary(session, CLI_PRINCIPAL).terms
    assert sorted((t.term, t.category, t.severity, t.pinyin) for t in terms) == [
        ("刷单", "fraud", 2, True), ("水军", "ads", 1, False)]


# --- incidents -------------------------------------------------------------------------------


@cache
def small_demo() -> Community:
    return generate("small", seed=7, end=date(2026, 11, 20))


def open_demo_incident(services: Services) -> str:
    """The small demo's entities and content, and the incident its planted review burst
    opens; the incident's key."""
    community = small_demo()
    with transaction(services.sessions) as session:
        catalog.bulk_load(session, community.brands, community.categories,
                          community.products)
        customers.bulk_load(session, community.customers, community.devices)
        orders.bulk_load_orders(session, community.orders, community.order_lines)
        content.bulk_load(session, community.hubs, community.creators, community.posts,
                          community.comments, community.reviews)
    with transaction(services.sessions) as session:
        report = incidents.detect_bursts(session, services.clock,
                                         DetectIn(as_of=T0, since=community.start))
    keys = [b.incident_key for b in report.bursts if b.outcome == "opened"]
    assert len(keys) == 1
    assert keys[0] is not None
    return keys[0]


@pytest.fixture
def incident(tmp_path: Path) -> Iterator[tuple[Services, str]]:
    found = _wire(tmp_path, FixedClock(T0), None)
    key = open_demo_incident(found)
    add_user(found, "admin", "admin")
    add_user(found, "ana", "analyst")
    yield found, key
    close(found)


def card_of(html: str, key: str) -> str:
    found = re.search(rf'<section class="board-col" id="col-(\w+)"[^>]*>(?:(?!</section>).)*?'
                      rf'<article class="([^"]*)"[^>]*data-key="{re.escape(key)}">(.*?)</article>',
                      html, re.S)
    assert found is not None, f"no card of {key}"
    return f"{found.group(1)}|{found.group(2)}|{found.group(3)}"


def test_board_card_countdown_and_breach(incident: tuple[Services, str]) -> None:
    services, key = incident
    with services.sessions() as session:
        detail = incidents.get_incident(session, services.clock, key)
    for c in client_for(services, "ana"):
        board = c.get("/console/moderation/incidents").text
        column, classes, card = card_of(board, key).split("|", 2)
        assert (column, classes) == ("monitor", "card incident-card")
        assert detail.scope_name in card
        assert f'<strong class="observed">{detail.observed}</strong>' in card
        assert f'<strong class="expected">{detail.expected:.1f}</strong>' in card
        assert 'data-left="1440"' in card
        assert "距响应时限 1 天 0 小时" in card
        assert "暂无" in card
        assert 'id="detect-button"' not in board  # readers do not run detection
        assert "/incidents/" in board
        assert 'id="col-closed"' in board
    assert isinstance(services.clock, FixedClock)
    services.clock.advance(timedelta(hours=25))
    for c in client_for(services, "admin"):
        late = card_of(c.get("/console/moderation/incidents").text, key)
        assert late.startswith("monitor|card incident-card is-breached|")
        assert 'data-late="60"' in late
        assert "响应已超时 1 小时 0 分钟" in late
        # Running detection again finds the same burst: nothing new is opened.
        detected = post(c, "/console/moderation/incidents/detect", {},
                        page="/console/moderation/incidents")
        assert detected.status_code == 200
        assert re.search(r'id="detected">.*?新建 0 个事件', detected.text, re.S)
        assert detected.text.count('class="card incident-card') == 1
        c.get("/console/lang/en", follow_redirects=False)
        english = card_of(c.get("/console/moderation/incidents").text, key)
        assert "Response 1 h 0 min late" in english
        assert "nobody yet" in english


def test_incident_page_workflow_to_the_closed_review(incident: tuple[Services, str]) -> None:
    services, key = incident
    page_path = f"/console/moderation/incidents/{key}"
    for c in client_for(services, "admin"):
        page = c.get(page_path)
        assert page.status_code == 200
        assert '<li data-kind="opened">' in page.text
        with services.sessions() as session:
            detail = incidents.get_incident(session, services.clock, key)
        assert row_ids_by(page.text, "links-table") == [link.subject_id for link in detail.links]
        owner = post(c, f"{page_path}/owner", {"owner": "王敏"}, page=page_path)
        assert owner.status_code == 303
        assert '<span id="incident-owner">王敏</span>' in c.get(page_path).text
        silent = post(c, f"{page_path}/advance", {"to_state": "assess", "note": ""},
                      page=page_path)
        assert silent.status_code == 422
        assert "请填写 1 到 4,000 个字的备注。" in silent.text
        skip = post(c, f"{page_path}/advance", {"to_state": "review", "note": "跳过"},
                    page=page_path)
        assert skip.status_code == 409
        assert "事件每次只能前进一步。" in skip.text
        for state, note in (("assess", "核实批次"), ("respond", "下架批次"), ("review", "复盘")):
            moved = post(c, f"{page_path}/advance", {"to_state": state, "note": note},
                         page=page_path)
            assert moved.status_code == 303, state
        early = post(c, f"{page_path}/advance", {"to_state": "closed", "note": "结束"},
                     page=page_path)
        assert early.status_code == 409
        assert "关闭前请写下根本原因和改进措施。" in early.text
        assert 'id="review-form"' in early.text
        written = post(c, f"{page_path}/review", {"root_cause": "批次 A 质检漏检",
                                                  "actions": "加抽检；联系用户"}, page=page_path)
        assert written.status_code == 303
        closed = post(c, f"{page_path}/advance", {"to_state": "closed", "note": "结束"},
                      page=page_path)
        assert closed.status_code == 303
        final = c.get(page_path).text
        assert 'data-state="closed"' in final
        assert 'id="workflow-card"' not in final
        assert '<p class="report-text" id="report-root-cause">批次 A 质检漏检</p>' in final
        assert list(re.findall(r'<li data-kind="(\w+)">', final)).count(
            "state_changed") == 4
        assert c.get(f"{page_path}-nope").status_code == 404
    with services.sessions() as session:
        done = incidents.get_incident(session, services.clock, key)
    assert (done.state, done.owner, done.root_cause) == ("closed", "王敏", "批次 A 质检漏检")


def row_ids_by(html: str, table_id: str) -> list[str]:
    body = re.search(rf'<table class="[^"]*" id="{table_id}">.*?<tbody>(.*?)</tbody>', html,
                     re.S)
    assert body is not None, f"no table {table_id}"
    return re.findall(r'<tr data-subject="([^"]+)"', body.group(1))
