"""The moderation benchmark's lexicon and classifier parts run on a small slice of real reviews."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from conftest import EVAL_DATA

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "moderation.py"
REVIEWS = EVAL_DATA / "sentiment" / "online_shopping_10_cats" / "online_shopping_10_cats.csv"


def test_lexicon_and_classifier_parts_report_their_keys(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    if not REVIEWS.exists():
        pytest.skip(f"{REVIEWS} absent: the benchmark needs the shared review data")
    spec = importlib.util.spec_from_file_location("bench_moderation_test", BENCHMARK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)

    module.main(["--quick", "--parts", "lexicon,classifier", "--rows", "1500",
                 "--loop-rows", "20", "--classifier-rows", "300", "--data", str(EVAL_DATA)])

    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("RESULT ")
    fields = dict(item.split("=", 1) for item in last.removeprefix("RESULT ").split())
    assert fields["lexicon_texts"] == "1500"
    assert fields["classifier_texts"] == "300"
    for key in ("lexicon_texts_per_s", "lexicon_single_texts_per_s",
                "pyahocorasick_texts_per_s", "loop_texts_per_s", "offensive_texts_per_s",
                "contacts_texts_per_s"):
        assert float(fields[key]) > 0, key
    # ours/peer ratios are the rates divided (rounded as printed)
    assert float(fields["lexicon_vs_pyahocorasick"]) == pytest.approx(
        float(fields["lexicon_texts_per_s"]) / float(fields["pyahocorasick_texts_per_s"]),
        rel=0.02)
    assert float(fields["lexicon_vs_loop"]) > 1  # one automaton pass beats 19k `in` checks
    for key in ("lexicon_flag_rate", "pyahocorasick_flag_rate", "loop_flag_rate",
                "offensive_flag_rate", "contacts_flag_rate"):
        assert 0 <= float(fields[key]) <= 1, key
    assert float(fields["lexicon_flag_rate"]) < 0.05  # clean reviews are rarely flagged
    # normalisation finds disguised terms the raw automaton misses
    assert float(fields["lexicon_evasion_recall"]) >= 0.95
    assert float(fields["lexicon_evasion_recall"]) > float(fields["pyahocorasick_evasion_recall"])
