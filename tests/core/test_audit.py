"""Writes through the API leave who/what/when/before/after in the audit log."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from conftest import T0, seed_catalog
from shequ.core.audit import AuditEntry
from shequ.core.db import transaction
from shequ.core.web import Services


def test_update_records_before_and_after(client: TestClient, services: Services,
                                         admin_headers: dict[str, str]) -> None:
    seed_catalog(client, admin_headers)
    r = client.patch("/api/v1/products/SKU1", json={"stock": 7, "price_fen": 8800},
                     headers=admin_headers)
    assert r.status_code == 200
    with transaction(services.sessions) as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "update")
                          .order_by(AuditEntry.id.desc())).first()
    assert entry is not None
    assert entry.entity == "products"
    assert entry.actor.startswith("apikey:")
    assert entry.at == T0  # the injected clock, not the wall clock
    assert entry.before is not None
    assert entry.after is not None
    assert (entry.before["stock"], entry.after["stock"]) == (10, 7)
    assert (entry.before["price_fen"], entry.after["price_fen"]) == (9900, 8800)


def test_create_is_audited_and_secrets_redacted(client: TestClient, services: Services,
                                                admin_headers: dict[str, str]) -> None:
    r = client.post("/api/v1/users", json={"username": "zhao", "password": "password-1",
                                           "role": "analyst"}, headers=admin_headers)
    assert r.status_code == 201
    with transaction(services.sessions) as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.entity == "users")).one()
    assert entry.action == "create"
    assert entry.after is not None
    assert entry.after["username"] == "zhao"
    assert entry.after["password_hash"] == "***"


def test_failed_write_leaves_no_audit(client: TestClient, services: Services,
                                      admin_headers: dict[str, str]) -> None:
    seed_catalog(client, admin_headers)
    with transaction(services.sessions) as s:
        before = len(s.scalars(select(AuditEntry)).all())
    r = client.post("/api/v1/products", json={"sku": "SKU1", "name": "dup",
                                              "brand_external_id": "b1", "price_fen": 1},
                    headers=admin_headers)
    assert r.status_code == 409
    with transaction(services.sessions) as s:
        assert len(s.scalars(select(AuditEntry)).all()) == before


def test_audit_readable_by_admin(client: TestClient, admin_headers: dict[str, str]) -> None:
    seed_catalog(client, admin_headers)
    rows = client.get("/api/v1/audit?entity=products", headers=admin_headers).json()
    assert len(rows) == 3
    assert {r["action"] for r in rows} == {"create"}
