"""Benchmarks stay runnable: each imports cleanly and offers --quick."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))


def load_benchmark(path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_imports_and_takes_quick(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = load_benchmark(path, monkeypatch)
    assert callable(getattr(module, "main", None))
    assert "--quick" in path.read_text(encoding="utf-8")


def test_customers_fit_part_runs_without_the_lifetimes_peer(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = next(p for p in BENCHMARKS if p.name == "customers.py")
    module = load_benchmark(path, monkeypatch)

    module.main(["--quick", "--parts", "fit", "--no-peer", "--customers", "5000"])

    result = capsys.readouterr().out.strip().splitlines()[-1]
    fields = dict(item.split("=", 1) for item in result.removeprefix("RESULT ").split())
    assert result.startswith("RESULT ")
    assert fields["fit_customers"] == "5000"
    assert fields["fit_speedup"] == "unmeasured"
    assert float(fields["fit_ours_s"]) > 0
