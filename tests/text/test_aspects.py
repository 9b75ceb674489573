"""Aspect lexicon, clause splitting and clause-level aspect sentiment."""

from __future__ import annotations

from collections.abc import Sequence

from shequ.text.aspects import (
    ASPECTS,
    aspect_mentions,
    aspect_sentiments,
    aspects_of,
    score_mentions,
    split_clauses,
)


def polarity(clauses: Sequence[str]) -> list[float]:
    """A tiny lexicon scorer: 0.9 for a clause with a praise word, 0.1 with a complaint."""
    good, bad = ("好", "快", "干净", "划算"), ("慢", "差", "破", "贵")
    return [0.1 if any(w in c for w in bad) else 0.9 if any(w in c for w in good) else 0.5
            for c in clauses]


def test_every_aspect_has_a_chinese_name_and_terms() -> None:
    assert list(ASPECTS)[:4] == ["quality", "price", "logistics", "service"]
    for aspect in ASPECTS.values():
        assert "\u4e00" <= aspect.name[0] <= "\u9fff"
        assert aspect.terms
    assert ASPECTS["ingredients"].name == "成分"
    assert {"烟酰胺", "玻尿酸", "添加剂", "配料表"} <= set(ASPECTS["ingredients"].terms)


def test_clauses_split_at_punctuation_and_contrast_markers() -> None:
    text = "质量很好，但是物流太慢了！客服还行；不过包装一般…"
    clauses = split_clauses(text)
    assert [c.text for c in clauses] == ["质量很好", "但是物流太慢了", "客服还行", "不过包装一般"]
    for clause in clauses:
        assert text[clause.start:clause.end] == clause.text


def test_contrast_without_punctuation_makes_two_clauses() -> None:
    assert [c.text for c in split_clauses("颜值很高可是尺码偏小")] == ["颜值很高", "可是尺码偏小"]


def test_introducers_are_dropped_from_clauses() -> None:
    text = "颜值很高，美中不足的是售后推来推去。要吐槽的是：客服爱答不理"
    assert [c.text for c in split_clauses(text)] == ["颜值很高", "售后推来推去", "客服爱答不理"]
    [found] = aspect_mentions([text])
    assert [m.clause for m in found] == ["颜值很高", "售后推来推去", "客服爱答不理"]


def test_mentions_carry_aspect_term_clause_and_offsets() -> None:
    text = "成分很干净，没有添加剂。物流超快"
    [found] = aspect_mentions([text])
    assert [(m.aspect, m.term, m.clause) for m in found] == [
        ("ingredients", "成分", "成分很干净"), ("ingredients", "添加剂", "没有添加剂"),
        ("logistics", "物流", "物流超快")]
    for m in found:
        assert text[m.start:m.end] == m.term


def test_longest_term_wins() -> None:
    [[one]] = aspect_mentions(["包装破损"])
    assert (one.aspect, one.term) == ("logistics", "包装破损")
    [[other]] = aspect_mentions(["包装很精致"])
    assert other.aspect == "packaging"


def test_traditional_and_full_width_text_match_with_original_offsets() -> None:
    text = "價格便宜，ＯＫ，質量不錯"
    [found] = aspect_mentions([text])
    assert [(m.aspect, m.term) for m in found] == [("price", "價格"), ("price", "便宜"),
                                                   ("quality", "質量")]
    assert found[2].clause == "質量不錯"


def test_text_without_aspects_and_empty_text() -> None:
    assert aspect_mentions(["今天天气不错", ""]) == [[], []]
    assert aspects_of([]) == set()


def test_each_mention_gets_the_sentiment_of_its_own_clause() -> None:
    calls: list[int] = []

    def counted(clauses: Sequence[str]) -> list[float]:
        calls.append(len(clauses))
        return polarity(clauses)

    texts = ["质量很好，但是物流太慢", "物流太慢", "价格划算", "价格划算"]
    scored = score_mentions(aspect_mentions(texts), counted)
    assert calls == [4]  # one call, each distinct clause once
    assert [(s.mention.aspect, s.score) for s in scored[0]] == [("quality", 0.9),
                                                               ("logistics", 0.1)]
    assert aspect_sentiments(texts, polarity) == [{"quality": 0.9, "logistics": 0.1},
                                                  {"logistics": 0.1}, {"price": 0.9},
                                                  {"price": 0.9}]


def test_no_clauses_means_no_scorer_call() -> None:
    def refuse(_clauses: Sequence[str]) -> list[float]:
        raise AssertionError("scorer called without clauses")

    assert score_mentions([[]], refuse) == [[]]
