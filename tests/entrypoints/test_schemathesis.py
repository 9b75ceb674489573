"""Property-based API fuzzing from ``/openapi.json``: no input may produce a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from conftest import T0, bearer, make_key
from shequ.core.clock import FixedClock
from shequ.core.db import Base
from shequ.core.permissions import PERMISSIONS
from shequ.core.settings import Settings
from shequ.entrypoints.app import create_app
from shequ.entrypoints.bootstrap import bootstrap, close

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, str]]:
    home: Path = tmp_path_factory.mktemp("fuzz")
    wired = bootstrap(Settings(home=home, environment="development"), clock=FixedClock(T0))
    Base.metadata.create_all(wired.extras["engine"])
    key = make_key(wired, sorted(PERMISSIONS))
    yield create_app(services=wired), key
    close(wired)


@pytest.fixture(scope="module")
def api_schema(fuzz_target: tuple[object, str]) -> schemathesis.BaseSchema:
    app, _key = fuzz_target
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case, fuzz_target: tuple[object, str]) -> None:
    _app, key = fuzz_target
    response = case.call(headers=bearer(key))
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}")
