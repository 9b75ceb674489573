"""Content imports: whole files or nothing, bad rows named, re-import changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from conftest import bearer, make_key, seed_catalog
from shequ.core.db import transaction
from shequ.core.permissions import PERMISSIONS
from shequ.core.web import Services
from shequ.domains.content.models import Post
from shequ.entrypoints.app import create_app

Headers = dict[str, str]

HUBS_CSV = """external_id,name,description,brand_external_id
tech,科技评测局,专家、品牌与用户共建,b2
mums,宝妈育儿圈,,
"""
CREATORS_CSV = """external_id,customer_external_id,display_name,level,hub_external_id,joined_at
cr1,c2,数码小王,KOL,tech,2026-10-01T10:00:00+08:00
cr2,c3,育儿专家李医生,expert,mums,2026-10-02T00:00:00Z
"""
COMMENTS_CSV = """external_id,post_external_id,customer_external_id,text,created_at
m1,p1,c2,求链接,2026-11-01T09:00:00Z
m2,p1,c3,已种草,2026-11-01T09:30:00Z
"""
REVIEWS_CSV = """external_id,customer_external_id,order_external_id,sku,rating,text,created_at
r1,c1,o1,SKU1,5,很滋润,2026-11-02T00:00:00Z
r2,c2,,SKU3,4,,2026-11-02T01:00:00Z
"""


def _posts_jsonl(**changes: Any) -> str:
    posts = [
        {"external_id": "p1", "author_customer_external_id": "c2", "hub_external_id": "tech",
         "content_type": "review", "title": "小米手机测评", "body": "续航很强。", "sku": "SKU3",
         "created_at": "2026-11-01T08:00:00+08:00"},
        {"external_id": "p2", "author_customer_external_id": "c3", "hub_external_id": None,
         "content_type": None, "title": "带娃日常", "body": "今天去了公园。", "sku": None,
         "created_at": "2026-11-01T12:00:00Z"},
    ]
    posts[0] |= changes
    return "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in posts)


def seed_community(client: TestClient, headers: Headers) -> None:
    """The catalog, customers c1-c3 and order o1 of c1 (SKU1)."""
    seed_catalog(client, headers)
    for key in ("c1", "c2", "c3"):
        body = {"external_id": key, "nickname": f"用户{key}"}
        assert client.post("/api/v1/customers", json=body, headers=headers).status_code == 201
    order = {"external_id": "o1", "customer_external_id": "c1",
             "lines": [{"sku": "SKU1", "quantity": 1}]}
    assert client.post("/api/v1/orders", json=order, headers=headers).status_code == 201


def upload(client: TestClient, headers: Headers, kind: str, name: str, text: str,
           skip_invalid: bool = False) -> dict[str, Any]:
    got = client.post(f"/api/v1/import/{kind}", headers=headers,
                      files={"file": (name, text.encode())},
                      data={"skip_invalid": str(skip_invalid).lower()})
    assert got.status_code == 200, got.text
    report: dict[str, Any] = got.json()
    return report


def outcome(report: dict[str, Any]) -> tuple[int, int, int, bool]:
    return report["inserted"], report["updated"], report["unchanged"], report["committed"]


def import_everything(client: TestClient, headers: Headers) -> list[dict[str, Any]]:
    return [upload(client, headers, "hubs", "hubs.csv", HUBS_CSV),
            upload(client, headers, "creators", "creators.csv", CREATORS_CSV),
            upload(client, headers, "posts", "posts.jsonl", _posts_jsonl()),
            upload(client, headers, "comments", "comments.csv", COMMENTS_CSV),
            upload(client, headers, "reviews", "reviews.csv", REVIEWS_CSV)]


def test_import_then_reimport_changes_nothing(client: TestClient,
                                              admin_headers: Headers) -> None:
    seed_community(client, admin_headers)
    first = import_everything(client, admin_headers)
    assert [outcome(r) for r in first] == [(2, 0, 0, True), (2, 0, 0, True), (2, 0, 0, True),
                                           (2, 0, 0, True), (2, 0, 0, True)]
    again = import_everything(client, admin_headers)
    assert [outcome(r) for r in again] == [(0, 0, 2, True)] * 5
    post = client.get("/api/v1/posts/p1", headers=admin_headers).json()
    assert (post["created_at"], post["hub_external_id"], post["comment_count"]) == (
        "2026-11-01T00:00:00Z", "tech", 2)
    creators = client.get("/api/v1/creators", headers=admin_headers).json()["items"]
    assert [(c["external_id"], c["joined_at"]) for c in creators] == [
        ("cr1", "2026-10-01T02:00:00Z"), ("cr2", "2026-10-02T00:00:00Z")]
    reviews = client.get("/api/v1/reviews", headers=admin_headers).json()["items"]
    assert [(r["external_id"], r["order_external_id"], r["text"]) for r in reviews] == [
        ("r2", None, ""), ("r1", "o1", "很滋润")]


def test_bad_review_rows_are_named_and_nothing_lands(client: TestClient,
                                                     admin_headers: Headers) -> None:
    seed_community(client, admin_headers)
    bad = REVIEWS_CSV + (
        "r3,c9,,SKU1,5,x,2026-11-02T00:00:00Z\n"
        "r4,c1,,SKU1,7,x,2026-11-02T00:00:00Z\n"
        "r5,c2,o1,SKU1,3,x,2026-11-02T00:00:00Z\n"
        "r6,c1,,NOPE,3,x,2026-11-02T00:00:00Z\n"
        "r7,c1,o9,SKU1,3,x,2026-11-02T00:00:00Z\n"
        "r8,c1,,SKU1,3,x,2026-11-02 00:00:00\n"
    )
    report = upload(client, admin_headers, "reviews", "reviews.csv", bad)
    assert outcome(report) == (0, 0, 0, False)
    assert [(e["line"], e["field"]) for e in report["rejected"]] == [
        (4, "customer_external_id"), (5, "rating"), (6, "order_external_id"), (7, "sku"),
        (8, "order_external_id"), (9, "created_at")]
    assert report["rejected"][0]["reason"] == "unknown customer 'c9'"
    assert report["rejected"][2]["reason"] == (
        "order 'o1' was placed by another customer than 'c2'")
    assert client.get("/api/v1/reviews", headers=admin_headers).json()["total"] == 0
    kept = upload(client, admin_headers, "reviews", "reviews.csv", bad, skip_invalid=True)
    assert outcome(kept) == (2, 0, 0, True)
    assert kept["rejected_count"] == 6


def test_second_review_of_an_order_line_is_rejected(client: TestClient,
                                                    admin_headers: Headers) -> None:
    seed_community(client, admin_headers)
    upload(client, admin_headers, "reviews", "reviews.csv", REVIEWS_CSV)
    again = "external_id,customer_external_id,order_external_id,sku,rating,created_at\n" \
            "r9,c1,o1,SKU1,1,2026-11-03T00:00:00Z\n"
    report = upload(client, admin_headers, "reviews", "more.csv", again)
    assert report["rejected"] == [{"line": 2, "field": "order_external_id",
                                   "reason": "'SKU1' of order 'o1' is reviewed already by 'r1'"}]


def test_unknown_references_are_named_per_row(client: TestClient,
                                              admin_headers: Headers) -> None:
    seed_community(client, admin_headers)
    hubs = upload(client, admin_headers, "hubs", "hubs.csv", HUBS_CSV + "x,X,,b9\n")
    assert hubs["rejected"] == [{"line": 4, "field": "brand_external_id",
                                 "reason": "unknown brand 'b9'"}]
    creators = upload(client, admin_headers, "creators", "creators.csv", CREATORS_CSV)
    assert creators["rejected"] == [
        {"line": 2, "field": "hub_external_id", "reason": "unknown hub 'tech'"},
        {"line": 3, "field": "hub_external_id", "reason": "unknown hub 'mums'"}]
    comments = upload(client, admin_headers, "comments", "comments.csv", COMMENTS_CSV)
    assert [(e["line"], e["reason"]) for e in comments["rejected"]] == [
        (2, "unknown post 'p1'"), (3, "unknown post 'p1'")]
    posts = upload(client, admin_headers, "posts", "posts.jsonl",
                   _posts_jsonl(content_type="advert", hub_external_id=None))
    assert [(e["line"], e["field"]) for e in posts["rejected"]] == [(1, "content_type")]


def test_one_creator_profile_per_customer_in_a_file(client: TestClient,
                                                    admin_headers: Headers) -> None:
    seed_community(client, admin_headers)
    upload(client, admin_headers, "hubs", "hubs.csv", HUBS_CSV)
    twice = CREATORS_CSV + "cr3,c2,小王小号,KOC,,2026-10-03T00:00:00Z\n"
    report = upload(client, admin_headers, "creators", "creators.csv", twice)
    assert report["rejected"] == [{"line": 4, "field": "customer_external_id",
                                   "reason": "customer 'c2' already has creator profile 'cr1'"}]


def test_reimport_updates_changed_rows_and_keeps_moderation(client: TestClient,
                                                            admin_headers: Headers,
                                                            services: Services) -> None:
    seed_community(client, admin_headers)
    upload(client, admin_headers, "hubs", "hubs.csv", HUBS_CSV)
    upload(client, admin_headers, "posts", "posts.jsonl", _posts_jsonl())
    with transaction(services.sessions) as session:
        session.execute(update(Post).where(Post.external_id == "p1").values(status="held"))
    report = upload(client, admin_headers, "posts", "posts.jsonl", _posts_jsonl(title="新标题"))
    assert outcome(report) == (0, 1, 1, True)
    post = client.get("/api/v1/posts/p1", headers=admin_headers).json()
    assert (post["title"], post["status"]) == ("新标题", "held")


@pytest.fixture
def pg_client(pg_services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services=pg_services)) as c:
        yield c


@pytest.mark.postgres
def test_reimport_changes_nothing_on_postgres(pg_client: TestClient,
                                              pg_services: Services) -> None:
    headers = bearer(make_key(pg_services, sorted(PERMISSIONS)))
    seed_community(pg_client, headers)
    import_everything(pg_client, headers)
    again = import_everything(pg_client, headers)
    assert [outcome(r) for r in again] == [(0, 0, 2, True)] * 5
    with transaction(pg_services.sessions) as session:
        assert session.scalars(select(Post.status).order_by(Post.id)).all() == [
            "published", "published"]
