"""The CLI as a user drives it: migrate, users, keys, imports, with --home."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from shequ.core import auth
from shequ.core.db import make_engine, make_session_factory, transaction
from shequ.entrypoints.cli import app

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    result = runner.invoke(app, ["migrate", "--home", str(home)])
    assert result.exit_code == 0, result.output
    return home


def _principal_of(home: Path, key: str) -> frozenset[str]:
    engine = make_engine(f"sqlite:///{home.resolve()}/shequ.db")
    with transaction(make_session_factory(engine)) as s:
        permissions = auth.principal_for_key(s, key).permissions
    engine.dispose()
    return permissions


def test_apikey_create_prints_key_last(home: Path) -> None:
    result = runner.invoke(app, ["apikey", "create", "--home", str(home), "--name", "shop",
                                 "--scope", "events:write", "--scope", "catalog:read"])
    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[-1]
    assert key.startswith("shq_")
    assert _principal_of(home, key) == frozenset({"events:write", "catalog:read"})


def test_apikey_unknown_scope_is_a_clear_error(home: Path) -> None:
    result = runner.invoke(app, ["apikey", "create", "--home", str(home), "--name", "x",
                                 "--scope", "root"])
    assert result.exit_code == 1
    assert "unknown scope(s): root" in result.stderr


def test_home_from_environment(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHEQU_HOME", str(home))
    result = runner.invoke(app, ["user", "create", "--username", "ops1", "--role", "operator",
                                 "--password", "long-password"])
    assert result.exit_code == 0, result.output
    assert "created user ops1 (operator)" in result.stdout


def test_import_products_all_or_nothing(home: Path, tmp_path: Path) -> None:
    brands = tmp_path / "brands.csv"
    brands.write_text("external_id,name\nb1,花知晓\n", encoding="utf-8")
    assert runner.invoke(app, ["import", "brands", str(brands), "--home", str(home)]).exit_code == 0
    products = tmp_path / "products.csv"
    products.write_text(
        "sku,name,brand_external_id,price,stock\n"
        "P1,面霜,b1,99.00,10\n"
        "P2,精华,b9,129.00,5\n"
        "P3,口红,b1,abc,5\n", encoding="utf-8")
    result = runner.invoke(app, ["import", "products", str(products), "--home", str(home)])
    assert result.exit_code == 1
    assert "line 3: brand_external_id: unknown brand 'b9'" in result.stderr
    assert "line 4: price" in result.stderr
    assert '"inserted": 0' in result.stdout
    kept = runner.invoke(app, ["import", "products", str(products), "--skip-invalid",
                               "--home", str(home)])
    assert kept.exit_code == 0
    assert '"inserted": 1' in kept.stdout
    again = runner.invoke(app, ["import", "products", str(products), "--skip-invalid",
                                "--home", str(home)])
    assert '"inserted": 0' in again.stdout
    assert '"updated": 0' in again.stdout
    assert '"unchanged": 1' in again.stdout


def test_import_unknown_kind(home: Path, tmp_path: Path) -> None:
    f = tmp_path / "x.csv"
    f.write_text("a\n1\n")
    result = runner.invoke(app, ["import", "spaceships", str(f), "--home", str(home)])
    assert result.exit_code == 2
    assert "kind must be one of events" in result.stderr


def test_import_taobao_log_twice(home: Path) -> None:
    from conftest import EVAL_DATA

    log = EVAL_DATA / "events" / "taobao_userbehavior" / "UserBehavior_head84k.csv"
    if not log.is_file():
        pytest.skip(f"Taobao log not found at {log} (set SHEQU_EVAL_DATA)")
    first = runner.invoke(app, ["import", "events", str(log), "--format", "taobao",
                                "--home", str(home)])
    assert first.exit_code == 0, first.output
    assert '"accepted": 84475' in first.stdout
    again = runner.invoke(app, ["import", "events", str(log), "--format", "taobao",
                                "--home", str(home)])
    assert '"accepted": 0' in again.stdout
    assert '"duplicates": 84475' in again.stdout


def test_import_events_jsonl_reports_bad_lines(home: Path, tmp_path: Path) -> None:
    f = tmp_path / "events.jsonl"
    good = ('{"event_id": "e1", "name": "page_view", "timestamp": "2026-11-20T08:00:00+08:00", '
            '"customer_id": "c1"}')
    bad = '{"event_id": "e2", "name": "page_view", "timestamp": "yesterday", "customer_id": "c1"}'
    f.write_text(good + "\n" + bad + "\n", encoding="utf-8")
    result = runner.invoke(app, ["import", "events", str(f), "--home", str(home)])
    assert '"accepted": 1' in result.stdout
    assert "line 2: timestamp" in result.stderr
