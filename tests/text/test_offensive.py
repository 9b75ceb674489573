"""Offensive language: the shipped model's probabilities, errors, metadata, thread safety and
its accuracy on a fixed slice of COLD dev (skipped when the data is absent)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from conftest import EVAL_DATA
from script_modules import load_script
from shequ.core.errors import ValidationFailed
from shequ.text.offensive import DEFAULT_MODEL_PATH, default_model, offensive_probability

REPO = Path(__file__).resolve().parents[2]
COLD = EVAL_DATA / "moderation" / "cold"

OFFENSIVE = ["黑鬼都是垃圾，滚出中国", "河南人都是骗子，没一个好东西", "女人就是头发长见识短，蠢货"]
HARMLESS = ["今天天气很好，我们一起去公园散步吧", "这家店的面条很好吃，推荐给大家",
            "谢谢你的帮助，祝你周末愉快"]


def test_probabilities_are_in_range_and_keep_order() -> None:
    texts = [*OFFENSIVE, *HARMLESS, "", "   ", "😀", "a" * 5000]
    values = offensive_probability(texts)
    assert len(values) == len(texts)
    assert all(isinstance(value, float) and 0.0 <= value <= 1.0 for value in values)
    one_by_one = [offensive_probability([text])[0] for text in texts]
    assert values == pytest.approx(one_by_one)
    assert offensive_probability(list(reversed(texts))) == pytest.approx(values[::-1])
    assert offensive_probability([]) == []


def test_obvious_examples() -> None:
    offensive = offensive_probability(OFFENSIVE)
    harmless = offensive_probability(HARMLESS)
    assert all(value > 0.5 for value in offensive), offensive
    assert all(value < 0.5 for value in harmless), harmless
    assert min(offensive) > max(harmless)


@pytest.mark.parametrize("bad", ["一个字符串不是列表", None, 3, [1, 2], ["好", None]])
def test_bad_input_is_refused(bad: object) -> None:
    with pytest.raises(ValidationFailed):
        offensive_probability(bad)  # type: ignore[arg-type]


def test_default_model_is_loaded_once_and_thread_safe() -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        models = list(pool.map(lambda _: default_model(), range(16)))
        results = list(pool.map(lambda _: offensive_probability(OFFENSIVE), range(16)))
    assert all(model is models[0] for model in models)
    assert all(result == results[0] for result in results)


def test_metadata_names_data_licence_and_figures() -> None:
    sidecar = json.loads(DEFAULT_MODEL_PATH.with_suffix(".json").read_text(encoding="utf-8"))
    assert sidecar["training_data_licence"] == "Apache-2.0"
    assert "COLD" in sidecar["training_data"]
    assert sidecar["trained_by"] == "scripts/train_offensive.py"
    assert sidecar["cross_validation"]["accuracy"] > 0.81
    assert sidecar["dev"]["all"]["accuracy"] > 0.81
    assert set(sidecar["config"]) >= {"max_n", "bucket_bits", "c"}


def test_shipped_model_on_fixed_dev_slice() -> None:
    if not (COLD / "dev.csv").is_file():
        pytest.skip(f"evaluation data absent: {COLD / 'dev.csv'} (set SHEQU_EVAL_DATA)")
    script = load_script(REPO / "scripts" / "train_offensive.py")
    rows = script.read_split(COLD / "dev.csv")
    chosen = script.test_slice(len(rows))
    assert chosen.size == 1000
    texts = [rows[i]["TEXT"] for i in chosen]
    truth = np.array([int(rows[i]["label"]) for i in chosen])
    predicted = np.array(offensive_probability(texts)) > 0.5
    accuracy = float(np.mean(predicted == truth))
    measured = default_model().metadata["dev"]["slice"]["accuracy"]
    assert accuracy >= measured - 0.02, (accuracy, measured)
