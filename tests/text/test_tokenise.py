"""Tokenisation with a domain dictionary built from catalog data."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shequ.core.errors import ValidationFailed
from shequ.demo import phrases_catalog
from shequ.text.normalise import normalise
from shequ.text.tokenise import (
    DEFAULT_INGREDIENTS,
    STOP_WORDS,
    Tokeniser,
    default_tokeniser,
    domain_terms,
)

BRANDS = [name for name, _, _ in phrases_catalog.BRANDS]
PRODUCTS = ["沐光研 烟酰胺亮肤面霜 50g", "听澜 Air降噪蓝牙耳机 旗舰版", "贝可萌 云柔纸尿裤 S码84片",
            "简棠 304不锈钢炒锅 32cm", "极隅科技 GT智能手表 46mm"]
REVIEW = "沐光研的烟酰胺亮肤面霜用了一周，玻尿酸补水效果很好！！神经酰胺修护也不错"


@pytest.fixture(scope="module")
def catalog_tokeniser() -> Tokeniser:
    return Tokeniser(domain_terms(BRANDS, PRODUCTS, ["雪绒花焕活"]))


def test_domain_terms_from_catalog_data() -> None:
    terms = domain_terms(BRANDS, PRODUCTS, ["雪绒花焕活"])
    assert terms[:len(BRANDS)] == BRANDS
    for kept in ("烟酰胺亮肤面霜", "air降噪蓝牙耳机", "304不锈钢炒锅", "gt智能手表", "旗舰版",
                 "雪绒花焕活", "神经酰胺", "维c"):
        assert kept in terms
    for spec in ("50g", "s码84片", "32cm", "46mm"):
        assert spec not in terms
    assert len(terms) == len(set(terms))
    assert domain_terms(include_default_ingredients=False) == []
    assert len(DEFAULT_INGREDIENTS) >= 60


def test_domain_terms_reject_bad_input() -> None:
    with pytest.raises(ValidationFailed) as raised:
        domain_terms(["沐光研", 3])  # type: ignore[list-item]
    assert raised.value.attr == "brands[1]"
    with pytest.raises(ValidationFailed) as raised:
        domain_terms("沐光研")
    assert raised.value.attr == "brands"


def test_domain_terms_stay_whole(catalog_tokeniser: Tokeniser) -> None:
    tokens = catalog_tokeniser.tokens(REVIEW)
    assert tokens[:2] == ["沐光研", "烟酰胺亮肤面霜"]
    assert "玻尿酸" in tokens
    assert "神经酰胺" in tokens
    # jieba's own dictionary splits the ingredient; the default tokeniser keeps it whole
    plain = Tokeniser(include_default_ingredients=False)
    assert "玻尿酸" not in plain.tokens(REVIEW)
    assert "玻尿酸" in default_tokeniser().tokens(REVIEW)


def test_tokens_are_normalised_and_filtered(catalog_tokeniser: Tokeniser) -> None:
    tokens = catalog_tokeniser.tokens("頭髮很乾燥，ＳＰＦ５０ 防曬  的  了")
    assert tokens == ["头发", "干燥", "spf50", "防晒"]
    assert not STOP_WORDS & set(tokens)
    assert "的" in catalog_tokeniser.tokens("我的面霜", keep_stop_words=True)
    assert catalog_tokeniser.cut("好，好") == ["好", ",", "好"]


def test_private_dictionary_does_not_leak() -> None:
    first = Tokeniser(["云朵软糖"], include_default_ingredients=False)
    second = Tokeniser(include_default_ingredients=False)
    assert "云朵软糖" in first.tokens("买了云朵软糖")
    assert "云朵软糖" not in second.tokens("买了云朵软糖")
    import jieba

    assert "云朵软糖" not in jieba.dt.FREQ


def test_added_terms_and_custom_stop_words() -> None:
    tokeniser = Tokeniser(stop_words=["面霜"], include_default_ingredients=False)
    tokeniser.add_terms(["花知晓 雪绒花"])
    assert tokeniser.terms == ["花知晓", "雪绒花"]
    assert tokeniser.tokens("花知晓雪绒花面霜的") == ["花知晓", "雪绒花", "的"]
    with pytest.raises(ValidationFailed) as raised:
        tokeniser.add_terms(["好", "  "])
    assert raised.value.attr == "terms[1]"


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("沐光研烟酰胺面霜好用的了很頭髮ＡＢ12 ，!😀")),
               max_size=30))
def test_cut_covers_the_normalised_text(text: str) -> None:
    tokeniser = default_tokeniser()
    assert "".join(tokeniser.cut(text)) == normalise(text)
    for token in tokeniser.tokens(text):
        assert token in normalise(text)
        assert token.strip() == token
        assert token not in STOP_WORDS
