"""The commerce benchmark on a few hundred operations: every operation kind runs, the
independent check finds no violation, and it does find one planted by hand."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import text

from conftest import PG_ADMIN_URL, _pg_available
from shequ.core.db import transaction

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "commerce.py"


def _load(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    reason = _pg_available()
    if reason:
        pytest.skip(reason)
    monkeypatch.setenv("SHEQU_BENCH_PG", PG_ADMIN_URL)
    spec = importlib.util.spec_from_file_location("bench_commerce_test", BENCHMARK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_a_small_round_reports_every_kind_and_no_violation(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    module = _load(monkeypatch)
    module.main(["--quick", "--ops", "400", "--customers", "300", "--workers", "16"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("RESULT ")
    fields = dict(item.split("=", 1) for item in last.removeprefix("RESULT ").split())
    assert fields["ops"] == "400"
    assert fields["violations"] == "0"
    assert fields["errors"] == "0"
    assert float(fields["ops_per_s"]) > 0
    for kind in module.KINDS:  # every kind ran: answered or refused
        assert int(fields[f"{kind}_ok"]) + int(fields[f"{kind}_refused"]) > 0, kind
    assert int(fields["redeem_ok"]) >= 1


def test_the_check_finds_a_planted_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    module = _load(monkeypatch)
    args = module.parse(["--customers", "30"])
    with module.scratch_database() as wired:
        shop = module.seed(wired, args)
        with transaction(wired.sessions) as session:
            assert sum(module.count_violations(session, module.POINTS_CHECKS).values()) == 0
            # a balance bumped behind the ledger's back disagrees with entries and lots
            session.execute(text("UPDATE points_accounts SET balance = balance + 1 "
                                 "WHERE customer_id IS NOT NULL AND balance > 0"))
            found = module.count_violations(session, module.POINTS_CHECKS)
        assert found["balance_not_entries"] >= 1
        assert found["balance_not_lots"] >= 1
        with transaction(wired.sessions) as session:
            session.execute(text("UPDATE naive_accounts SET balance = balance - 1 "
                                 "WHERE key = :k"), {"k": shop.hot_accounts[0]})
            assert module.count_violations(session, module.NAIVE_CHECKS)[
                "naive_lost_updates"] == 1
