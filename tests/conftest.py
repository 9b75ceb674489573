"""Shared fixtures: a fresh SQLite-backed app per test, real PostgreSQL where it matters."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from shequ.core import auth
from shequ.core.clock import FixedClock
from shequ.core.db import Base, transaction
from shequ.core.settings import Settings
from shequ.core.web import Services
from shequ.entrypoints.app import create_app
from shequ.entrypoints.bootstrap import bootstrap, close
from shequ.entrypoints.registry import load_models

PG_ADMIN_URL = os.environ.get("SHEQU_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("SHEQU_TEST_REDIS", "redis://127.0.0.1:6379/0")
EVAL_DATA = Path(os.environ.get("SHEQU_EVAL_DATA",
                                Path(__file__).resolve().parents[2] / "shared" / "data"))
T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)

load_models()


def _pg_available() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3) as conn:
            conn.execute("select 1")
    except Exception as exc:
        return f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}"
    return None


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A PostgreSQL database of this test run's own, dropped afterwards."""
    reason = _pg_available()
    if reason:
        pytest.skip(reason)
    import psycopg

    name = f"shequ_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


def _wire(tmp_path: Path, clock: FixedClock, database_url: str | None) -> Services:
    settings = Settings(home=tmp_path / "home", database_url=database_url,
                        environment="development")
    wired = bootstrap(settings, clock=clock)
    engine = wired.extras["engine"]
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    return wired


@pytest.fixture
def services(tmp_path: Path, clock: FixedClock) -> Iterator[Services]:
    """Real wiring on a fresh SQLite file and DuckDB file under ``tmp_path``."""
    wired = _wire(tmp_path, clock, None)
    yield wired
    close(wired)


@pytest.fixture
def pg_services(tmp_path: Path, clock: FixedClock, pg_server_url: str) -> Iterator[Services]:
    """Real wiring on this run's PostgreSQL database (tables recreated per test)."""
    wired = _wire(tmp_path, clock, pg_server_url.replace("postgresql://",
                                                          "postgresql+psycopg://"))
    yield wired
    close(wired)


@pytest.fixture
def session(services: Services) -> Iterator[Session]:
    with transaction(services.sessions) as s:
        yield s


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services=services)) as c:
        yield c


def make_key(services: Services, scopes: list[str], brand_ids: list[int] | None = None) -> str:
    """Issue an API key straight through the service and return its secret."""
    with transaction(services.sessions) as s:
        return auth.create_api_key(s, services.clock, name="test", scopes=scopes,
                                   brand_ids=brand_ids).secret


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def admin_headers(services: Services) -> dict[str, str]:
    """Headers of a key holding every permission."""
    from shequ.core.permissions import PERMISSIONS

    return bearer(make_key(services, sorted(PERMISSIONS)))


def seed_catalog(client: TestClient, headers: dict[str, Any]) -> None:
    """Two brands, one category, three products: the smallest useful catalog."""
    for key, name in (("b1", "花知晓"), ("b2", "小米")):
        assert client.post("/api/v1/brands", json={"external_id": key, "name": name},
                           headers=headers).status_code == 201
    assert client.post("/api/v1/categories", json={"external_id": "cat1", "name": "面霜"},
                       headers=headers).status_code == 201
    for sku, brand, price, stock in (("SKU1", "b1", 9900, 10), ("SKU2", "b1", 19900, 5),
                                     ("SKU3", "b2", 299900, 3)):
        body = {"sku": sku, "name": f"商品{sku}", "brand_external_id": brand,
                "category_external_id": "cat1", "price_fen": price, "stock": stock}
        assert client.post("/api/v1/products", json=body, headers=headers).status_code == 201
