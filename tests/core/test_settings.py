"""Settings refuse placeholder secrets outside development and derive store URLs."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from shequ.core.settings import Settings


def test_defaults_live_under_home(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert settings.resolved_database_url == f"sqlite:///{tmp_path.resolve()}/shequ.db"
    assert settings.resolved_events_url == f"duckdb:///{tmp_path.resolve()}/events.duckdb"
    assert settings.resolved_queue_url == f"sqlite:///{tmp_path.resolve()}/queue.db"
    assert settings.timezone == "Asia/Shanghai"


@pytest.mark.parametrize("secret", ["change-me", "", "secret"])
def test_placeholder_secret_refused_in_production(secret: str) -> None:
    with pytest.raises(ValidationError, match="SHEQU_SECRET_KEY"):
        Settings(environment="production", secret_key=secret)


def test_short_secret_refused_in_production() -> None:
    with pytest.raises(ValidationError, match="at least 32"):
        Settings(environment="production", secret_key="x" * 20)


def test_real_secret_accepted_in_production() -> None:
    assert Settings(environment="production", secret_key="k" * 40).secret_key == "k" * 40


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SHEQU_HOME", str(tmp_path))
    monkeypatch.setenv("SHEQU_TIMEZONE", "Europe/Paris")
    settings = Settings()
    assert settings.home == tmp_path
    assert settings.zone.key == "Europe/Paris"


def test_unknown_time_zone_named() -> None:
    with pytest.raises(ValidationError, match="unknown time zone"):
        Settings(timezone="Mars/Olympus")
