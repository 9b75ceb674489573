"""Catalog over HTTP: create, read, brand scoping, clear errors."""

from __future__ import annotations

from fastapi.testclient import TestClient

from conftest import bearer, make_key, seed_catalog
from shequ.core.web import Services


def test_product_round_trip(client: TestClient, admin_headers: dict[str, str]) -> None:
    seed_catalog(client, admin_headers)
    got = client.get("/api/v1/products/SKU2", headers=admin_headers).json()
    assert got["price_fen"] == 19900
    assert got["brand_external_id"] == "b1"
    assert client.get("/api/v1/products", headers=admin_headers).json()["total"] == 3


def test_bad_product_names_field(client: TestClient, admin_headers: dict[str, str]) -> None:
    seed_catalog(client, admin_headers)
    body = {"sku": "X1", "name": "坏价格", "brand_external_id": "b1", "price_fen": -5}
    r = client.post("/api/v1/products", json=body, headers=admin_headers)
    assert r.status_code == 422
    assert r.json()["type"] == "validation_error"
    assert r.json()["attr"] == "price_fen"


def test_partner_key_cannot_read_other_brand(client: TestClient, services: Services,
                                             admin_headers: dict[str, str]) -> None:
    seed_catalog(client, admin_headers)
    brands = {b["external_id"]: b["id"] for b in
              client.get("/api/v1/brands", headers=admin_headers).json()}
    partner = bearer(make_key(services, ["catalog:read"], brand_ids=[brands["b1"]]))
    assert client.get("/api/v1/products/SKU1", headers=partner).status_code == 200
    other = client.get("/api/v1/products/SKU3", headers=partner)
    assert other.status_code == 404
    assert other.json()["code"] == "product_not_found"
    listed = client.get("/api/v1/products", headers=partner).json()
    assert sorted(p["sku"] for p in listed["items"]) == ["SKU1", "SKU2"]
    seen = client.get("/api/v1/brands", headers=partner).json()
    assert [b["external_id"] for b in seen] == ["b1"]


def test_partner_key_cannot_write(client: TestClient, services: Services,
                                  admin_headers: dict[str, str]) -> None:
    seed_catalog(client, admin_headers)
    partner = bearer(make_key(services, ["catalog:read"], brand_ids=[1]))
    r = client.patch("/api/v1/products/SKU1", json={"stock": 0}, headers=partner)
    assert r.status_code == 403
    assert r.json()["code"] == "permission_denied"


def test_bad_yuan_price_names_price(client: TestClient, admin_headers: dict[str, str]) -> None:
    seed_catalog(client, admin_headers)
    body = {"sku": "X2", "name": "坏价格", "brand_external_id": "b1", "price": "12.345"}
    r = client.post("/api/v1/products", json=body, headers=admin_headers)
    assert r.status_code == 422
    assert (r.json()["attr"], r.json()["detail"]) == ("price", "more than two decimals: '12.345'")
