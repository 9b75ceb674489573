"""Originality on arrival: MinHash LSH buckets in the database, earlier posts only, the
demo's planted near-duplicates, and concurrent arrivals on PostgreSQL."""

from __future__ import annotations

import json
import threading
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from conftest import T0, seed_catalog
from shequ.core.db import transaction
from shequ.core.permissions import CLI_PRINCIPAL
from shequ.core.web import Services
from shequ.demo.generator import generate
from shequ.domains.catalog import service as catalog
from shequ.domains.catalog.schemas import BrandIn
from shequ.domains.content import service
from shequ.domains.content.models import Post, PostLshBand, PostScore, PostSignature
from shequ.domains.content.schemas import ContentType, PostIn
from shequ.domains.content.scoring import BANDS, recompute_originality
from shequ.domains.customers import service as customers
from shequ.domains.customers.schemas import CustomerIn
from shequ.domains.orders import service as orders

Headers = dict[str, str]
SOURCE = ("入冬以后皮肤特别干，试了这款保湿面霜两个星期：质地是偏厚的乳霜，但推开很快吸收，"
          "早上涂完化妆也不搓泥，晚上厚涂一层第二天脸摸起来软软的。唯一的缺点是香味有点重。")
COPY = ("入冬以后皮肤特别干，试了这款保湿面霜三个星期：质地是偏厚的乳霜，但推开很快吸收，"
        "早上涂完化妆也不搓泥，晚上厚涂一层第二天脸摸起来软软的。唯一缺点是香味有点重！")
OTHER = ("周末去山里徒步，路线全长十二公里，爬升六百米。建议穿防滑的登山鞋，带两升水和一些能量棒，"
         "下午三点前一定要开始下山，山里天黑得很早。")


def _post(key: str, text: str, author: str = "c1") -> dict[str, Any]:
    return {"external_id": key, "author_customer_external_id": author, "title": "面霜心得",
            "body": text, "content_type": "review", "sku": "SKU1"}


def _seed(client: TestClient, headers: Headers) -> None:
    seed_catalog(client, headers)
    for key in ("c1", "c2", "c3"):
        body = {"external_id": key, "nickname": f"用户{key}"}
        assert client.post("/api/v1/customers", json=body, headers=headers).status_code == 201


def _score(client: TestClient, headers: Headers, key: str) -> dict[str, Any]:
    got = client.get(f"/api/v1/content/posts/{key}/score", headers=headers)
    assert got.status_code == 200, got.text
    found: dict[str, Any] = got.json()
    return found


def test_near_duplicate_on_arrival_points_at_the_earlier_post(
        client: TestClient, admin_headers: Headers, services: Services) -> None:
    _seed(client, admin_headers)
    for key, text, author in (("p1", SOURCE, "c1"), ("p2", COPY, "c2"), ("p3", OTHER, "c3")):
        got = client.post("/api/v1/posts", json=_post(key, text, author), headers=admin_headers)
        assert got.status_code == 201, got.text
    first, copy, other = (_score(client, admin_headers, k) for k in ("p1", "p2", "p3"))
    assert (first["originality"], first["sources"]) == (1.0, [])
    assert copy["originality"] < 0.4
    assert [s["post"] for s in copy["sources"]] == ["p1"]
    assert copy["sources"][0]["similarity"] == pytest.approx(1 - copy["originality"])
    assert (other["originality"], other["sources"]) == (1.0, [])
    assert copy["quality"] is None  # not refreshed yet
    listed = client.get("/api/v1/posts", headers=admin_headers).json()["items"]
    assert {p["external_id"]: p["originality"] for p in listed}["p2"] == copy["originality"]
    with transaction(services.sessions) as session:
        assert session.scalar(select(func.count()).select_from(PostLshBand)) == 3 * BANDS
        assert session.scalar(select(func.count()).select_from(PostSignature)) == 3


def test_a_backdated_post_becomes_the_original_on_refresh(
        client: TestClient, admin_headers: Headers) -> None:
    _seed(client, admin_headers)
    client.post("/api/v1/posts", json=_post("late", COPY, "c2"), headers=admin_headers)
    early = _post("early", SOURCE) | {"created_at": (T0 - timedelta(days=3)).isoformat()}
    assert client.post("/api/v1/posts", json=early, headers=admin_headers).status_code == 201
    # On arrival only earlier posts count: each sees nothing earlier than itself but ...
    assert _score(client, admin_headers, "early")["originality"] == 1.0
    assert [s["post"] for s in _score(client, admin_headers, "late")["sources"]] == []
    # ... the refresh compares every pair by time, so the later one is the copy.
    got = client.post("/api/v1/content/scores/refresh", headers=admin_headers)
    assert got.status_code == 200
    assert got.json()["near_duplicates"] == 1
    assert [s["post"] for s in _score(client, admin_headers, "late")["sources"]] == ["early"]
    assert _score(client, admin_headers, "early")["originality"] == 1.0


def test_reimported_post_is_reindexed(client: TestClient, admin_headers: Headers,
                                      services: Services) -> None:
    _seed(client, admin_headers)
    client.post("/api/v1/posts", json=_post("p1", SOURCE), headers=admin_headers)
    # Both at T0: equal times fall back to the key, so p1 is the earlier post.
    row = _post("p2", OTHER, "c2") | {"created_at": T0.isoformat()}

    def upload(body: dict[str, Any]) -> dict[str, Any]:
        got = client.post("/api/v1/import/posts", headers=admin_headers,
                          files={"file": ("posts.jsonl", json.dumps(body).encode())})
        assert got.status_code == 200, got.text
        report: dict[str, Any] = got.json()
        return report

    assert upload(row)["inserted"] == 1
    assert _score(client, admin_headers, "p2")["originality"] == 1.0
    assert upload(row | {"body": COPY})["updated"] == 1
    assert [s["post"] for s in _score(client, admin_headers, "p2")["sources"]] == ["p1"]
    assert upload(row | {"body": COPY})["unchanged"] == 1
    with transaction(services.sessions) as session:
        assert session.scalar(select(func.count()).select_from(PostLshBand)) == 2 * BANDS


def _load_small_demo(services: Services) -> dict[str, Any]:
    community = generate(size="small", seed=7, end=date(2026, 11, 20))
    with transaction(services.sessions) as session:
        catalog.bulk_load(session, community.brands, community.categories, community.products)
        customers.bulk_load(session, community.customers, community.devices)
        orders.bulk_load_orders(session, community.orders, community.order_lines)
        service.bulk_load(session, community.hubs, community.creators, community.posts,
                          community.comments, community.reviews)
    planted: dict[str, Any] = community.planted["near_duplicate_posts"]
    return planted


def test_demo_near_duplicates_are_found_by_the_bulk_load(services: Services) -> None:
    planted = _load_small_demo(services)
    pairs = {p["post_external_id"]: p["source_post_external_id"] for p in planted["pairs"]}
    assert len(pairs) >= 5
    with transaction(services.sessions) as session:
        keys = dict(session.execute(select(Post.id, Post.external_id)).tuples().all())
        found = {keys[i]: sources for i, sources in session.execute(
            select(PostScore.post_id, PostScore.sources)).tuples()}
        again = recompute_originality(session)
    assert len(found) == len(keys) == 240
    flagged = {key for key, sources in found.items() if sources}
    assert set(pairs) <= flagged
    for dup, source in pairs.items():
        assert source in [s["post"] for s in found[dup]]
    # Few posts besides the planted copies look copied (phrase-bank posts differ).
    assert len(flagged - set(pairs)) <= len(pairs)
    # The bulk load (one batch) and the refresh's pairwise recomputation agree.
    assert {keys[i] for i, (_o, sources) in again.items() if sources} == flagged


def test_concurrent_near_duplicates_on_postgresql(pg_services: Services) -> None:
    with transaction(pg_services.sessions) as session:
        catalog.create_brand(session, BrandIn(external_id="b1", name="花知晓"))
        for key in ("c1", "c2"):
            customers.create_customer(session, pg_services.clock,
                                      CustomerIn(external_id=key, nickname=key))
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def publish(key: str, text: str, author: str) -> None:
        try:
            with transaction(pg_services.sessions) as session:
                barrier.wait(timeout=10)
                service.create_post(session, pg_services.clock, CLI_PRINCIPAL, PostIn(
                    external_id=key, author_customer_external_id=author, title="面霜心得",
                    body=text, content_type=ContentType.REVIEW))
                barrier.wait(timeout=10)  # both inserted, neither committed
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=("a", SOURCE, "c1")),
               threading.Thread(target=publish, args=("b", COPY, "c2"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with transaction(pg_services.sessions) as session:
        per_post = dict(session.execute(select(PostLshBand.post_id, func.count())
                                        .group_by(PostLshBand.post_id)).tuples().all())
        assert sorted(per_post.values()) == [BANDS, BANDS]
        assert session.scalar(select(func.count()).select_from(PostSignature)) == 2
    # Neither saw the other's uncommitted rows on arrival; the refresh pairs them.
    report = service.refresh_scores(pg_services, CLI_PRINCIPAL)
    assert report.near_duplicates == 1
    with transaction(pg_services.sessions) as session:
        copied = session.execute(select(Post.external_id, PostScore.sources)
                                 .join(PostScore, PostScore.post_id == Post.id)
                                 .where(Post.external_id == "b")).one()
    assert [s["post"] for s in copied.sources] == ["a"]
