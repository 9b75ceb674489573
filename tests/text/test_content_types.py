"""Content types: the labelled data, the shipped model and its held-out accuracy."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from script_modules import REPO, load_script
from shequ.core.errors import ValidationFailed
from shequ.text import content_types as ct
from shequ.text.content_types import LABELS, ContentTypeModel, classify, classify_proba

train_script = load_script(REPO / "scripts" / "train_content_types.py")
DATA = REPO / "data" / "content_types" / "labelled.jsonl"
MARGIN = 0.03  # allowed drop below the recorded held-out accuracy (floating-point ties etc.)

OBVIOUS = [
    (("烟酰胺和维C能一起用吗？一次讲清楚",
      "很多人以为两者会反应生成烟酸。其实现在的稳定配方常温下几乎不会转化，"
      "真正要注意的是刺激性，建议先分早晚用，耐受后再叠加。"), "knowledge"),
    (("周末露营必备清单⛺",
      "带娃去营地：一顶速开帐篷、折叠桌椅、保温箱装满冷饮、氛围灯串和驱蚊喷雾，"
      "晚上在草地上看星星，姐妹们冲！#露营 #周末去哪儿"), "scenario"),
    (("三款降噪耳机横评，优缺点都在这",
      "A：降噪最强，但佩戴久了耳朵胀。B：音质最好，续航一般。C：便宜，通话差。"
      "评分：A 8/10，B 9/10，C 6/10。通勤选A，听歌选B。"), "review"),
    (("那年冬天，我第一次一个人带娃回老家",
      "那年儿子刚满一岁，老公临时出差。我背着包抱着他挤上了绿皮火车，一路上哭了好几次。"
      "后来到了家，外婆接过孩子的那一刻，我突然觉得什么都值得了。现在回想起来还是很想哭。"),
     "story"),
]


@pytest.fixture(scope="module")
def posts() -> list[Any]:
    return list(train_script.load(DATA))


def test_data_file_validates(posts: list[Any]) -> None:
    assert len(posts) >= 400
    hand = [p for p in posts if p.source == "hand"]
    assert len(hand) >= 320
    shares = Counter(p.label for p in hand)
    for label in LABELS:
        assert 0.20 <= shares[label] / len(hand) <= 0.30, (label, shares)
    hard = sum(bool(p.note) for p in hand)
    assert 0.10 <= hard / len(hand) <= 0.25
    lengths = [len(p.body) for p in hand]
    assert min(lengths) < 30
    assert max(lengths) > 400
    assert len({p.id.split("-")[1] for p in hand}) >= 11
    assert sum(p.source == "demo" for p in posts) <= 100


def test_validation_names_the_bad_row() -> None:
    good = {"id": "x1", "source": "hand", "title": "t", "body": "b", "label": "story",
            "note": ""}
    assert len(train_script.validate([good])) == 1
    with pytest.raises(ValueError, match="line 2: duplicate"):
        train_script.validate([good, dict(good)])
    with pytest.raises(ValueError, match="unknown label 'ad'"):
        train_script.validate([{**good, "label": "ad"}])
    with pytest.raises(ValueError, match="empty title or body"):
        train_script.validate([{**good, "body": "  "}])


def test_labels_are_known_and_order_is_kept() -> None:
    pairs = [pair for pair, _ in OBVIOUS]
    forward = classify(pairs)
    assert set(forward) <= set(LABELS)
    assert classify(pairs[::-1]) == forward[::-1]
    probabilities = classify_proba(pairs)
    for row, label in zip(probabilities, forward, strict=True):
        assert tuple(row) == LABELS
        assert sum(row.values()) == pytest.approx(1.0)
        assert max(row, key=row.__getitem__) == label


@pytest.mark.parametrize(("pair", "expected"), OBVIOUS, ids=[e for _, e in OBVIOUS])
def test_obvious_examples(pair: tuple[str, str], expected: str) -> None:
    assert classify([pair]) == [expected]


def test_bad_input() -> None:
    assert classify([]) == []
    assert classify_proba([]) == []
    with pytest.raises(ValidationFailed, match="title must be a string, not int"):
        classify([(3, "body")])  # type: ignore[list-item]
    with pytest.raises(ValidationFailed, match=r"\(title, body\) pair"):
        classify([("only a title",)])  # type: ignore[list-item]
    with pytest.raises(ValidationFailed, match="sequence"):
        classify("标题")


def test_model_files_hold_no_pickle() -> None:
    import numpy as np

    with np.load(ct.MODEL_DIR / "content_types.npz", allow_pickle=False) as arrays:
        assert {"vocabulary", "idf", "coef", "intercept"} <= set(arrays.files)
        assert arrays["coef"].shape == (len(LABELS), arrays["idf"].size + len(ct.CUE_NAMES))
    meta = json.loads((ct.MODEL_DIR / "content_types.json").read_text(encoding="utf-8"))
    assert meta["labels"] == list(LABELS)
    assert meta["trained_on"]["data_sha256"] == train_script.sha256(DATA)


def test_save_load_round_trip(tmp_path: Path) -> None:
    model = ct.default_model()
    model.save(tmp_path, "copy")
    copy = ContentTypeModel.load(tmp_path, "copy")
    pairs = [pair for pair, _ in OBVIOUS]
    assert copy.classify_proba(pairs) == pytest.approx(model.classify_proba(pairs))


def test_held_out_accuracy_is_reproduced(posts: list[Any]) -> None:
    """Retrain on the fixed 70 % with the recorded settings; the 30 % score must hold."""
    meta = json.loads((ct.MODEL_DIR / "content_types.json").read_text(encoding="utf-8"))
    holdout = meta["holdout"]
    assert holdout["seed"] == train_script.SEED
    train, test = train_script.split(posts)
    assert len(test) == holdout["test_posts"]
    model = train_script.fit(train, ct.FeatureConfig.from_json(holdout["features"]),
                             holdout["c"])
    predicted = model.classify([p.pair for p in test])
    accuracy = sum(a == p.label for a, p in zip(predicted, test, strict=True)) / len(test)
    assert accuracy >= holdout["accuracy"] - MARGIN
    assert accuracy > holdout["keyword_accuracy"] > holdout["majority_accuracy"]


def test_document_shows_the_recorded_figures() -> None:
    meta = json.loads((ct.MODEL_DIR / "content_types.json").read_text(encoding="utf-8"))
    doc = (REPO / "docs" / "content-types.md").read_text(encoding="utf-8")
    block = train_script.BLOCK.extract(doc)
    accuracy = f"{100 * meta['holdout']['accuracy']:.1f} %"
    assert f"| model | {meta['holdout']['test_posts']} | {accuracy} |" in block
    assert meta["trained_on"]["data_sha256"][:16] in block
