"""Content quality: reach and conversion from events, attribution rule, explained score,
library filters, partner scoping, dwell per content type, creator statistics."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from conftest import T0, bearer, make_key, seed_catalog
from shequ.core.db import transaction
from shequ.core.web import Services
from shequ.domains.content import service
from shequ.domains.content.models import Post, PostSignature, Review
from shequ.domains.content.schemas import ScoreRefreshIn
from shequ.domains.content.scoring import percentile_within

Headers = dict[str, str]
VIEWED = T0 - timedelta(days=15)
CSV_HEAD = "order_external_id,customer_external_id,status,created_at,paid_at,refunded_at,sku,"\
           "quantity,unit_price_fen\n"


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _event(name: str, who: str, at: datetime, post: str, dwell_ms: int | None = None
           ) -> dict[str, Any]:
    body: dict[str, Any] = {"event_id": str(uuid.uuid4()), "name": name,
                            "timestamp": _iso(at), "customer_id": who,
                            "page": f"/post/{post}", "properties": {"post_id": post}}
    if dwell_ms is not None:
        body["dwell_ms"] = dwell_ms
    return body


def _order(key: str, who: str, sku: str, paid: datetime, *, price: int = 9900,
           refunded: datetime | None = None) -> str:
    status = "refunded" if refunded else "paid"
    created = paid - timedelta(minutes=10)
    return (f"{key},{who},{status},{_iso(created)},{_iso(paid)},"
            f"{_iso(refunded) if refunded else ''},{sku},1,{price}\n")


def _post(key: str, author: str, sku: str | None, kind: str, body: str,
          created: datetime) -> dict[str, Any]:
    return {"external_id": key, "author_customer_external_id": author, "title": f"标题{key}",
            "body": body, "content_type": kind, "sku": sku, "created_at": _iso(created)}


BODIES = {
    "p1": "这款面霜质地轻薄，上脸很快吸收，干皮冬天用一整天都不紧绷，香味淡淡的很舒服。",
    "p2": "手机续航实测：满电刷视频八小时还剩两成电，充电半小时回到七成，发热控制得不错。",
    "p3": "周末带孩子去郊外露营，搭帐篷、烤棉花糖，晚上一起数星星，孩子说这是最开心的一天。",
    "p4": "敏感肌怎么选面霜？先看成分表，避开酒精和香精，再做耳后测试，最后少量多次试用。",
}


def build(client: TestClient, headers: Headers) -> dict[str, int]:
    """Catalog, customers c1-c6, creator of c1, posts p1-p4, views and orders around p1."""
    seed_catalog(client, headers)
    for key in ("c1", "c2", "c3", "c4", "c5", "c6"):
        body = {"external_id": key, "nickname": f"用户{key}"}
        assert client.post("/api/v1/customers", json=body, headers=headers).status_code == 201
    creator = {"external_id": "cr1", "customer_external_id": "c1", "display_name": "小花"}
    assert client.post("/api/v1/creators", json=creator, headers=headers).status_code == 201
    made = T0 - timedelta(days=20)
    for body in (_post("p1", "c1", "SKU1", "review", BODIES["p1"], made),
                 _post("p2", "c2", "SKU3", "review", BODIES["p2"], made),
                 _post("p3", "c3", None, "story", BODIES["p3"], made),
                 _post("p4", "c1", "SKU2", "knowledge", BODIES["p4"], made)):
        got = client.post("/api/v1/posts", json=body, headers=headers)
        assert got.status_code == 201, got.text
    events = [_event("post_view", who, VIEWED, "p1", dwell_ms=30_000)
              for who in ("c1", "c2", "c3", "c4", "c5", "c6")]
    events += [_event("post_view", "c2", VIEWED + timedelta(hours=2), "p1", dwell_ms=10_000),
               _event("like", "c2", VIEWED + timedelta(minutes=1), "p1"),
               _event("share", "c3", VIEWED + timedelta(minutes=1), "p1"),
               _event("comment", "c4", VIEWED + timedelta(minutes=1), "p1"),
               _event("post_view", "c5", VIEWED, "p2", dwell_ms=4_000),
               _event("post_view", "c6", VIEWED, "p3", dwell_ms=90_000)]
    writer = bearer(make_key(client.app.state.services, ["events:write"]))
    accepted = client.post("/api/v1/events", json=events, headers=writer)
    assert accepted.status_code == 200, accepted.text
    orders = CSV_HEAD + "".join([
        _order("oA", "c2", "SKU1", VIEWED + timedelta(days=1)),  # counts
        _order("oB", "c3", "SKU1", VIEWED + timedelta(days=8)),  # outside 7 days
        _order("oC", "c1", "SKU1", VIEWED + timedelta(days=1)),  # the author's own
        _order("oD", "c4", "SKU1", VIEWED + timedelta(days=1),
               refunded=VIEWED + timedelta(days=3)),  # refunded
        _order("oE", "c5", "SKU2", VIEWED + timedelta(days=1)),  # another product
        _order("oF", "c6", "SKU1", VIEWED - timedelta(hours=1)),  # paid before viewing
    ])
    got = client.post("/api/v1/import/orders", headers=headers,
                      files={"file": ("orders.csv", orders.encode())})
    assert got.status_code == 200, got.text
    assert got.json()["committed"], got.text
    return {b["external_id"]: b["id"] for b in
            client.get("/api/v1/brands", headers=headers).json()}


def refresh(client: TestClient, headers: Headers, **body: Any) -> dict[str, Any]:
    got = client.post("/api/v1/content/scores/refresh", json=body or None, headers=headers)
    assert got.status_code == 200, got.text
    report: dict[str, Any] = got.json()
    return report


def score(client: TestClient, headers: Headers, key: str) -> dict[str, Any]:
    got = client.get(f"/api/v1/content/posts/{key}/score", headers=headers)
    assert got.status_code == 200, got.text
    found: dict[str, Any] = got.json()
    return found


def test_attribution_counts_only_a_viewer_paying_within_the_window(
        client: TestClient, admin_headers: Headers) -> None:
    build(client, admin_headers)
    report = refresh(client, admin_headers)
    assert report["posts"] == 4
    assert (report["attributed_orders"], report["attributed_gmv_fen"]) == (1, 9900)
    p1 = score(client, admin_headers, "p1")
    assert (p1["views"], p1["unique_viewers"]) == (7, 6)
    assert (p1["likes"], p1["shares"], p1["comments"]) == (1, 1, 1)
    assert (p1["attributed_orders"], p1["attributed_gmv_fen"]) == (1, 9900)
    assert score(client, admin_headers, "p4")["attributed_orders"] == 0  # oE: no view of p4
    wider = refresh(client, admin_headers, attribution_days=9)
    assert (wider["attributed_orders"], wider["attributed_gmv_fen"]) == (2, 19800)


def test_explanation_sums_to_the_score(client: TestClient, admin_headers: Headers) -> None:
    build(client, admin_headers)
    refresh(client, admin_headers, weights={"originality": 1, "reach": 2, "conversion": 1})
    for key in ("p1", "p2", "p3", "p4"):
        found = score(client, admin_headers, key)
        parts = found["components"]
        assert set(parts) == {"originality", "reach", "conversion"}
        assert sum(p["weight"] for p in parts.values()) == pytest.approx(1.0)
        assert parts["reach"]["weight"] == pytest.approx(0.5)
        assert sum(p["contribution"] for p in parts.values()) == pytest.approx(
            found["quality"], abs=1e-6)
        for part in parts.values():
            assert part["contribution"] == pytest.approx(
                100 * part["weight"] * part["normalised"], abs=1e-5)
            assert 0.0 <= part["normalised"] <= 1.0
    p1, p2 = score(client, admin_headers, "p1"), score(client, admin_headers, "p2")
    # p1 and p2 are both reviews: p1 has more views per day, engagement and the order.
    assert (p1["reach"], p2["reach"]) == (1.0, 0.0)
    assert (p1["conversion"], p2["conversion"]) == (1.0, 0.0)
    assert p1["components"]["reach"]["inputs"]["views"] == 7


def test_refresh_is_idempotent(client: TestClient, admin_headers: Headers) -> None:
    build(client, admin_headers)
    refresh(client, admin_headers)
    first = [score(client, admin_headers, k) for k in ("p1", "p2", "p3", "p4")]
    again = refresh(client, admin_headers)
    assert again["posts"] == 4
    assert [score(client, admin_headers, k) for k in ("p1", "p2", "p3", "p4")] == first


def test_bad_weights_name_the_field(client: TestClient, admin_headers: Headers) -> None:
    got = client.post("/api/v1/content/scores/refresh", headers=admin_headers,
                      json={"weights": {"originality": 0, "reach": 0, "conversion": 0}})
    assert got.status_code == 422
    assert got.json()["attr"] == "weights"
    got = client.post("/api/v1/content/scores/refresh", headers=admin_headers,
                      json={"attribution_days": 0})
    assert got.status_code == 422
    assert got.json()["attr"] == "attribution_days"


def test_library_filters_and_sort(client: TestClient, admin_headers: Headers) -> None:
    build(client, admin_headers)
    made = T0 - timedelta(days=1)
    for key, text in (("g1", "非常喜欢这款面霜，质量很好，用着很舒服，强烈推荐给大家！"),
                      ("g2", "质量太差了，用了两天就过敏，客服也不理人，非常失望，不推荐。")):
        body = _post(key, "c5", "SKU1", "review", text, made)
        assert client.post("/api/v1/posts", json=body, headers=admin_headers).status_code == 201

    def keys(query: str) -> list[str]:
        got = client.get(f"/api/v1/posts{query}", headers=admin_headers)
        assert got.status_code == 200, got.text
        return [p["external_id"] for p in got.json()["items"]]

    positive, negative = keys("?sentiment=pos"), keys("?sentiment=neg")
    assert "g1" in positive
    assert "g1" not in negative
    assert "g2" in negative
    assert "g2" not in positive
    assert keys("?min_quality=0") == []  # nothing scored yet
    refresh(client, admin_headers)
    page = client.get("/api/v1/posts?sort=score", headers=admin_headers).json()["items"]
    qualities = [p["quality"] for p in page]
    assert len(qualities) == 6
    assert qualities == sorted(qualities, reverse=True)
    best = qualities[2]
    assert keys(f"?min_quality={best}&sort=score") == [p["external_id"] for p in page
                                                       if p["quality"] >= best]
    assert keys("?content_type=story&sort=score") == ["p3"]
    bad = client.get("/api/v1/posts?sentiment=happy", headers=admin_headers)
    assert (bad.status_code, bad.json()["attr"]) == (422, "sentiment")
    bad = client.get("/api/v1/posts?min_quality=101", headers=admin_headers)
    assert (bad.status_code, bad.json()["attr"]) == (422, "min_quality")


def test_partner_sees_only_its_brands_scores(client: TestClient, services: Services,
                                             admin_headers: Headers) -> None:
    brands = build(client, admin_headers)
    refresh(client, admin_headers)
    partner = bearer(make_key(services, ["content:read"], brand_ids=[brands["b1"]]))
    assert score(client, partner, "p1")["attributed_orders"] == 1
    other = client.get("/api/v1/content/posts/p2/score", headers=partner)
    assert (other.status_code, other.json()["code"]) == (404, "post_not_found")
    refused = client.post("/api/v1/content/scores/refresh", headers=partner)
    assert refused.status_code == 403
    dwell = client.get("/api/v1/content/dwell-by-type", headers=partner,
                       params={"since": _iso(T0 - timedelta(days=30)), "until": _iso(T0)})
    assert [(g["group"], g["views"]) for g in dwell.json()["groups"]] == [("review", 7)]
    page = client.get("/api/v1/posts?sort=score", headers=partner).json()
    assert {p["external_id"] for p in page["items"]} == {"p1", "p4"}


def test_dwell_by_content_type(client: TestClient, admin_headers: Headers) -> None:
    build(client, admin_headers)
    got = client.get("/api/v1/content/dwell-by-type", headers=admin_headers,
                     params={"since": _iso(T0 - timedelta(days=30)), "until": _iso(T0)})
    assert got.status_code == 200, got.text
    groups = {g["group"]: g for g in got.json()["groups"]}
    assert set(groups) == {"review", "story"}
    assert (groups["review"]["views"], groups["review"]["with_dwell"]) == (8, 8)
    # Seven views of 30 s, one of 10 s (p1) and one of 4 s (p2): median 30 s.
    assert groups["review"]["median_seconds"] == 30.0
    assert groups["story"]["mean_seconds"] == 90.0
    empty = client.get("/api/v1/content/dwell-by-type", headers=admin_headers,
                       params={"since": _iso(T0), "until": _iso(T0 - timedelta(days=1))})
    assert (empty.status_code, empty.json()["attr"]) == (422, "since")


def test_creator_post_stats(client: TestClient, admin_headers: Headers,
                            services: Services) -> None:
    build(client, admin_headers)
    with transaction(services.sessions) as session:
        before = service.creator_post_stats(session, T0 - timedelta(days=30), T0)
    assert [(s.creator_external_id, s.posts, s.mean_quality, s.orders) for s in before] == [
        ("cr1", 2, None, 0), (None, 1, None, 0), (None, 1, None, 0)]
    refresh(client, admin_headers)
    with transaction(services.sessions) as session:
        after = service.creator_post_stats(session, T0 - timedelta(days=30), T0)
        later = service.creator_post_stats(session, T0 - timedelta(days=5), T0)
    first = after[0]
    assert (first.creator_external_id, first.posts, first.views, first.orders,
            first.gmv_fen) == ("cr1", 2, 7, 1, 9900)
    assert first.mean_quality is not None
    assert 0 <= first.mean_quality <= 100
    assert later == []


def test_percentile_within_groups() -> None:
    values = pd.Series([0.0, 0.0, 3.0, 5.0, 2.0, 7.0])
    groups = pd.Series(["a", "a", "a", "a", "b", "c"])
    got = percentile_within(values, groups).tolist()
    assert got == [0.0, 0.0, pytest.approx(2 / 3), 1.0, 1.0, 1.0]


def test_default_config_weights() -> None:
    weights = ScoreRefreshIn().weights.normalised()
    assert weights == {"originality": 0.3, "reach": 0.4, "conversion": 0.3}


def test_review_sentiment_is_stored_and_filtered(client: TestClient,
                                                 admin_headers: Headers) -> None:
    build(client, admin_headers)
    for key, text in (("r1", "非常好用，质量很好，强烈推荐！"),
                      ("r2", "太差了，用了就过敏，非常失望。"), ("r3", "")):
        body = {"external_id": key, "customer_external_id": "c2", "sku": "SKU1", "rating": 3,
                "text": text}
        assert client.post("/api/v1/reviews", json=body, headers=admin_headers).status_code == 201

    def keys(band: str) -> list[str]:
        page = client.get(f"/api/v1/reviews?sentiment={band}", headers=admin_headers).json()
        return [r["external_id"] for r in page["items"]]

    assert keys("pos") == ["r1"]
    assert keys("neg") == ["r2"]
    assert keys("neutral") == []  # a rating without words has no sentiment


def test_refresh_backfills_rows_written_before_scoring(client: TestClient, services: Services,
                                                       admin_headers: Headers) -> None:
    build(client, admin_headers)
    with transaction(services.sessions) as session:
        # A post and a review as an old release wrote them: no type, sentiment, signature.
        session.execute(insert(Post), [{
            "external_id": "old", "customer_id": 1, "title": "老帖", "body": BODIES["p3"],
            "created_at": T0 - timedelta(days=40), "status": "published"}])
        session.execute(insert(Review), [{
            "external_id": "old-r", "customer_id": 1, "product_id": 1, "brand_id": 1,
            "rating": 5, "text": "非常好用，强烈推荐！", "created_at": T0}])
    report = refresh(client, admin_headers)
    assert report["posts"] == 5
    old = score(client, admin_headers, "old")
    assert old["content_type"] is not None
    assert old["originality"] == 1.0
    with transaction(services.sessions) as session:
        post = session.scalars(select(Post).where(Post.external_id == "old")).one()
        review = session.scalars(select(Review).where(Review.external_id == "old-r")).one()
        assert post.sentiment is not None
        assert review.sentiment is not None
        assert session.get(PostSignature, post.id) is not None
