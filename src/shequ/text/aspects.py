"""Aspects of product talk (quality, price, logistics, ingredients …) found by a lexicon.

A text is cut into clauses at Chinese and Western punctuation and before contrast markers
(但是, 不过, 可是 …), so "质量很好，但是物流太慢" gives two clauses with opposite
feelings. An aspect is mentioned where one of its terms occurs (the longest term wins at
each position: 包装破损 is logistics, 包装 alone is packaging). The sentiment of a mention is
the sentiment score (P(positive)) of the clause that holds it; all clauses of a batch are
scored in one call.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from shequ.text.normalise import normalise_with_spans

Scorer = Callable[[Sequence[str]], list[float]]


@dataclass(frozen=True)
class Aspect:
    """One aspect: a stable key, its Chinese display name and the terms that signal it."""

    key: str
    name: str
    terms: tuple[str, ...]


ASPECT_LIST: tuple[Aspect, ...] = (
    Aspect("quality", "质量", (
        "质量", "做工", "材质", "质感", "质地", "面料", "用料", "品质", "耐用", "结实", "毛刺",
        "划痕", "起球", "掉色", "开线", "线头", "瑕疵", "坏了", "松动", "接缝", "粗糙", "正品")),
    Aspect("price", "价格", (
        "价格", "价位", "价钱", "性价比", "贵", "便宜", "划算", "实惠", "降价", "优惠", "满减",
        "领券", "券后", "活动价", "原价", "不值这个价", "不值这个钱", "值这个价", "撑不起这个价")),
    Aspect("logistics", "物流", (
        "物流", "快递", "发货", "到货", "送货", "配送", "顺丰", "签收", "包装破损", "压扁",
        "磕碰", "隔天就到", "第二天就收到", "送上门", "快递盒", "催了")),
    Aspect("service", "服务", (
        "客服", "售后", "态度", "退换", "退货", "退款", "补发", "发票", "商家", "店家",
        "回复", "投诉", "处理问题", "解决问题")),
    Aspect("ingredients", "成分", (
        "成分", "配方", "配料", "配料表", "烟酰胺", "玻尿酸", "透明质酸", "神经酰胺", "视黄醇",
        "维A醇", "A醇", "水杨酸", "果酸", "积雪草", "角鲨烷", "胶原蛋白", "添加剂", "防腐剂",
        "香精", "酒精", "色素", "无添加", "蔗糖", "代糖", "麦芽糖浆", "反式脂肪", "配比",
        "浓度", "含量")),
    Aspect("appearance", "外观", (
        "外观", "颜值", "颜色", "色差", "配色", "设计", "好看", "款式", "样子", "造型",
        "外形", "图片", "实物")),
    Aspect("size", "尺码", (
        "尺码", "尺寸", "大小", "偏大", "偏小", "码数", "大一码", "小一码", "腰围", "长度",
        "宽度", "合身", "勒")),
    Aspect("effect", "效果", (
        "效果", "功效", "保湿", "补水", "美白", "提亮", "控油", "祛痘", "痘印", "修护", "抗老",
        "淡纹", "防晒", "吸收", "卡粉", "搓泥", "闷痘", "过敏", "刺痛", "泛红", "续航", "降噪",
        "音质", "低音", "连接", "断连", "延迟", "充电", "信号", "不粘", "粘锅", "收纳",
        "漏", "侧漏", "防胀气", "吸水", "睡眠", "监测", "计步", "效率", "管用", "有用",
        "没用")),
    Aspect("taste", "口味", (
        "口味", "口感", "味道", "好吃", "难吃", "太甜", "齁甜", "不甜", "太咸", "辣度", "酥",
        "嚼劲", "回甘", "酸涩", "新鲜", "腻")),
    Aspect("packaging", "包装", (
        "包装", "外箱", "瓶身", "泵头", "密封", "漏气", "独立包装", "小包装", "礼盒", "盒子")),
    Aspect("smell", "气味", (
        "气味", "香味", "香气", "异味", "怪味", "塑料味", "味儿", "臭", "刺鼻", "冲鼻", "留香",
        "无香")),
    Aspect("usability", "使用体验", (
        "使用", "操作", "安装", "上手", "好用", "难用", "方便", "麻烦", "说明书", "手感",
        "出量")),
)
ASPECTS: dict[str, Aspect] = {a.key: a for a in ASPECT_LIST}
"""Aspects by key, in display order."""

# term -> aspect key; a term listed under two aspects keeps the first.
_TERM_ASPECT: dict[str, str] = {}
for _aspect in ASPECT_LIST:
    for _term in _aspect.terms:
        _TERM_ASPECT.setdefault(_term, _aspect.key)
_TERMS = re.compile("|".join(re.escape(t) for t in sorted(_TERM_ASPECT, key=len, reverse=True)))

CLAUSE_MARKS = "，,。.！!？?；;…~～ \n\r\t、：:（）()【】[]「」\"“”"
CONTRAST_MARKERS = ("但是", "不过", "可是", "然而", "只是", "但", "就是", "唯一的缺点")
# Phrases that only announce what follows ("美中不足的是物流慢"): dropped from the clause's
# start, so they neither sway its sentiment nor show in quotes.
INTRODUCERS = ("美中不足的是", "唯一的缺点是", "唯一不足的是", "要说缺点的话", "不太满意的是",
               "不满意的是", "要吐槽的是", "小缺点", "缺点是", "缺点也有", "让我惊喜的是",
               "惊喜的是", "优点是", "先说优点", "总结", "说实话")
_INTRODUCER = re.compile("|".join(re.escape(m) for m in sorted(INTRODUCERS, key=len,
                                                               reverse=True)))
_BREAK = re.compile("[" + re.escape(CLAUSE_MARKS) + "]+")
_CONTRAST = re.compile("|".join(re.escape(m) for m in CONTRAST_MARKERS))


@dataclass(frozen=True)
class Clause:
    """A clause of a text: its text and ``[start, end)`` offsets in the original."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class AspectMention:
    """``aspect`` mentioned by ``term`` at ``[start, end)`` of the text, inside ``clause``."""

    aspect: str
    term: str
    clause: str
    start: int
    end: int


@dataclass(frozen=True)
class ScoredMention:
    """A mention with the sentiment score (P(positive)) of its clause."""

    mention: AspectMention
    score: float


def _trimmed(text: str, start: int, end: int) -> Clause | None:
    while start < end and text[start].isspace():
        start += 1
    introducer = _INTRODUCER.match(text, start, end)
    if introducer is not None:
        start = introducer.end()
    while end > start and text[end - 1].isspace():
        end -= 1
    return Clause(text[start:end], start, end) if end > start else None


def split_clauses(text: str) -> list[Clause]:
    """Clauses of ``text`` cut at punctuation and before contrast markers (但是, 不过 …),
    without a leading introducer (美中不足的是 …); empty pieces are dropped, offsets point
    into ``text``."""
    clauses: list[Clause] = []
    start = 0
    cuts = [(m.start(), m.end()) for m in _BREAK.finditer(text)]
    cuts.append((len(text), len(text)))
    for cut_start, cut_end in cuts:
        piece_start = start
        for marker in _CONTRAST.finditer(text, start, cut_start):
            if marker.start() > piece_start:
                found = _trimmed(text, piece_start, marker.start())
                if found is not None:
                    clauses.append(found)
                piece_start = marker.start()
        found = _trimmed(text, piece_start, cut_start)
        if found is not None:
            clauses.append(found)
        start = cut_end
    return clauses


def _mentions_of(text: str) -> list[AspectMention]:
    """Mentions found in the normalised text (traditional → simplified, full-width →
    half-width, lower case), reported with offsets and clauses of the original text."""
    norm, origin = normalise_with_spans(text)
    found: list[AspectMention] = []
    for clause in split_clauses(norm):
        clause_start, clause_end = origin[clause.start], origin[clause.end - 1] + 1
        for match in _TERMS.finditer(norm, clause.start, clause.end):
            start, end = origin[match.start()], origin[match.end() - 1] + 1
            found.append(AspectMention(_TERM_ASPECT[match.group()], text[start:end],
                                       text[clause_start:clause_end], start, end))
    return found


def aspect_mentions(texts: Sequence[str]) -> list[list[AspectMention]]:
    """Every aspect mention of every text, in text order."""
    return [_mentions_of(text) for text in texts]


def aspects_of(mentions: Sequence[AspectMention]) -> set[str]:
    """The aspect keys among ``mentions``."""
    return {m.aspect for m in mentions}


def _default_scorer() -> Scorer:
    from shequ.text.sentiment import score

    return score


def score_mentions(mentions: Sequence[Sequence[AspectMention]],
                   scorer: Scorer | None = None) -> list[list[ScoredMention]]:
    """Mentions with the sentiment of their clauses; each distinct clause is scored once,
    all in one ``scorer`` call (default: :func:`shequ.text.sentiment.score`)."""
    score = scorer if scorer is not None else _default_scorer()
    clauses = sorted({m.clause for per_text in mentions for m in per_text})
    scores = dict(zip(clauses, score(clauses), strict=True)) if clauses else {}
    return [[ScoredMention(m, float(scores[m.clause])) for m in per_text]
            for per_text in mentions]


def aspect_sentiments(texts: Sequence[str], scorer: Scorer | None = None
                      ) -> list[dict[str, float]]:
    """Per text: aspect key → mean sentiment (P(positive)) of the clauses mentioning it."""
    scored = score_mentions(aspect_mentions(texts), scorer)
    result: list[dict[str, float]] = []
    for per_text in scored:
        sums: dict[str, list[float]] = {}
        for item in per_text:
            sums.setdefault(item.mention.aspect, []).append(item.score)
        result.append({key: sum(v) / len(v) for key, v in sums.items()})
    return result
