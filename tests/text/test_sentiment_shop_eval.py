"""The shop-path evaluation of scripts/eval_sentiment.py (``--shop-models``) on a small
synthetic labelled set: the shape of its rows and that a shop model beats chance."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from script_modules import load_script

REPO = Path(__file__).resolve().parents[2]
GOOD = ["好", "满意", "喜欢", "推荐", "不错", "划算", "好用", "漂亮", "舒服", "值得"]
BAD = ["差", "失望", "垃圾", "难用", "后悔", "坑人", "糟糕", "破", "假货", "恶心"]
THINGS = {"鞋店": ["鞋子", "靴子", "拖鞋", "凉鞋", "球鞋"],
          "茶铺": ["绿茶", "红茶", "茶叶", "茶具", "花茶"]}
EXTRAS = ["", "啊", "呀", "，下次再来", "，说真的", "！！"]


def _synthetic_shops() -> tuple[list[str], list[str], np.ndarray]:
    """2 shops × 300 distinct short texts, half positive, separable by the sentiment word."""
    shops: list[str] = []
    texts: list[str] = []
    labels: list[int] = []
    for shop, things in THINGS.items():
        for label, words in ((1, GOOD), (0, BAD)):
            for thing in things:
                for word in words:
                    for extra in EXTRAS[:3]:
                        shops.append(shop)
                        texts.append(f"这{thing}真{word}{extra}")
                        labels.append(label)
    return shops, texts, np.array(labels, dtype=np.int64)


def _coin(texts: Sequence[str]) -> np.ndarray:
    """A baseline that knows nothing: 0.5 for every text (predicted positive)."""
    return np.full(len(texts), 0.5)


@pytest.fixture(scope="module")
def script() -> object:
    return load_script(REPO / "scripts" / "eval_sentiment.py")


def test_per_shop_rows_shape_and_a_shop_model_beats_chance(script: object) -> None:
    shops, texts, labels = _synthetic_shops()
    assert len(texts) == 600
    assert len(set(texts)) == 600
    rows = script.evaluate_shops(  # type: ignore[attr-defined]
        shops, texts, labels, baseline=_coin, min_per_class=200)
    names = [row["shop"] for row in rows]
    assert names == ["茶铺", "鞋店", script.POOLED_SHOPS,  # type: ignore[attr-defined]
                     script.ALL_SHOPS]  # type: ignore[attr-defined]
    for row in rows[:2]:
        assert row["trained"] is True
        assert (row["rows"], row["pos"], row["neg"]) == (300, 150, 150)
        assert (row["train_rows"], row["held_out_rows"]) == (240, 60)
        assert row["below_minimum"] is True  # 150 per class < 200: the CLI would refuse
        accuracy, macro_f1 = row["shop_model"]
        assert accuracy > 0.8
        assert macro_f1 > 0.8
        assert row["default_model"] == pytest.approx((0.5, 1 / 3))  # all predicted positive
    pooled, whole = rows[2], rows[3]
    assert pooled["held_out_rows"] == 120
    assert pooled["rows"] == 600
    assert whole["train_rows"] == 480
    assert whole["held_out_rows"] == 120
    assert whole["below_minimum"] is False
    assert whole["shop_model"][0] > 0.8
    # the same seed gives the same split and model: the figures are reproducible
    again = script.evaluate_shops(  # type: ignore[attr-defined]
        shops, texts, labels, baseline=_coin, include_all=False)
    assert [row["shop_model"] for row in again] == [row["shop_model"] for row in rows[:3]]
    # the rendered section carries the title and one line per row
    lines = script.render_shops({"rows": rows, "seconds": 1.0})  # type: ignore[attr-defined]
    assert lines[0] == "### A shop's own model (`shequ nlp train-sentiment`)"
    assert sum(line.startswith("| ") for line in lines) == 1 + len(rows)
    assert any("never saved" in line for line in lines)


def test_a_shop_with_one_class_is_reported_not_trained(script: object) -> None:
    shops, texts, labels = _synthetic_shops()
    keep = [i for i, shop in enumerate(shops) if shop == "鞋店" or labels[i] == 0][:400]
    rows = script.evaluate_shops(  # type: ignore[attr-defined]
        [shops[i] for i in keep], [texts[i] for i in keep], labels[keep], baseline=_coin,
        include_all=False)
    by_shop = {row["shop"]: row for row in rows}
    assert by_shop["茶铺"]["trained"] is False
    assert "note" in by_shop["茶铺"]
    assert by_shop["鞋店"]["trained"] is True
    assert len(rows) == 2  # a single trained shop: no pooled row
