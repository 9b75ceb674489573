"""benchmarks/text.py runs its minhash part at a small size and reports a RESULT line."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from conftest import EVAL_DATA

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "text.py"
REVIEWS = EVAL_DATA / "sentiment" / "online_shopping_10_cats" / "online_shopping_10_cats.csv"


def load(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_text_small", BENCHMARK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def result_fields(output: str) -> dict[str, str]:
    line = output.strip().splitlines()[-1]
    assert line.startswith("RESULT ")
    return dict(item.split("=", 1) for item in line.removeprefix("RESULT ").split())


@pytest.mark.parametrize("peer", [False, True], ids=["ours", "with-datasketch"])
def test_minhash_part_finds_the_planted_copies(
    peer: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if not REVIEWS.exists():
        pytest.skip(f"real reviews not found at {REVIEWS}")
    if peer:
        pytest.importorskip("datasketch", reason="datasketch is the benchmark's peer")
    module = load(monkeypatch)
    arguments = ["--quick", "--parts", "minhash", "--posts", "400", "--data", str(EVAL_DATA)]
    module.main(arguments + ([] if peer else ["--no-peer"]))
    fields = result_fields(capsys.readouterr().out)
    assert fields["minhash_posts"] == "400"
    assert float(fields["minhash_recall"]) >= 0.9
    assert float(fields["minhash_index_posts_per_s"]) > 0
    assert ("datasketch_recall" in fields) is peer
    if peer:
        assert float(fields["datasketch_recall"]) >= 0.9
        assert float(fields["minhash_index_speedup"]) > 0


def test_quick_runs_the_quality_part_on_the_small_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    module = load(monkeypatch)
    assert "quality" in module.DEFAULT_PARTS
    quick = module.parse_args(["--quick"])
    assert "quality" in quick.parts
    assert quick.demo_size == "small"
    assert module.parse_args([]).demo_size == "default"
    assert module.parse_args(["--quick", "--demo-size", "default"]).demo_size == "default"


def test_missing_data_is_reported_not_crashed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module = load(monkeypatch)
    module.main(["--quick", "--parts", "normalise,minhash", "--data", str(tmp_path)])
    fields = result_fields(capsys.readouterr().out)
    assert fields["normalise"] == "unmeasured"
    assert fields["minhash"] == "unmeasured"
