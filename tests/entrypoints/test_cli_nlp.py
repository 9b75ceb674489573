"""``shequ nlp sentiment`` and ``shequ nlp train-sentiment`` as a user drives them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from shequ.core.db import Base, make_engine, make_session_factory, transaction
from shequ.demo.generator import generate
from shequ.domains.catalog import service as catalog
from shequ.domains.content import service as content
from shequ.domains.customers import service as customers
from shequ.domains.orders import service as orders
from shequ.entrypoints.cli import app
from shequ.entrypoints.registry import load_models
from shequ.text.sentiment import SentimentModel, default_model

runner = CliRunner()
TEXTS = ["质量很好，非常满意！", "太差了，再也不买了", "一般般吧", '带"引号", 和逗号的好评']


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    result = runner.invoke(app, ["migrate", "--home", str(home)])
    assert result.exit_code == 0, result.output
    return home


@pytest.fixture(scope="module")
def shop_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database (schema of the current models) holding the small demo community's shop
    data and its 360 reviews, built once and copied for each test."""
    path = tmp_path_factory.mktemp("shop") / "shequ.db"
    community = generate(size="small", seed=7)
    engine = make_engine(f"sqlite:///{path.resolve()}")
    load_models()
    Base.metadata.create_all(engine)
    with transaction(make_session_factory(engine)) as session:
        catalog.bulk_load(session, community.brands, community.categories, community.products)
        customers.bulk_load(session, community.customers, community.devices)
        orders.bulk_load_orders(session, community.orders, community.order_lines)
        content.bulk_load(session, [], [], [], [], community.reviews)  # reviews only
    engine.dispose()
    return path


@pytest.fixture
def home_with_reviews(tmp_path: Path, shop_database: Path) -> Path:
    home = tmp_path / "shop"
    home.mkdir()
    shutil.copyfile(shop_database, home / "shequ.db")
    return home


def _flat(text: str) -> str:
    """Console output without the line wrapping Rich adds."""
    return " ".join(text.split())


def _rows(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def _expected(model: SentimentModel, texts: list[str]) -> list[float]:
    return [float(p) for p in model.predict_proba(texts)]


def _check(rows: list[dict[str, object]], expected: list[float]) -> None:
    assert len(rows) == len(expected)
    for row, probability in zip(rows, expected, strict=True):
        assert set(row) == {"label", "score"}
        assert row["score"] == pytest.approx(probability, abs=1e-6)
        assert row["label"] == ("pos" if probability >= 0.5 else "neg")


def test_sentiment_of_a_csv_file_in_input_order(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    lines = ["id,text"] + [f'{n},"{t.replace(chr(34), chr(34) * 2)}"' for n, t in enumerate(TEXTS)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["nlp", "sentiment", str(path), "--home", str(home)])
    assert result.exit_code == 0, result.output
    rows = _rows(result.stdout)
    _check(rows, _expected(default_model(), TEXTS))
    assert rows[0]["label"] == "pos"
    assert rows[1]["label"] == "neg"


def test_sentiment_of_a_jsonl_file_and_of_stdin(home: Path, tmp_path: Path) -> None:
    body = "".join(json.dumps({"text": t, "n": i}, ensure_ascii=False) + "\n"
                   for i, t in enumerate(TEXTS))
    path = tmp_path / "reviews.jsonl"
    path.write_text(body, encoding="utf-8")
    from_file = runner.invoke(app, ["nlp", "sentiment", str(path), "--home", str(home)])
    assert from_file.exit_code == 0, from_file.output
    _check(_rows(from_file.stdout), _expected(default_model(), TEXTS))
    from_stdin = runner.invoke(app, ["nlp", "sentiment", "-", "--home", str(home)], input=body)
    assert from_stdin.exit_code == 0, from_stdin.output
    assert from_stdin.stdout == from_file.stdout
    csv_stdin = runner.invoke(app, ["nlp", "sentiment", "-", "--home", str(home)],
                              input="text\n好评\n差评\n")
    assert csv_stdin.exit_code == 0, csv_stdin.output
    _check(_rows(csv_stdin.stdout), _expected(default_model(), ["好评", "差评"]))


def test_missing_column_and_bad_line_are_named(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("id,review\n1,很好\n", encoding="utf-8")
    result = runner.invoke(app, ["nlp", "sentiment", str(path), "--home", str(home)])
    assert result.exit_code == 1
    assert "no 'text' column (columns: id, review)" in _flat(result.stderr)
    assert result.stdout == ""
    lines = '{"text": "好"}\n{"text": oops}\n'
    result = runner.invoke(app, ["nlp", "sentiment", "-", "--home", str(home)], input=lines)
    assert result.exit_code == 1
    assert "line 2: not valid JSON" in _flat(result.stderr)
    result = runner.invoke(app, ["nlp", "sentiment", str(tmp_path / "absent.csv"),
                                 "--home", str(home)])
    assert result.exit_code == 1
    assert "does not exist" in _flat(result.stderr)


def test_train_sentiment_refuses_too_few_reviews(home_with_reviews: Path) -> None:
    result = runner.invoke(app, ["nlp", "train-sentiment", "--home", str(home_with_reviews)])
    assert result.exit_code == 1
    assert ("needs at least 200 reviews rated 4-5 and 200 rated 1-2; found 287 and 53"
            in _flat(result.stderr))


def test_train_sentiment_saves_the_shop_model_and_scoring_uses_it(
        home_with_reviews: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["nlp", "train-sentiment", "--home", str(home_with_reviews),
                                 "--min-per-class", "20", "--force"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["neutral_skipped"] == 20
    assert report["held_out_rows"] + report["train_rows"] == \
        report["positives"] + report["negatives"]
    assert 0.0 <= report["shop_model"]["accuracy"] <= 1.0
    assert 0.0 <= report["default_model"]["accuracy"] <= 1.0
    assert report["saved"] is True
    model_path = home_with_reviews / "models" / "sentiment.npz"
    assert report["path"] == str(model_path)
    shop = SentimentModel.load(model_path)
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS), encoding="utf-8")
    scored = runner.invoke(app, ["nlp", "sentiment", str(path), "--home",
                                 str(home_with_reviews)])
    assert scored.exit_code == 0, scored.output
    _check(_rows(scored.stdout), _expected(shop, TEXTS))
    assert not np.allclose(shop.predict_proba(TEXTS), default_model().predict_proba(TEXTS))


def test_train_sentiment_keeps_the_default_unless_the_shop_model_is_as_accurate(
        home_with_reviews: Path) -> None:
    result = runner.invoke(app, ["nlp", "train-sentiment", "--home", str(home_with_reviews),
                                 "--min-per-class", "20", "--seed", "1"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    better = report["shop_model"]["accuracy"] >= report["default_model"]["accuracy"]
    assert report["saved"] is better
    assert (home_with_reviews / "models" / "sentiment.npz").exists() is better
    assert "held-out accuracy" in _flat(result.stderr)
