"""Users, passwords, throttling and API keys."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from conftest import bearer, make_key
from shequ.core import auth
from shequ.core.clock import FixedClock
from shequ.core.db import transaction
from shequ.core.errors import NotAuthenticated, Throttled, ValidationFailed
from shequ.core.web import Services


def test_password_is_argon2_hashed(session: Session, clock: FixedClock) -> None:
    auth.create_user(session, clock, username="li.na", password="s3cret-pass", role="analyst")
    stored = session.scalar(select(auth.User.password_hash))
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert "s3cret-pass" not in stored
    assert auth.authenticate(session, clock, "li.na", "s3cret-pass").username == "li.na"


def test_partner_user_needs_a_brand(session: Session, clock: FixedClock) -> None:
    with pytest.raises(ValidationFailed) as info:
        auth.create_user(session, clock, username="partner1", password="long-enough",
                         role="partner")
    assert info.value.attr == "brand_ids"


def test_login_throttled_after_five_failures(services: Services, clock: FixedClock) -> None:
    with transaction(services.sessions) as s:
        auth.create_user(s, clock, username="wang", password="right-pass", role="operator")
    for _ in range(5):
        with pytest.raises(NotAuthenticated), transaction(services.sessions) as s:
            auth.authenticate(s, clock, "wang", "wrong-pass")
    with pytest.raises(Throttled), transaction(services.sessions) as s:
        auth.authenticate(s, clock, "wang", "right-pass")
    clock.advance(timedelta(minutes=16))
    with transaction(services.sessions) as s:
        assert auth.authenticate(s, clock, "wang", "right-pass").username == "wang"


def test_api_key_shown_once_stored_hashed(session: Session, clock: FixedClock) -> None:
    issued = auth.create_api_key(session, clock, name="app", scopes=["events:write"])
    row = session.scalar(select(auth.ApiKey))
    assert row is not None
    assert issued.secret.startswith(f"shq_{row.prefix}_")
    assert issued.secret.split("_", 2)[2] not in (row.key_hash, row.prefix)
    principal = auth.principal_for_key(session, issued.secret)
    assert principal.permissions == frozenset({"events:write"})


def test_unknown_scope_rejected(session: Session, clock: FixedClock) -> None:
    with pytest.raises(ValidationFailed, match="unknown scope"):
        auth.create_api_key(session, clock, name="x", scopes=["everything"])


def test_partner_key_cannot_hold_write_scopes(session: Session, clock: FixedClock) -> None:
    with pytest.raises(ValidationFailed, match="partner keys cannot"):
        auth.create_api_key(session, clock, name="p", scopes=["catalog:write"], brand_ids=[1])


def test_revoked_key_refused(client: TestClient, services: Services,
                             admin_headers: dict[str, str]) -> None:
    key = make_key(services, ["catalog:read"])
    assert client.get("/api/v1/brands", headers=bearer(key)).status_code == 200
    key_id = client.get("/api/v1/api-keys", headers=admin_headers).json()[-1]["id"]
    assert client.delete(f"/api/v1/api-keys/{key_id}", headers=admin_headers).status_code == 204
    refused = client.get("/api/v1/brands", headers=bearer(key))
    assert refused.status_code == 401
    assert refused.json()["code"] == "revoked_api_key"


def test_wrong_secret_refused(client: TestClient, services: Services) -> None:
    key = make_key(services, ["catalog:read"])
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    r = client.get("/api/v1/brands", headers=bearer(forged))
    assert r.status_code == 401
    assert r.json() == {"type": "client_error", "code": "invalid_api_key",
                        "detail": "unknown or wrong API key", "attr": None}


def test_no_credentials(client: TestClient) -> None:
    r = client.get("/api/v1/products")
    assert r.status_code == 401
    assert r.json()["code"] == "not_authenticated"


def test_operator_cannot_do_admin_actions(client: TestClient, services: Services) -> None:
    with transaction(services.sessions) as s:
        auth.create_user(s, services.clock, username="op1", password="operator-pass",
                         role="operator")
    # Log in the way the console does: a session cookie plus the CSRF token it carries.
    with transaction(services.sessions) as s:
        user = auth.authenticate(s, services.clock, "op1", "operator-pass")
    principal = auth.user_principal(user)
    assert principal.can("catalog:write")
    assert not principal.can("users:admin")
    operator_key = make_key(services, sorted(principal.permissions))
    r = client.post("/api/v1/api-keys", json={"name": "x", "scopes": ["events:write"]},
                    headers=bearer(operator_key))
    assert r.status_code == 403
    assert r.json()["code"] == "permission_denied"
    r = client.post("/api/v1/users", json={"username": "evil", "password": "password1",
                                           "role": "admin"}, headers=bearer(operator_key))
    assert r.status_code == 403


def test_a_key_revoked_elsewhere_is_refused_once_its_verification_is_stale(
        client: TestClient, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    # Another process revokes the key straight in the database: this process keeps its
    # verification for at most KEY_CACHE_SECONDS.
    key = make_key(services, ["catalog:read"])
    assert client.get("/api/v1/brands", headers=bearer(key)).status_code == 200
    with transaction(services.sessions) as s:
        s.execute(update(auth.ApiKey).values(revoked_at=services.clock.now()))
    assert client.get("/api/v1/brands", headers=bearer(key)).status_code == 200
    monkeypatch.setattr(auth, "KEY_CACHE_SECONDS", 0.0)
    refused = client.get("/api/v1/brands", headers=bearer(key))
    assert (refused.status_code, refused.json()["code"]) == (401, "revoked_api_key")
