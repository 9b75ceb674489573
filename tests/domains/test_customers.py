"""Customers over HTTP and through the service: create, read, devices, merge at login."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from conftest import T0, bearer, make_key
from shequ.core.db import transaction
from shequ.core.errors import Conflict
from shequ.core.web import Services
from shequ.domains.customers import service
from shequ.domains.customers.schemas import CustomerIn

ALICE = {"external_id": "c1", "nickname": "小红", "gender": "女", "city": "上海",
         "birth_year": 1995, "phone": "+86 138-0013-8000",
         "registered_at": "2026-01-02T10:00:00+08:00", "acquisition_channel": "douyin"}


def test_customer_round_trip(client: TestClient, admin_headers: dict[str, str]) -> None:
    created = client.post("/api/v1/customers", json=ALICE, headers=admin_headers)
    assert created.status_code == 201
    body = created.json()
    assert (body["gender"], body["phone"]) == ("f", "13800138000")
    assert body["registered_at"] == "2026-01-02T02:00:00Z"
    assert body["created_at"] == "2026-11-20T08:00:00Z"
    got = client.get("/api/v1/customers/c1", headers=admin_headers).json()
    assert got["nickname"] == "小红"
    assert (got["identities"], got["devices"]) == ([], [])
    listed = client.get("/api/v1/customers?city=上海", headers=admin_headers).json()
    assert [c["external_id"] for c in listed["items"]] == ["c1"]
    assert client.get("/api/v1/customers?city=北京", headers=admin_headers).json()["total"] == 0


def test_registered_at_defaults_to_now(client: TestClient,
                                       admin_headers: dict[str, str]) -> None:
    body = client.post("/api/v1/customers", json={"external_id": "c2"},
                       headers=admin_headers).json()
    assert body["registered_at"] == "2026-11-20T08:00:00Z"


def test_duplicate_customer_conflicts(client: TestClient, admin_headers: dict[str, str]) -> None:
    assert client.post("/api/v1/customers", json=ALICE, headers=admin_headers).status_code == 201
    again = client.post("/api/v1/customers", json=ALICE, headers=admin_headers)
    assert again.status_code == 409
    assert (again.json()["code"], again.json()["attr"]) == ("customer_exists", "external_id")


@pytest.mark.parametrize("phone", ["12800138000", "1380013800", "23800138000", "abc"])
def test_bad_phone_names_field(client: TestClient, admin_headers: dict[str, str],
                               phone: str) -> None:
    r = client.post("/api/v1/customers", json={"external_id": "c3", "phone": phone},
                    headers=admin_headers)
    assert r.status_code == 422
    assert r.json()["attr"] == "phone"


def test_unknown_customer_is_404(client: TestClient, admin_headers: dict[str, str]) -> None:
    r = client.get("/api/v1/customers/nobody", headers=admin_headers)
    assert r.status_code == 404
    assert r.json()["code"] == "customer_not_found"


def test_identify_merges_and_is_idempotent(client: TestClient,
                                           admin_headers: dict[str, str],
                                           services: Services) -> None:
    for key in ("c1", "c2"):
        client.post("/api/v1/customers", json={"external_id": key}, headers=admin_headers)
    first = client.post("/api/v1/customers/c1/identify", json={"anonymous_id": "anon-42"},
                        headers=admin_headers)
    assert first.status_code == 200
    assert first.json() == {"kind": "anonymous_id", "value": "anon-42",
                            "customer_external_id": "c1", "linked_at": "2026-11-20T08:00:00Z"}
    repeat = client.post("/api/v1/customers/c1/identify", json={"anonymous_id": "anon-42"},
                         headers=admin_headers)
    assert repeat.json() == first.json()
    taken = client.post("/api/v1/customers/c2/identify", json={"anonymous_id": "anon-42"},
                        headers=admin_headers)
    assert taken.status_code == 409
    assert (taken.json()["code"], taken.json()["attr"]) == ("anonymous_id_taken", "anonymous_id")
    detail = client.get("/api/v1/customers/c1", headers=admin_headers).json()
    assert [(i["kind"], i["value"]) for i in detail["identities"]] == [("anonymous_id", "anon-42")]
    sdk_id = client.post("/api/v1/customers/c2/identify", json={"anonymous_id": "Zm9v/YmFy+=="},
                         headers=admin_headers)
    assert sdk_id.json()["value"] == "Zm9v/YmFy+=="
    with transaction(services.sessions) as session:
        assert service.resolve_customer(session, "Zm9v/YmFy+==") == "c2"
        assert service.resolve_customer(session, "anon-42") == "c1"
        assert service.resolve_customer(session, "anon-43") is None


def test_identify_unknown_customer_is_404(client: TestClient,
                                          admin_headers: dict[str, str]) -> None:
    r = client.post("/api/v1/customers/ghost/identify", json={"anonymous_id": "a1"},
                    headers=admin_headers)
    assert r.status_code == 404
    assert r.json()["code"] == "customer_not_found"


def test_external_identity_via_service(services: Services) -> None:
    with transaction(services.sessions) as session:
        service.create_customer(session, services.clock, CustomerIn(external_id="c1"))
        service.link_identity(session, services.clock, "c1", "external", "crm:123")
        service.create_customer(session, services.clock, CustomerIn(external_id="c2"))
        with pytest.raises(Conflict) as caught:
            service.link_identity(session, services.clock, "c2", "external", "crm:123")
        assert caught.value.code == "external_taken"
        kinds = [(i.kind, i.value) for i in service.get_customer(session, "c1").identities]
        assert kinds == [("external", "crm:123")]


def test_device_registration(client: TestClient, admin_headers: dict[str, str]) -> None:
    client.post("/api/v1/customers", json={"external_id": "c1"}, headers=admin_headers)
    client.post("/api/v1/customers", json={"external_id": "c2"}, headers=admin_headers)
    anon = client.post("/api/v1/devices", json={"external_id": "fp-1", "kind": "ios"},
                       headers=admin_headers)
    assert anon.status_code == 201
    assert anon.json()["customer_external_id"] is None
    login = client.post("/api/v1/devices", json={"external_id": "fp-1", "kind": "ios",
                                                 "customer_external_id": "c1"},
                        headers=admin_headers)
    assert login.status_code == 200
    assert login.json()["customer_external_id"] == "c1"
    assert login.json()["first_seen_at"] == "2026-11-20T08:00:00Z"
    other = client.post("/api/v1/devices", json={"external_id": "fp-1", "kind": "ios",
                                                 "customer_external_id": "c2"},
                        headers=admin_headers)
    assert (other.status_code, other.json()["code"]) == (409, "device_taken")
    devices = client.get("/api/v1/customers/c1", headers=admin_headers).json()["devices"]
    assert [(d["external_id"], d["kind"]) for d in devices] == [("fp-1", "ios")]


def test_device_for_unknown_customer(client: TestClient, admin_headers: dict[str, str]) -> None:
    r = client.post("/api/v1/devices", json={"external_id": "fp-9", "kind": "pc",
                                             "customer_external_id": "ghost"},
                    headers=admin_headers)
    assert (r.status_code, r.json()["attr"]) == (404, "customer_external_id")


def test_customers_need_permissions(client: TestClient, services: Services) -> None:
    reader = bearer(make_key(services, ["customers:read"]))
    assert client.get("/api/v1/customers", headers=reader).status_code == 200
    r = client.post("/api/v1/customers", json={"external_id": "c1"}, headers=reader)
    assert (r.status_code, r.json()["code"]) == (403, "permission_denied")
    orders_only = bearer(make_key(services, ["orders:read"]))
    assert client.get("/api/v1/customers", headers=orders_only).status_code == 403


def test_partner_keys_cannot_hold_customer_scopes(client: TestClient,
                                                  admin_headers: dict[str, str]) -> None:
    r = client.post("/api/v1/api-keys", json={"name": "p", "scopes": ["customers:read"],
                                              "brand_ids": [1]}, headers=admin_headers)
    assert (r.status_code, r.json()["code"]) == (422, "scope_not_for_partner")


def test_bulk_load(services: Services) -> None:
    at = datetime(2025, 6, 1, tzinfo=UTC)
    customers = [{"external_id": f"u{i}", "nickname": f"用户{i}", "gender": "m", "city": "杭州",
                  "birth_year": 1990, "registered_at": at, "acquisition_channel": "wechat"}
                 for i in range(3)]
    devices = [{"external_id": "d0", "customer_external_id": "u0", "kind": "android",
                "first_seen_at": at},
               {"external_id": "d1", "customer_external_id": None, "kind": "pc",
                "first_seen_at": T0}]
    with transaction(services.sessions) as session:
        service.bulk_load(session, customers, devices)
    with transaction(services.sessions) as session:
        assert service.list_customers(session).total == 3
        detail = service.get_customer(session, "u0")
        assert detail.created_at == at
        assert [d.external_id for d in detail.devices] == ["d0"]
        assert service.registered_between(session, at, T0) == 3
