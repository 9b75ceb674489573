"""Review sentiment: the shipped model's scores, training, save/load, errors, and accuracy
on the hand-written other-domain set and on a fixed slice of the real evaluation rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import EVAL_DATA
from script_modules import load_script
from shequ.core.errors import ValidationFailed
from shequ.text.sentiment import (
    DEFAULT_MODEL_PATH,
    FeatureConfig,
    SentimentModel,
    held_out_split,
    labels_of,
    score,
    train,
)

REPO = Path(__file__).resolve().parents[2]
OTHER_DOMAINS = Path(__file__).parent / "data" / "sentiment_other_domains.jsonl"
# Measured with the shipped model: 0.885 on the hand-written set and 0.8915 on the slice
# below; the floors leave room for a retrained model's noise.
OTHER_DOMAINS_FLOOR = 0.84
EVAL_SLICE_FLOOR = 0.87
EVAL_SLICE_ROWS = 2000
EVAL_SLICE_SEED = 1

POSITIVE = ["质量很好，物流也快，非常满意！", "味道不错，下次还会回购", "服务态度超好，推荐👍"]
NEGATIVE = ["质量太差了，用了两天就坏了", "很失望，不会再买了", "客服态度恶劣，退货还不给退"]


def _small_set() -> tuple[list[str], list[int]]:
    good = ["好", "满意", "喜欢", "推荐", "不错", "开心", "划算", "好用"]
    bad = ["差", "失望", "垃圾", "难用", "退货", "后悔", "坑人", "糟糕"]
    things = ["东西", "衣服", "手机", "酒店", "外卖", "服务"]
    texts: list[str] = []
    labels: list[int] = []
    for thing in things:
        for word in good:
            texts.append(f"这个{thing}真{word}")
            labels.append(1)
        for word in bad:
            texts.append(f"这个{thing}真{word}")
            labels.append(0)
    return texts, labels


def test_score_shape_range_and_order() -> None:
    texts = POSITIVE + NEGATIVE + ["", "   ", "ok"]
    scores = score(texts)
    assert len(scores) == len(texts)
    assert all(isinstance(value, float) and 0.0 <= value <= 1.0 for value in scores)
    # scores do not depend on the batch: the reversed input gives the reversed scores
    assert score(list(reversed(texts))) == pytest.approx(list(reversed(scores)), abs=1e-12)
    assert score([texts[3]]) == pytest.approx([scores[3]], abs=1e-12)
    assert score([]) == []


def test_obvious_sentences() -> None:
    assert all(value > 0.6 for value in score(POSITIVE)), score(POSITIVE)
    assert all(value < 0.4 for value in score(NEGATIVE)), score(NEGATIVE)


def test_traditional_and_full_width_match_simplified() -> None:
    simplified, traditional = score(["质量很好，非常满意", "質量很好，非常滿意"])
    assert traditional == pytest.approx(simplified, abs=1e-12)


def test_shipped_model_files_and_metadata() -> None:
    metadata = json.loads(DEFAULT_MODEL_PATH.with_suffix(".json").read_text(encoding="utf-8"))
    assert "MIT" in metadata["training_data_licence"]
    assert metadata["cross_validation"]["folds"] == 5
    with np.load(DEFAULT_MODEL_PATH, allow_pickle=False) as arrays:
        assert set(arrays.files) == {"buckets", "scale", "weight", "bias"}
        assert all(arrays[name].dtype != object for name in arrays.files)


def test_save_load_round_trip_gives_identical_scores(tmp_path: Path) -> None:
    texts, labels = _small_set()
    model, _ = train(texts, labels, held_out=0.0)
    path = model.save(tmp_path / "model.npz")
    loaded = SentimentModel.load(path)
    probe = [*POSITIVE, *NEGATIVE, *texts[:5]]
    assert np.array_equal(loaded.predict_proba(probe), model.predict_proba(probe))
    assert loaded.config == model.config
    assert loaded.metadata["training_report"] == model.metadata["training_report"]


def test_train_on_a_small_labelled_set() -> None:
    texts, labels = _small_set()
    model, report = train(texts + texts[:3], labels + labels[:3], held_out=0.25, seed=3,
                          config=FeatureConfig(c=10.0))
    assert (report.positives, report.negatives) == (48, 48)  # duplicates counted once
    assert (report.train_rows, report.held_out_rows) == (72, 24)
    assert report.held_out_accuracy is not None
    assert report.held_out_accuracy >= 0.8
    assert report.held_out_macro_f1 is not None
    probabilities = model.predict_proba(["这个包包真喜欢", "这个包包真垃圾"])
    assert probabilities[0] > 0.5 > probabilities[1]


def test_held_out_split_is_stratified_and_reproducible() -> None:
    labels = labels_of(["pos"] * 50 + ["neg"] * 30)
    train_part, test_part = held_out_split(labels, 0.2, seed=5)
    assert (labels[test_part] == 1).sum() == 10
    assert (labels[test_part] == 0).sum() == 6
    assert sorted([*train_part, *test_part]) == list(range(80))
    assert np.array_equal(held_out_split(labels, 0.2, seed=5)[1], test_part)


@pytest.mark.parametrize(("call", "attr"), [
    (lambda: score("一句话"), "texts"),
    (lambda: score(["好", 3]), "texts[1]"),  # type: ignore[list-item]
    (lambda: train(["好", "差"], [1, "maybe"]), "labels[1]"),
    (lambda: train(["好", "差", "行"], [1, 0]), "labels"),
    (lambda: train(["好", "很好", "差"], [1, 1, 0]), "labels"),
    (lambda: train(*_small_set(), held_out=1.0), "held_out"),
    (lambda: FeatureConfig(max_n=9), "max_n"),
    (lambda: FeatureConfig(c=0), "c"),
])
def test_bad_input_names_the_field(call: object, attr: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        call()  # type: ignore[operator]
    assert caught.value.attr == attr


def test_loading_a_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match=r"needs nothing\.npz and nothing\.json"):
        SentimentModel.load(tmp_path / "nothing.npz")


def test_accuracy_on_other_domains() -> None:
    rows = [json.loads(line) for line in OTHER_DOMAINS.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 150
    assert {row["label"] for row in rows} == {"pos", "neg"}
    predicted = np.array(score([row["text"] for row in rows])) >= 0.5
    truth = np.array([row["label"] == "pos" for row in rows])
    assert float(np.mean(predicted == truth)) >= OTHER_DOMAINS_FLOOR


@pytest.fixture(scope="module")
def evaluation() -> object:
    script = load_script(REPO / "scripts" / "eval_sentiment.py")
    if not (EVAL_DATA / script.EVAL_FILE).exists():
        pytest.skip(f"evaluation data absent: {EVAL_DATA / script.EVAL_FILE} "
                    "(set SHEQU_EVAL_DATA)")
    return script


def test_accuracy_on_a_fixed_slice_of_the_evaluation_rows(evaluation: object) -> None:
    rows = evaluation.load_eval_rows(EVAL_DATA)  # type: ignore[attr-defined]
    # the counts the doc states are the counts of this cleaning
    doc = (REPO / "docs" / "sentiment.md").read_text(encoding="utf-8")
    assert f"| evaluated | {rows.counts['final']:,} " in doc
    assert rows.counts["raw"] - rows.counts["empty_dropped"] - rows.counts["overlap_removed"] \
        == rows.counts["final"]
    chosen = evaluation.sample_indices(  # type: ignore[attr-defined]
        len(rows.texts), EVAL_SLICE_ROWS, seed=EVAL_SLICE_SEED)
    predicted = np.array(score([rows.texts[i] for i in chosen])) >= 0.5
    accuracy = float(np.mean(predicted == (rows.labels[chosen] == 1)))
    assert accuracy >= EVAL_SLICE_FLOOR


def test_negation_scope_stays_within_its_text() -> None:
    alone = score(["好吃"])[0]
    after_negation = score(["真的不", "好吃"])[1]
    assert after_negation == pytest.approx(alone, abs=1e-12)
    assert score(["不好吃"])[0] < alone
