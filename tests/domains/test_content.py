"""Content over HTTP: hubs, creators, posts with comments, reviews, partner scoping."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from conftest import T0, bearer, make_key, seed_catalog
from shequ.core.clock import FixedClock
from shequ.core.db import transaction
from shequ.core.errors import Conflict
from shequ.core.web import Services
from shequ.domains.content import service
from shequ.domains.content.models import Post

Headers = dict[str, str]


def seed_community(client: TestClient, headers: Headers) -> dict[str, int]:
    """The catalog, customers c1-c3, order o1 of c1 (SKU1, SKU3); brand ids by key."""
    seed_catalog(client, headers)
    for key in ("c1", "c2", "c3"):
        body = {"external_id": key, "nickname": f"用户{key}"}
        assert client.post("/api/v1/customers", json=body, headers=headers).status_code == 201
    order = {"external_id": "o1", "customer_external_id": "c1",
             "lines": [{"sku": "SKU1", "quantity": 1}, {"sku": "SKU3", "quantity": 1}]}
    assert client.post("/api/v1/orders", json=order, headers=headers).status_code == 201
    return {b["external_id"]: b["id"] for b in
            client.get("/api/v1/brands", headers=headers).json()}


def post_body(key: str, **changes: Any) -> dict[str, Any]:
    body = {"external_id": key, "author_customer_external_id": "c1", "title": f"标题{key}",
            "body": "这款面霜很滋润，冬天用刚好。", "content_type": "review", "sku": "SKU1"}
    return body | changes


def review_body(key: str, **changes: Any) -> dict[str, Any]:
    body = {"external_id": key, "customer_external_id": "c1", "sku": "SKU1", "rating": 5,
            "text": "好用"}
    return body | changes


def test_hub_and_creator_round_trip(client: TestClient, admin_headers: Headers) -> None:
    brands = seed_community(client, admin_headers)
    hub = {"external_id": "tech", "name": "科技评测局", "description": "专家、品牌与用户共建",
           "brand_external_id": "b2"}
    made = client.post("/api/v1/hubs", json=hub, headers=admin_headers)
    assert made.status_code == 201
    assert made.json() == hub | {"id": 1, "brand_id": brands["b2"]}
    creator = {"external_id": "cr1", "customer_external_id": "c2", "display_name": "数码小王",
               "level": "KOL", "hub_external_id": "tech"}
    got = client.post("/api/v1/creators", json=creator, headers=admin_headers)
    assert got.status_code == 201
    assert got.json() == creator | {"id": 1, "joined_at": "2026-11-20T08:00:00Z"}
    listed = client.get("/api/v1/creators?hub=tech&level=KOL", headers=admin_headers).json()
    assert [c["external_id"] for c in listed["items"]] == ["cr1"]
    assert client.get("/api/v1/hubs", headers=admin_headers).json() == [made.json()]


def test_customer_has_one_creator_profile(client: TestClient, admin_headers: Headers) -> None:
    seed_community(client, admin_headers)
    first = {"external_id": "cr1", "customer_external_id": "c2", "display_name": "小王"}
    assert client.post("/api/v1/creators", json=first, headers=admin_headers).status_code == 201
    again = client.post("/api/v1/creators", json=first | {"external_id": "cr2"},
                        headers=admin_headers)
    assert again.status_code == 409
    assert again.json()["code"] == "creator_exists"
    assert again.json()["attr"] == "customer_external_id"


def test_post_with_comments(client: TestClient, admin_headers: Headers,
                            clock: FixedClock) -> None:
    brands = seed_community(client, admin_headers)
    made = client.post("/api/v1/posts", json=post_body("p1"), headers=admin_headers)
    assert made.status_code == 201
    assert made.json()["brand_id"] == brands["b1"]
    assert made.json()["status"] == "published"
    assert made.json()["created_at"] == "2026-11-20T08:00:00Z"
    clock.advance(timedelta(minutes=5))
    for key, who, text in (("m1", "c2", "求链接"), ("m2", "c3", "已种草")):
        body = {"external_id": key, "customer_external_id": who, "text": text}
        got = client.post("/api/v1/posts/p1/comments", json=body, headers=admin_headers)
        assert got.status_code == 201
    detail = client.get("/api/v1/posts/p1", headers=admin_headers).json()
    assert detail["comment_count"] == 2
    assert [(c["external_id"], c["customer_external_id"], c["text"]) for c in
            detail["comments"]] == [("m1", "c2", "求链接"), ("m2", "c3", "已种草")]
    assert detail["comments"][0]["created_at"] == "2026-11-20T08:05:00Z"


def test_comment_on_held_post_is_refused(client: TestClient, admin_headers: Headers,
                                         services: Services) -> None:
    seed_community(client, admin_headers)
    client.post("/api/v1/posts", json=post_body("p1"), headers=admin_headers)
    with transaction(services.sessions) as session:
        session.execute(update(Post).values(status="held"))
    body = {"external_id": "m1", "customer_external_id": "c2", "text": "?"}
    got = client.post("/api/v1/posts/p1/comments", json=body, headers=admin_headers)
    assert got.status_code == 409
    assert got.json()["code"] == "post_not_published"


def test_post_filters_and_pages(client: TestClient, admin_headers: Headers,
                                clock: FixedClock) -> None:
    seed_community(client, admin_headers)
    client.post("/api/v1/hubs", json={"external_id": "tech", "name": "科技评测局"},
                headers=admin_headers)
    posts = [post_body("p1", hub_external_id="tech", sku="SKU3"),
             post_body("p2", content_type="story", sku=None),
             post_body("p3", content_type=None, sku="SKU2"),
             post_body("p4", hub_external_id="tech", content_type="knowledge", sku=None)]
    for body in posts:
        clock.advance(timedelta(hours=1))
        assert client.post("/api/v1/posts", json=body, headers=admin_headers).status_code == 201

    def keys(query: str) -> tuple[int, list[str]]:
        page = client.get(f"/api/v1/posts{query}", headers=admin_headers).json()
        return page["total"], [p["external_id"] for p in page["items"]]

    assert keys("") == (4, ["p4", "p3", "p2", "p1"])
    assert keys("?hub=tech") == (2, ["p4", "p1"])
    assert keys("?content_type=story") == (1, ["p2"])
    assert keys("?product=SKU3") == (1, ["p1"])
    assert keys("?limit=2&offset=1") == (4, ["p3", "p2"])
    assert keys("?product=NOPE") == (0, [])
    bad = client.get("/api/v1/posts?content_type=advert", headers=admin_headers)
    assert bad.status_code == 422
    assert bad.json()["attr"] == "content_type"


def test_unknown_references_name_the_field(client: TestClient, admin_headers: Headers) -> None:
    seed_community(client, admin_headers)
    for changes, code, attr in (({"sku": "NOPE"}, "unknown_sku", "sku"),
                                ({"hub_external_id": "h9"}, "unknown_hub", "hub_external_id"),
                                ({"author_customer_external_id": "c9"}, "unknown_customer",
                                 "author_customer_external_id")):
        got = client.post("/api/v1/posts", json=post_body("p1", **changes),
                          headers=admin_headers)
        assert got.status_code == 422
        assert (got.json()["code"], got.json()["attr"]) == (code, attr)
    assert client.get("/api/v1/posts", headers=admin_headers).json()["total"] == 0


def test_overlong_post_body_names_field(client: TestClient, admin_headers: Headers) -> None:
    seed_community(client, admin_headers)
    got = client.post("/api/v1/posts", json=post_body("p1", body="长" * 20_001),
                      headers=admin_headers)
    assert got.status_code == 422
    assert (got.json()["code"], got.json()["attr"]) == ("string_too_long", "body")


def test_post_dated_in_future_is_refused(client: TestClient, admin_headers: Headers) -> None:
    seed_community(client, admin_headers)
    body = post_body("p1", created_at="2026-11-21T00:00:00+08:00")
    got = client.post("/api/v1/posts", json=body, headers=admin_headers)
    assert got.status_code == 422
    assert (got.json()["code"], got.json()["attr"]) == ("time_in_future", "created_at")


def test_review_rating_out_of_range_names_field(client: TestClient,
                                                admin_headers: Headers) -> None:
    seed_community(client, admin_headers)
    got = client.post("/api/v1/reviews", json=review_body("r1", rating=6),
                      headers=admin_headers)
    assert got.status_code == 422
    assert got.json()["type"] == "validation_error"
    assert got.json()["attr"] == "rating"


def test_review_of_an_order(client: TestClient, admin_headers: Headers) -> None:
    brands = seed_community(client, admin_headers)
    made = client.post("/api/v1/reviews", json=review_body("r1", order_external_id="o1"),
                       headers=admin_headers)
    assert made.status_code == 201
    assert made.json() == review_body("r1") | {
        "id": 1, "order_external_id": "o1", "brand_id": brands["b1"],
        "created_at": "2026-11-20T08:00:00Z", "status": "published"}
    twice = client.post("/api/v1/reviews", json=review_body("r2", order_external_id="o1"),
                        headers=admin_headers)
    assert twice.status_code == 409
    assert (twice.json()["code"], twice.json()["attr"]) == ("review_exists", "order_external_id")


def test_review_by_wrong_customer_for_order_is_refused(client: TestClient,
                                                       admin_headers: Headers) -> None:
    seed_community(client, admin_headers)
    body = review_body("r1", customer_external_id="c2", order_external_id="o1")
    got = client.post("/api/v1/reviews", json=body, headers=admin_headers)
    assert got.status_code == 422
    assert got.json()["code"] == "order_of_other_customer"
    assert got.json()["attr"] == "order_external_id"
    assert client.get("/api/v1/reviews", headers=admin_headers).json()["total"] == 0


def test_review_filters(client: TestClient, admin_headers: Headers) -> None:
    seed_community(client, admin_headers)
    for key, sku, rating in (("r1", "SKU1", 5), ("r2", "SKU1", 2), ("r3", "SKU3", 5)):
        body = review_body(key, sku=sku, rating=rating, text=None)
        assert client.post("/api/v1/reviews", json=body, headers=admin_headers).status_code == 201
    page = client.get("/api/v1/reviews?sku=SKU1&rating=5", headers=admin_headers).json()
    assert page["total"] == 1
    assert (page["items"][0]["external_id"], page["items"][0]["text"]) == ("r1", "")
    assert client.get("/api/v1/reviews?rating=5", headers=admin_headers).json()["total"] == 2


def test_partner_sees_only_its_brands_content(client: TestClient, services: Services,
                                              admin_headers: Headers) -> None:
    brands = seed_community(client, admin_headers)
    for body in (post_body("p1"), post_body("p2", sku="SKU3"), post_body("p3", sku=None)):
        assert client.post("/api/v1/posts", json=body, headers=admin_headers).status_code == 201
    for body in (review_body("r1"), review_body("r2", sku="SKU3")):
        assert client.post("/api/v1/reviews", json=body, headers=admin_headers).status_code == 201
    for hub, brand in (("beauty", "b1"), ("tech", "b2")):
        body = {"external_id": hub, "name": hub, "brand_external_id": brand}
        assert client.post("/api/v1/hubs", json=body, headers=admin_headers).status_code == 201
        body = {"external_id": f"cr-{hub}", "customer_external_id": "c2" if brand == "b1"
                else "c3", "display_name": hub, "hub_external_id": hub}
        assert client.post("/api/v1/creators", json=body, headers=admin_headers).status_code == 201
    partner = bearer(make_key(services, ["content:read"], brand_ids=[brands["b1"]]))

    assert [h["external_id"] for h in client.get("/api/v1/hubs", headers=partner).json()] == [
        "beauty"]
    creators = client.get("/api/v1/creators", headers=partner).json()["items"]
    assert [(c["external_id"], c["customer_external_id"]) for c in creators] == [
        ("cr-beauty", None)]
    reviews = client.get("/api/v1/reviews", headers=partner).json()
    assert [(r["external_id"], r["customer_external_id"]) for r in reviews["items"]] == [
        ("r1", None)]
    assert client.get("/api/v1/reviews?sku=SKU3", headers=partner).json()["total"] == 0
    posts = client.get("/api/v1/posts", headers=partner).json()
    assert [p["external_id"] for p in posts["items"]] == ["p1"]
    other = client.get("/api/v1/posts/p2", headers=partner)
    assert other.status_code == 404
    assert other.json()["code"] == "post_not_found"
    assert client.get("/api/v1/posts/p3", headers=partner).status_code == 404
    refused = client.post("/api/v1/reviews", json=review_body("r3"), headers=partner)
    assert refused.status_code == 403


def test_counts_between(client: TestClient, admin_headers: Headers, services: Services,
                        clock: FixedClock) -> None:
    seed_community(client, admin_headers)
    client.post("/api/v1/posts", json=post_body("p1"), headers=admin_headers)
    client.post("/api/v1/reviews", json=review_body("r1"), headers=admin_headers)
    clock.advance(timedelta(days=1))
    client.post("/api/v1/posts", json=post_body("p2"), headers=admin_headers)
    client.post("/api/v1/posts/p2/comments", headers=admin_headers,
                json={"external_id": "m1", "customer_external_id": "c2", "text": "赞"})
    with transaction(services.sessions) as session:
        first_day = service.counts_between(session, T0, T0 + timedelta(days=1))
        both = service.counts_between(session, T0, T0 + timedelta(days=2))
    assert first_day == {"posts": 1, "reviews": 1, "comments": 0}
    assert both == {"posts": 2, "reviews": 1, "comments": 1}


def test_bulk_load(client: TestClient, admin_headers: Headers, services: Services) -> None:
    brands = seed_community(client, admin_headers)
    hubs = [{"external_id": "tech", "name": "科技评测局", "description": None,
             "brand_external_id": "b2"}]
    creators = [{"external_id": "cr1", "customer_external_id": "c2", "display_name": "小王",
                 "level": "expert", "hub_external_id": "tech", "joined_at": T0}]
    posts = [{"external_id": f"p{n}", "author_customer_external_id": "c2",
              "hub_external_id": "tech", "content_type": "knowledge", "title": "讲解",
              "body": "正文", "sku": "SKU3" if n % 2 else None, "created_at": T0}
             for n in range(10)]
    comments = [{"external_id": "m1", "post_external_id": "p1", "customer_external_id": "c3",
                 "text": "学到了", "created_at": T0}]
    reviews = [{"external_id": "r1", "customer_external_id": "c1", "order_external_id": "o1",
                "sku": "SKU3", "rating": 4, "text": "不错", "created_at": T0}]
    with transaction(services.sessions) as session:
        loaded = service.bulk_load(session, hubs, creators, posts, comments, reviews)
    assert loaded == {"hubs": 1, "creators": 1, "posts": 10, "comments": 1, "reviews": 1}
    partner = bearer(make_key(services, ["content:read"], brand_ids=[brands["b2"]]))
    page = client.get("/api/v1/posts?hub=tech", headers=partner).json()
    assert page["total"] == 5
    assert client.get("/api/v1/posts/p1", headers=partner).json()["comment_count"] == 1
    with pytest.raises(Conflict) as refused, transaction(services.sessions) as session:
        service.bulk_load(session, hubs, [], [], [], [])
    assert refused.value.code == "already_loaded"
