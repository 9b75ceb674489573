"""Moderation: the verdict rules, the check API, checks on arrival, the three-level review
queue with its audit trail and figures, the managed lexicon's hot reload, and concurrent
moderators on PostgreSQL."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from test_content import post_body, review_body, seed_community
from typer.testing import CliRunner

from conftest import T0, bearer
from shequ.core import auth
from shequ.core.clock import FixedClock
from shequ.core.db import transaction
from shequ.core.errors import Conflict
from shequ.core.permissions import Principal
from shequ.core.web import Services
from shequ.domains.moderation import service
from shequ.domains.moderation.decisions import SURE_OFFENSIVE, decide, verdicts
from shequ.domains.moderation.models import Case, CaseAction
from shequ.domains.moderation.schemas import SubjectIn
from shequ.entrypoints.cli import app as cli_app
from shequ.text.contacts import Contact
from shequ.text.lexicon import Lexicon, Match

Headers = dict[str, str]
CONTACT = "这款面霜不错，想要代购的加我微信 abc12345"
SEVERE = "你这个傻逼"
CLEAN = "这款面霜很滋润，冬天用刚好。"


@pytest.fixture(autouse=True)
def reload_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Look for a new lexicon version on every check (the default is once a second)."""
    monkeypatch.setattr(service, "RELOAD_EVERY_S", 0.0)


def key_for(services: Services, name: str, scopes: list[str]) -> Headers:
    with transaction(services.sessions) as s:
        return bearer(auth.create_api_key(s, services.clock, name=name, scopes=scopes).secret)


def moderators(services: Services) -> tuple[Headers, Headers]:
    scopes = ["moderation:read", "moderation:write", "content:read"]
    return key_for(services, "mod_li", scopes), key_for(services, "mod_wang", scopes)


# --- the rules ----------------------------------------------------------------------------


def m(category: str, severity: int) -> Match:
    return Match("词", category, severity, 0, 1)


def test_the_verdict_table() -> None:
    phone = Contact("phone", "13800138000", 2, 13)
    assert decide("词", [m("violence", 3)], [], 0.1).label == "block"
    assert decide("词", [m("ads", 1)], [phone], 0.1).label == "block"
    assert decide("词", [m("abuse", 2)], [], SURE_OFFENSIVE).label == "block"
    review = decide("词", [m("abuse", 2)], [], 0.5)
    assert (review.label, review.level) == ("review", 2)
    unsure = decide("词", [], [], SURE_OFFENSIVE + 0.01)
    assert (unsure.label, unsure.level, unsure.categories) == ("review", 2, ["abuse"])
    for low in (decide("词", [m("other", 1)], [], 0.1), decide("词", [], [phone], 0.1),
                decide("词", [], [], 0.92)):
        assert (low.label, low.level) == ("review", 1)
        assert low.reasons
    clean = decide("词", [], [], 0.2)
    assert (clean.label, clean.level, clean.reasons, clean.spans) == ("pass", None, [], [])


def test_verdicts_on_real_texts_keep_the_original_spans() -> None:
    text = "法.輪.功，加我微信 abc12345"
    found = verdicts([CLEAN, text, SEVERE], Lexicon.default())
    assert [v.label for v in found] == ["pass", "block", "block"]
    for span in found[1].spans:
        assert text[span.start:span.end] == span.text
    assert {s.source for s in found[1].spans} == {"lexicon", "contact"}
    assert "politics" in found[1].categories


# --- the check API ------------------------------------------------------------------------


def test_check_and_batch(client: TestClient, admin_headers: Headers) -> None:
    got = client.post("/api/v1/moderation/check", json={"text": CONTACT},
                      headers=admin_headers)
    assert got.status_code == 200
    body = got.json()
    assert (body["label"], body["level"], body["categories"]) == ("review", 1, ["ads"])
    span = body["spans"][0]
    assert CONTACT[span["start"]:span["end"]] == span["text"] == "abc12345"
    assert 0 <= body["offensive"] < 0.5
    batch = client.post("/api/v1/moderation/check/batch",
                        json={"texts": [CLEAN, SEVERE, CONTACT]}, headers=admin_headers)
    assert [v["label"] for v in batch.json()["verdicts"]] == ["pass", "block", "review"]
    assert client.post("/api/v1/moderation/check/batch", json={"texts": []},
                       headers=admin_headers).status_code == 422
    too_long = client.post("/api/v1/moderation/check", json={"text": "好" * 20_001},
                           headers=admin_headers)
    assert too_long.status_code == 422
    assert too_long.json()["attr"] == "text"
    assert client.post("/api/v1/moderation/check", json={"text": "x"}).status_code == 401


def test_check_needs_the_moderation_permission(services: Services, client: TestClient) -> None:
    headers = key_for(services, "reader", ["content:read"])
    got = client.post("/api/v1/moderation/check", json={"text": "x"}, headers=headers)
    assert got.status_code == 403


# --- arrival -----------------------------------------------------------------------------


def test_posts_reviews_and_comments_are_checked_on_arrival(
        client: TestClient, admin_headers: Headers) -> None:
    seed_community(client, admin_headers)
    held = client.post("/api/v1/posts", json=post_body("p1", body=CONTACT),
                       headers=admin_headers)
    assert held.json()["status"] == "held"
    clean = client.post("/api/v1/posts", json=post_body("p2"), headers=admin_headers)
    assert clean.json()["status"] == "published"
    review = client.post("/api/v1/reviews", json=review_body("r1", text=SEVERE),
                         headers=admin_headers)
    assert review.json()["status"] == "blocked"
    comment = client.post("/api/v1/posts/p2/comments",
                          json={"external_id": "m1", "customer_external_id": "c2",
                                "text": "同款，好用"}, headers=admin_headers)
    assert comment.status_code == 201
    assert comment.json()["status"] == "published"
    case = client.get("/api/v1/moderation/subjects/post/p1", headers=admin_headers).json()
    assert (case["state"], case["level"], case["label"], case["author_id"]) == \
        ("queued", 1, "review", "c1")
    assert case["due_at"] == (T0 + timedelta(minutes=15)).isoformat().replace("+00:00", "Z")
    assert [a["action"] for a in case["actions"]] == ["queued"]
    blocked = client.get("/api/v1/moderation/subjects/review/r1", headers=admin_headers).json()
    assert (blocked["state"], blocked["decided_by"]) == ("decided", "auto")
    assert blocked["spans"][0]["text"] == "傻逼"
    missing = client.get("/api/v1/moderation/subjects/post/nope", headers=admin_headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "case_not_found"


def test_submit_is_idempotent(services: Services) -> None:
    item = SubjectIn(subject_kind="post", subject_id="x1", text=CONTACT, submitted_at=T0)
    with transaction(services.sessions) as s:
        first = service.submit_many(s, T0, [item, item])
        again = service.submit_many(s, T0, [item])
        assert (first.checked, first.queued, again.checked, again.skipped) == (1, 1, 0, 1)
        assert s.execute(select(func.count()).select_from(Case)).scalar() == 1
        assert service.submit(s, T0, item).label == "review"


# --- the queue -----------------------------------------------------------------------------


def test_claim_decide_escalate_appeal_and_figures(
        services: Services, client: TestClient, admin_headers: Headers,
        clock: FixedClock) -> None:
    seed_community(client, admin_headers)
    li, wang = moderators(services)
    for key in ("p1", "p2", "p3"):
        client.post("/api/v1/posts", json=post_body(key, body=CONTACT), headers=admin_headers)
    client.post("/api/v1/posts", json=post_body("p4"), headers=admin_headers)
    clock.advance(timedelta(minutes=4))
    claimed = client.post("/api/v1/moderation/queue/claim", json={"level": 1}, headers=li)
    assert claimed.status_code == 200
    first = claimed.json()
    assert (first["subject_id"], first["assignee"]) == ("p1", "mod_li")
    # Claiming again returns the case the moderator already holds; another gets the next.
    assert client.post("/api/v1/moderation/queue/claim", json={},
                       headers=li).json()["id"] == first["id"]
    second = client.post("/api/v1/moderation/queue/claim", json={}, headers=wang).json()
    assert second["subject_id"] == "p2"

    clock.advance(timedelta(minutes=2))
    done = client.post(f"/api/v1/moderation/cases/{first['id']}/decide",
                       json={"label": "pass", "reason": "商品咨询，非广告"}, headers=li)
    assert done.status_code == 200
    assert (done.json()["state"], done.json()["decided_by"]) == ("decided", "mod_li")
    assert client.get("/api/v1/posts/p1", headers=admin_headers).json()["status"] == "published"
    twice = client.post(f"/api/v1/moderation/cases/{first['id']}/decide",
                        json={"label": "block", "reason": "x"}, headers=wang)
    assert (twice.status_code, twice.json()["code"]) == (409, "case_decided")
    bad = client.post(f"/api/v1/moderation/cases/{second['id']}/decide",
                      json={"label": "review", "reason": "x"}, headers=wang)
    assert (bad.status_code, bad.json()["attr"]) == (422, "label")

    # Level 1 is unsure: up to 2, then 3, then no further.
    case = second["id"]
    for level in (2, 3):
        up = client.post(f"/api/v1/moderation/cases/{case}/escalate",
                         json={"reason": "需要资深审核"}, headers=wang)
        assert (up.json()["level"], up.json()["assignee"]) == (level, None)
    top = client.post(f"/api/v1/moderation/cases/{case}/escalate", json={"reason": "x"},
                      headers=wang)
    assert (top.status_code, top.json()["code"]) == (409, "top_level")
    clock.advance(timedelta(minutes=10))
    blocked = client.post(f"/api/v1/moderation/cases/{case}/decide",
                          json={"label": "block", "reason": "导流微信"}, headers=li)
    assert blocked.json()["label"] == "block"
    assert client.get("/api/v1/posts/p2", headers=admin_headers).json()["status"] == "blocked"

    # The author appeals once; level 3 overturns the block.
    appealed = client.post(f"/api/v1/moderation/cases/{case}/appeal",
                           json={"reason": "我只是分享购买渠道"}, headers=admin_headers)
    assert (appealed.json()["state"], appealed.json()["level"]) == ("appealed", 3)
    again = client.post(f"/api/v1/moderation/cases/{case}/appeal", json={"reason": "再申诉"},
                        headers=admin_headers)
    assert (again.status_code, again.json()["code"]) == (409, "appeal_used")
    not_blocked = client.post(f"/api/v1/moderation/cases/{first['id']}/appeal",
                              json={"reason": "x"}, headers=admin_headers)
    assert not_blocked.json()["code"] == "not_blocked"
    clock.advance(timedelta(minutes=30))
    client.post(f"/api/v1/moderation/cases/{case}/decide",
                json={"label": "pass", "reason": "申诉成立"}, headers=wang)
    used = client.post(f"/api/v1/moderation/cases/{case}/appeal", json={"reason": "x"},
                       headers=admin_headers)
    assert used.json()["code"] == "appeal_used"

    trail = client.get(f"/api/v1/moderation/cases/{case}", headers=admin_headers).json()
    assert [(a["action"], a["actor"], a["level"]) for a in trail["actions"]] == [
        ("queued", "auto", 1), ("assigned", "mod_wang", 1), ("escalated", "mod_wang", 2),
        ("escalated", "mod_wang", 3), ("decided", "mod_li", 3), ("appealed", "test", 3),
        ("decided", "mod_wang", 3)]

    stats = client.get("/api/v1/moderation/figures",
                       params={"since": (T0 - timedelta(hours=1)).isoformat(),
                               "until": (T0 + timedelta(hours=1)).isoformat()},
                       headers=admin_headers).json()
    assert (stats["submitted"], stats["decided"], stats["auto_decided"]) == (4, 3, 1)
    assert stats["auto_share"] == pytest.approx(1 / 3, abs=1e-4)
    assert (stats["appeals"], stats["appeals_decided"], stats["overturned"]) == (1, 1, 1)
    assert stats["overturn_rate"] == 1.0
    assert stats["escalations"] == 2
    # p1 decided 6 minutes after it arrived, p2 finally after 46, p4 at once.
    assert stats["human_p50_minutes"] == pytest.approx(26.0)
    assert stats["p50_minutes"] == pytest.approx(6.0)
    assert stats["levels"][0] == {"level": 1, "waiting": 1, "overdue": 1,
                                  "oldest_waiting_minutes": 46.0}
    by_name = {row["moderator"]: row for row in stats["moderators"]}
    assert by_name["mod_li"]["decisions"] == 2
    assert by_name["mod_li"]["median_handling_minutes"] == pytest.approx(2.0)
    waiting = client.get("/api/v1/moderation/cases", params={"waiting": True, "overdue": True},
                         headers=admin_headers).json()
    assert [c["subject_id"] for c in waiting["items"]] == ["p3"]
    assert waiting["items"][0]["overdue"] is True
    empty = client.post("/api/v1/moderation/queue/claim", json={"level": 2}, headers=li)
    assert empty.status_code == 204


def test_figures_refuse_an_empty_window(client: TestClient, admin_headers: Headers) -> None:
    got = client.get("/api/v1/moderation/figures",
                     params={"since": T0.isoformat(), "until": T0.isoformat()},
                     headers=admin_headers)
    assert (got.status_code, got.json()["attr"]) == (422, "until")


# --- the managed lexicon -------------------------------------------------------------------


def test_terms_reach_the_scan_without_a_restart(client: TestClient,
                                                admin_headers: Headers) -> None:
    text = "小绿瓶代购，私聊"
    assert client.post("/api/v1/moderation/check", json={"text": text},
                       headers=admin_headers).json()["label"] == "pass"
    made = client.post("/api/v1/moderation/lexicon/terms",
                       json={"term": "小绿瓶代购", "category": "ads", "severity": 3},
                       headers=admin_headers)
    assert made.status_code == 201
    hit = client.post("/api/v1/moderation/check", json={"text": "小 绿 瓶 代 购"},
                      headers=admin_headers).json()
    assert (hit["label"], hit["spans"][0]["text"]) == ("block", "小 绿 瓶 代 购")
    same = client.post("/api/v1/moderation/lexicon/terms",
                       json={"term": "小.綠.瓶代购", "category": "ads"}, headers=admin_headers)
    assert (same.status_code, same.json()["code"], same.json()["attr"]) == \
        (409, "term_exists", "term")
    blank = client.post("/api/v1/moderation/lexicon/terms",
                        json={"term": "。。", "category": "ads"}, headers=admin_headers)
    assert (blank.status_code, blank.json()["code"]) == (422, "invalid_term")
    bad_category = client.post("/api/v1/moderation/lexicon/terms",
                               json={"term": "词", "category": "spam"}, headers=admin_headers)
    assert (bad_category.status_code, bad_category.json()["attr"]) == (422, "category")
    summary = client.get("/api/v1/moderation/lexicon", headers=admin_headers).json()
    assert summary["custom_terms"] == 1
    assert summary["default_terms"] > 2_000
    version = summary["version"]
    gone = client.delete(f"/api/v1/moderation/lexicon/terms/{made.json()['id']}",
                         headers=admin_headers)
    assert gone.status_code == 204
    assert client.post("/api/v1/moderation/check", json={"text": text},
                       headers=admin_headers).json()["label"] == "pass"
    assert client.get("/api/v1/moderation/lexicon",
                      headers=admin_headers).json()["version"] == version + 1


def test_allow_phrase_and_import(client: TestClient, admin_headers: Headers) -> None:
    # 仿真主要 holds the politics term 真主; the allow-list phrase 仿真主 covers it.
    text = "这本书所讲的仿真主要是基于ORCAD的电力电子仿真"
    before = client.post("/api/v1/moderation/check", json={"text": text},
                         headers=admin_headers).json()
    assert (before["label"], before["spans"][0]["text"]) == ("review", "真主")
    rows = [{"term": "代购小绿瓶", "category": "ads", "severity": 2},
            {"term": "代购 小绿瓶", "category": "ads", "severity": 2},
            {"term": "仿真主", "category": "allow"}]
    report = client.post("/api/v1/moderation/lexicon/import", json=rows, headers=admin_headers)
    assert (report.json()["added"], report.json()["skipped"]) == (2, 1)
    after = client.post("/api/v1/moderation/check", json={"text": text},
                        headers=admin_headers).json()
    assert (after["label"], after["spans"]) == ("pass", [])
    bad = client.post("/api/v1/moderation/lexicon/import",
                      json=[{"term": "好词", "category": "ads"}, {"term": "。", "category": "ads"}],
                      headers=admin_headers)
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_term")
    assert "row 2" in bad.json()["detail"]
    # All or nothing: the good first row of the failed import is not there.
    terms = client.get("/api/v1/moderation/lexicon", headers=admin_headers).json()["terms"]
    assert "好词" not in {t["term"] for t in terms}


def test_the_cli_sees_terms_it_added_and_keeps_row_order(tmp_path: Path) -> None:
    runner = CliRunner()
    home = tmp_path / "cli-home"
    made = runner.invoke(cli_app, ["moderation", "add-term", "小绿瓶代购", "--category", "ads",
                                   "--severity", "3", "--home", str(home)])
    assert made.exit_code == 0, made.output
    rows = tmp_path / "texts.jsonl"
    texts = [CLEAN, "小-绿-瓶-代-购", CONTACT, SEVERE, ""]
    rows.write_text("\n".join(json.dumps({"text": t, "id": i}) for i, t in enumerate(texts)),
                    encoding="utf-8")
    got = runner.invoke(cli_app, ["moderate", str(rows), "--home", str(home)])
    assert got.exit_code == 0, got.output
    lines = [json.loads(line) for line in got.stdout.splitlines()]
    assert [line["label"] for line in lines] == ["pass", "block", "review", "block", "pass"]
    assert set(lines[0]) >= {"label", "categories", "spans", "offensive"}
    assert lines[1]["spans"][0]["text"] == "小-绿-瓶-代-购"
    csv_file = tmp_path / "texts.csv"
    csv_file.write_text("id,body\n1,好\n", encoding="utf-8")
    missing = runner.invoke(cli_app, ["moderate", str(csv_file), "--home", str(home)])
    assert missing.exit_code != 0
    assert "no 'text' column" in missing.output


# --- concurrency on PostgreSQL ---------------------------------------------------------------


def _principal(name: str) -> Principal:
    from shequ.core.permissions import PERMISSIONS

    return Principal(kind="user", id=abs(hash(name)) % 10_000, name=name,
                     permissions=PERMISSIONS)


def test_concurrent_moderators_on_postgres(pg_services: Services) -> None:
    clock = pg_services.clock
    items = [SubjectIn(subject_kind="post", subject_id=f"p{i}", text=CONTACT,
                       submitted_at=T0 + timedelta(seconds=i)) for i in range(8)]
    with transaction(pg_services.sessions) as s:
        assert service.submit_many(s, T0, items).queued == 8
    barrier = threading.Barrier(6)
    claimed: list[int] = []
    errors: list[BaseException] = []

    def claim(name: str) -> None:
        try:
            barrier.wait()
            with transaction(pg_services.sessions) as s:
                got = service.claim_next(s, clock, _principal(name), 1)
                assert got is not None
                claimed.append(got.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(f"mod{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(claimed)) == 6

    target = claimed[0]
    outcomes: list[Any] = []
    both = threading.Barrier(2)

    def decide_it(name: str, label: str) -> None:
        both.wait()
        try:
            with transaction(pg_services.sessions) as s:
                outcomes.append(service.decide(s, clock, _principal(name), target, label,
                                               "并发决定"))
        except Conflict as exc:
            outcomes.append(exc.code)

    pair = [threading.Thread(target=decide_it, args=("a", "pass")),
            threading.Thread(target=decide_it, args=("b", "block"))]
    for t in pair:
        t.start()
    for t in pair:
        t.join()
    assert sorted(o if isinstance(o, str) else "ok" for o in outcomes) == ["case_decided", "ok"]
    with transaction(pg_services.sessions) as s:
        decided = s.execute(select(func.count()).select_from(CaseAction).where(
            CaseAction.case_id == target, CaseAction.action == "decided")).scalar()
        assert decided == 1


def test_claim_can_skip_cases_put_back(services: Services) -> None:
    items = [SubjectIn(subject_kind="comment", subject_id=f"m{i}", text=CONTACT,
                       submitted_at=T0 + timedelta(minutes=i)) for i in range(3)]
    me = _principal("mod_li")
    with transaction(services.sessions) as s:
        service.submit_many(s, T0, items)
        first = service.claim_next(s, services.clock, me, 1)
        assert first is not None
        service.release(s, services.clock, me, first.id)
        again = service.claim_next(s, services.clock, me, 1, skip=[first.id])
        assert again is not None
        assert (first.subject_id, again.subject_id) == ("m0", "m1")
        service.release(s, services.clock, me, again.id)
        assert service.claim_next(s, services.clock, me, 2) is None
        last = service.claim_next(s, services.clock, me, None, skip=[first.id, again.id])
        assert last is not None
        assert last.subject_id == "m2"


def test_a_term_flagged_for_pinyin_also_matches_its_initials(
        client: TestClient, admin_headers: Headers) -> None:
    made = client.post("/api/v1/moderation/lexicon/terms",
                       json={"term": "小绿瓶", "category": "ads", "severity": 2,
                             "pinyin": True}, headers=admin_headers)
    assert made.status_code == 201
    text = "有没有人要xlp，便宜出"
    hit = client.post("/api/v1/moderation/check", json={"text": text},
                      headers=admin_headers).json()
    assert (hit["label"], hit["level"]) == ("review", 2)
    assert [(s["text"], s["term"]) for s in hit["spans"]] == [("xlp", "小绿瓶")]
    inside = client.post("/api/v1/moderation/check", json={"text": "xlpxyz 型号"},
                         headers=admin_headers).json()
    assert inside["spans"] == []


def test_terms_imported_from_a_file_through_the_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    home = str(tmp_path / "home")
    good = tmp_path / "terms.tsv"
    good.write_text("term\tcategory\tseverity\tpinyin\n小绿瓶\tads\t2\t1\n仿真主\tallow\t1\t\n",
                    encoding="utf-8")
    made = runner.invoke(cli_app, ["moderation", "import-terms", str(good), "--home", home])
    assert made.exit_code == 0, made.output
    assert "2 added" in made.output
    again = runner.invoke(cli_app, ["moderation", "import-terms", str(good), "--home", home])
    assert "0 added, 2 already there" in again.output
    bad = tmp_path / "bad.tsv"
    bad.write_text("term\tcategory\tseverity\n代购正品\tads\t9\n", encoding="utf-8")
    refused = runner.invoke(cli_app, ["moderation", "import-terms", str(bad), "--home", home])
    assert refused.exit_code != 0
    assert "line 2" in refused.output
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"text": "要xlp吗"}) + "\n", encoding="utf-8")
    got = runner.invoke(cli_app, ["moderate", str(rows), "--home", home])
    assert json.loads(got.stdout)["spans"][0]["term"] == "小绿瓶"
