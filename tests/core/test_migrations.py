"""Alembic ``upgrade head`` runs on SQLite and PostgreSQL, and matches the models."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from shequ.core import migrate
from shequ.core.db import Base, make_engine


def _upgrade_and_check(url: str) -> set[str]:
    migrate.upgrade(url)
    migrate.check(url)  # raises when the models hold changes no migration contains
    engine = make_engine(url)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    return tables


def test_sqlite_upgrade_head_matches_models(tmp_path: Path) -> None:
    tables = _upgrade_and_check(f"sqlite:///{tmp_path}/m.db")
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


@pytest.mark.postgres
def test_postgres_upgrade_head_matches_models(pg_server_url: str) -> None:
    url = pg_server_url.replace("postgresql://", "postgresql+psycopg://")
    engine = make_engine(url)
    with engine.begin() as conn:  # the session database is shared: start from nothing
        Base.metadata.drop_all(conn)
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    engine.dispose()
    tables = _upgrade_and_check(url)
    assert set(Base.metadata.tables) <= tables
    migrate.upgrade(url)  # a second run is a no-op
