"""A small community whose needs insight is known (tests of the needs report)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

Headers = dict[str, str]
INGREDIENT_TEXT = "成分很干净，用着很安心"
LOGISTICS_TEXT = "物流太慢了，等了一个多星期，非常失望"
EFFECT_TEXT = "音质很好，非常满意"
FAST_TEXT = "物流很快，非常满意"
POST_TITLE, POST_BODY = "面霜配料表分享", "看了配料表，烟酰胺排在前面，非常满意"


def at(day: str, hour: int = 4) -> str:
    """An ISO instant at ``hour`` UTC of ``day`` (12:00 in Shanghai)."""
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC).isoformat()


def _post(client: TestClient, headers: Headers, path: str, body: dict[str, Any]) -> None:
    got = client.post(path, json=body, headers=headers)
    assert got.status_code == 201, got.text


def build_community(client: TestClient, headers: Headers) -> dict[str, int]:
    """Q3 2026: 10 ingredient reviews (Sep, b1 face cream), 5 angry logistics reviews and 5
    happy sound reviews (Jul, b2 earphones), one ingredient post by c1. Q2: 10 happy
    logistics reviews (b2). Returns brand ids by key."""
    for key, name in (("b1", "花知晓"), ("b2", "声悦")):
        _post(client, headers, "/api/v1/brands", {"external_id": key, "name": name})
    _post(client, headers, "/api/v1/categories", {"external_id": "beauty", "name": "美妆"})
    _post(client, headers, "/api/v1/categories", {"external_id": "cream", "name": "面霜",
                                                  "parent_external_id": "beauty"})
    _post(client, headers, "/api/v1/categories", {"external_id": "digital", "name": "数码"})
    for sku, brand, cat, name in (("SKU1", "b1", "cream", "修护面霜"),
                                  ("SKU2", "b2", "digital", "降噪耳机")):
        _post(client, headers, "/api/v1/products", {
            "sku": sku, "name": name, "brand_external_id": brand, "category_external_id": cat,
            "price_fen": 9900, "stock": 100})
    for n in range(1, 21):
        _post(client, headers, "/api/v1/customers", {"external_id": f"c{n}"})

    def review(key: str, customer: int, sku: str, rating: int, text: str, day: str) -> None:
        _post(client, headers, "/api/v1/reviews", {
            "external_id": key, "customer_external_id": f"c{customer}", "sku": sku,
            "rating": rating, "text": text, "created_at": at(day)})

    for n in range(1, 11):
        review(f"ing{n}", n, "SKU1", 5, INGREDIENT_TEXT, f"2026-09-{10 + n:02d}")
    for n in range(11, 16):
        review(f"log{n}", n, "SKU2", 1, LOGISTICS_TEXT, f"2026-07-{n:02d}")
    for n in range(16, 21):
        review(f"eff{n}", n, "SKU2", 5, EFFECT_TEXT, f"2026-07-{n:02d}")
    for n in range(11, 21):
        review(f"q2log{n}", n, "SKU2", 5, FAST_TEXT, f"2026-04-{n:02d}")
    _post(client, headers, "/api/v1/posts", {
        "external_id": "p1", "author_customer_external_id": "c1", "title": POST_TITLE,
        "body": POST_BODY, "content_type": "knowledge", "sku": "SKU1",
        "created_at": at("2026-09-25")})
    return {b["external_id"]: b["id"] for b in client.get("/api/v1/brands",
                                                          headers=headers).json()}
