"""TF-IDF keywords and corpus top terms."""

from __future__ import annotations

import csv
import itertools
import math

import pytest

from shequ.core.errors import ValidationFailed
from shequ.text.keywords import KeywordExtractor, top_terms

CORPUS = [
    "这款面霜很滋润，烟酰胺成分让皮肤变亮了",
    "面霜的包装很好看，物流很快",
    "耳机降噪效果一般，续航还可以",
    "耳机音质很好，降噪很强，佩戴舒服",
    "物流很快，包装完好，客服态度好",
    "咖啡很香，冷萃的口感顺滑，回购3次了",
]


@pytest.fixture(scope="module")
def extractor() -> KeywordExtractor:
    return KeywordExtractor().fit(CORPUS)


def test_rare_words_outrank_common_ones(extractor: KeywordExtractor) -> None:
    keywords = dict(extractor.extract("面霜里的烟酰胺很好用，物流很快", k=10))
    assert keywords["烟酰胺"] > keywords["面霜"] == keywords["物流"] > keywords["好"] * 0.5
    assert extractor.idf("烟酰胺") == pytest.approx(math.log(7 / 2) + 1)
    assert extractor.idf("从没见过的词") == pytest.approx(math.log(7) + 1)


def test_numbers_single_characters_and_stop_words_dropped(extractor: KeywordExtractor) -> None:
    text = "味道香，价格贵，回购了3次，2024年买了十二袋，的确好"
    words = [word for word, _ in extractor.extract(text, k=20)]
    assert {"香", "贵", "好"} <= set(words)  # whitelisted single characters
    assert {"味道", "价格", "回购"} <= set(words)
    for dropped in ("3", "2024", "十二", "了", "次", "年", "买", "袋"):
        assert dropped not in words


def test_extract_ranks_and_limits(extractor: KeywordExtractor) -> None:
    ranked = extractor.extract(CORPUS[3], k=3)
    assert len(ranked) == 3
    assert [weight for _, weight in ranked] == sorted((w for _, w in ranked), reverse=True)
    assert extractor.extract("", k=5) == []


def test_bad_input(extractor: KeywordExtractor) -> None:
    with pytest.raises(ValidationFailed) as raised:
        extractor.extract("好", k=0)
    assert raised.value.attr == "k"
    with pytest.raises(ValidationFailed) as raised:
        KeywordExtractor().extract("好")
    assert raised.value.code == "keywords_not_fitted"
    with pytest.raises(ValidationFailed) as raised:
        KeywordExtractor().fit(["好", None])  # type: ignore[list-item]
    assert raised.value.attr == "documents[1]"


def test_top_terms_against_a_background(extractor: KeywordExtractor) -> None:
    own = [word for word, _ in top_terms(CORPUS[2:4], 3)]
    assert set(own) <= {"耳机", "降噪", "音质", "续航", "一般", "效果", "佩戴", "舒服", "强"}
    against = [word for word, _ in top_terms(CORPUS[2:4], 2, extractor=extractor)]
    assert against[0] in {"耳机", "降噪", "续航", "音质"}
    assert top_terms([], 5) == []


def test_real_reviews_by_category() -> None:
    from conftest import EVAL_DATA

    path = EVAL_DATA / "sentiment/online_shopping_10_cats/online_shopping_10_cats.csv"
    if not path.exists():
        pytest.skip(f"real reviews not found at {path}")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(itertools.islice(csv.DictReader(handle), 0, None, 80))
    extractor = KeywordExtractor().fit(row["review"] for row in rows)
    hotels = [row["review"] for row in rows if row["cat"] == "酒店"]
    words = [word for word, _ in top_terms(hotels, 10, extractor=extractor)]
    assert "酒店" in words
    assert "房间" in words
