"""Natural-sounding Chinese text for the demo: reviews, posts, comments, names, addresses.

Texts are composed from the phrase banks in ``phrases_*`` (templates x slots x product and
brand names) with a seeded :class:`random.Random`, so they are deterministic and varied.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from shequ.demo import phrases_people as pp
from shequ.demo import phrases_posts as ps
from shequ.demo import phrases_reviews as pr

CLOSING_MARKS = "。！？～!?…"
MENTIONS = ("我用的是{product}。", "这次用的是{brand}家的{type}。",
            "文中提到的是{product}，自费购买。",
            "顺便说一句，我手上这款是{product}。")
SYNONYMS = {"很": "超", "真的": "确实", "大家": "姐妹们", "特别": "非常", "觉得": "感觉",
            "一下": "一哈", "这个": "这款", "已经": "都"}
INSERTS = ("真的", "其实", "哈哈", "～", "！", "emmm", "就")


@dataclass(frozen=True)
class ProductText:
    """What text templates may say about a product."""

    name: str
    short: str
    noun: str
    brand: str
    top: str
    price_yuan: int


class _Slots(dict[str, str]):
    """Template slots: known values first, random fillers for the rest."""

    def __init__(self, rnd: random.Random, known: dict[str, str]) -> None:
        super().__init__(known)
        self._rnd = rnd

    def __missing__(self, key: str) -> str:
        bank = pr.FILL.get(key)
        return self._rnd.choice(bank) if bank else ""


def fill(rnd: random.Random, template: str, known: dict[str, str]) -> str:
    """Fill ``{slot}`` placeholders from ``known`` or the shared filler banks."""
    return template.format_map(_Slots(rnd, known))


def _product_slots(product: ProductText | None) -> dict[str, str]:
    if product is None:
        return {}
    return {"product": product.short, "type": product.noun, "brand": product.brand,
            "price": str(product.price_yuan)}


def _join_clauses(rnd: random.Random, clauses: Sequence[str], tails: Sequence[str]) -> str:
    """Join clauses with Chinese commas/full stops and end with a tail mark or emoji."""
    parts = [c for c in clauses if c]
    out = ""
    for i, part in enumerate(parts):
        out += part
        if i < len(parts) - 1 and part[-1] not in CLOSING_MARKS:
            out += rnd.choice(("，", "，", "。"))
    tail = rnd.choice(tails)
    if not out or out[-1] in CLOSING_MARKS:
        return out + (tail if tail not in ("", "。") else "")
    return out + (tail if tail not in ("",) else "。")


def _aspect_phrases(bank: pr.Bank, aspect: str, top: str) -> list[str]:
    by_top = bank.get(aspect, {})
    return list(by_top.get(top, ())) + list(by_top.get("*", ()))


def _aspects(rnd: random.Random, top: str, k: int, bank: pr.Bank, avoid: set[str]) -> list[str]:
    """``k`` phrases about distinct aspects (e.g. 质量, 物流) of a product of category ``top``."""
    names = [a for a in pr.ASPECTS_BY_TOP[top] if a not in avoid and _aspect_phrases(bank, a, top)]
    chosen = rnd.sample(names, min(k, len(names)))
    avoid.update(chosen)
    return [rnd.choice(_aspect_phrases(bank, a, top)) for a in chosen]


def review_text(rnd: random.Random, rating: int, product: ProductText) -> str:
    """A review whose tone matches ``rating`` (1-5) and that talks about product aspects."""
    known = _product_slots(product)
    if product.top == "baby":
        known["who"] = rnd.choice(pr.BABY_WHO)
    used: set[str] = set()
    top = product.top
    if rating == 5 and rnd.random() < 0.12:
        return rnd.choice(pr.SHORT_POS) + rnd.choice(("。", "！", "～", "👍"))
    if rating >= 4:
        pros = _aspects(rnd, top, rnd.randint(2, 3), pr.POSITIVE, used)
        clauses = [rnd.choice(pr.OPEN_POS), *pros]
        if rating == 4:
            cons = _aspects(rnd, top, 1, pr.NEGATIVE, used)
            clauses += [rnd.choice(pr.BUT) + c for c in cons]
        clauses.append(rnd.choice(pr.CLOSE_POS if rating == 5 else pr.CLOSE_MID))
        return fill(rnd, _join_clauses(rnd, clauses, pr.TAIL_POS), known)
    if rating == 3:
        clauses = [rnd.choice(pr.OPEN_MID), *_aspects(rnd, top, 1, pr.POSITIVE, used),
                   *_aspects(rnd, top, 1, pr.NEGATIVE, used), rnd.choice(pr.NEUTRAL),
                   rnd.choice(pr.CLOSE_MID)]
        return fill(rnd, _join_clauses(rnd, clauses, ("", "～")), known)
    clauses = [rnd.choice(pr.OPEN_NEG), *_aspects(rnd, top, rnd.randint(2, 3), pr.NEGATIVE, used),
               rnd.choice(pr.CLOSE_NEG)]
    return fill(rnd, _join_clauses(rnd, clauses, pr.TAIL_NEG), known)


def burst_review_text(rnd: random.Random, issue: str, product: ProductText, batch: str) -> str:
    """A 1-2 star review about the planted burst ``issue`` (e.g. 过敏) of one product batch."""
    known = {**_product_slots(product), "batch": batch}
    lines = rnd.sample(pr.BURST_ISSUES[issue], rnd.randint(2, 3))
    clauses = [rnd.choice(pr.BURST_OPEN), *lines, rnd.choice(pr.BURST_CLOSE)]
    return fill(rnd, _join_clauses(rnd, clauses, pr.TAIL_NEG), known)


def _sentence(text: str) -> str:
    return text if text and text[-1] in CLOSING_MARKS else text + "。"


def _post_known(rnd: random.Random, top: str, product: ProductText | None,
                brand: str, noun: str) -> dict[str, str]:
    known = {"topic": rnd.choice(ps.TOPICS[top]), "scene": rnd.choice(ps.SCENES[top]),
             "story": rnd.choice(ps.STORIES[top]), "n": str(rnd.randint(3, 7)),
             "score": str(rnd.randint(6, 9)), "verdict": rnd.choice(ps.VERDICTS),
             "brand": brand, "type": noun, "product": brand + noun}
    known.update(_product_slots(product))
    return known


def _body_sentences(rnd: random.Random, kind: str, top: str,
                    product: ProductText | None) -> list[str]:
    facts, stories = ps.FACTS[top], ps.EXPERIENCES[top]
    if kind == "knowledge":
        body = rnd.sample(facts, rnd.randint(2, 3)) + rnd.sample(stories, rnd.randint(1, 2))
        rnd.shuffle(body)
        if rnd.random() < 0.4:
            body = [f"{i + 1}. {_sentence(s)}" for i, s in enumerate(body)]
        return body
    if kind == "scenario":
        body = rnd.sample(stories, 2) + rnd.sample(ps.REFLECTIONS, rnd.randint(0, 1))
        if product is not None:
            body += _aspects(rnd, top, 2, pr.POSITIVE, set())
        return body + rnd.sample(facts, 1)
    if kind == "review":
        used: set[str] = set()
        pros = _aspects(rnd, top, rnd.randint(2, 3), pr.POSITIVE, used)
        cons = _aspects(rnd, top, 1, pr.NEGATIVE, used)
        return [rnd.choice(ps.REVIEW_PROS) + "，".join(pros),
                rnd.choice(ps.REVIEW_CONS) + "，".join(cons), *rnd.sample(stories, 1)]
    picked = rnd.sample(stories, rnd.randint(2, 3)) + rnd.sample(ps.REFLECTIONS, rnd.randint(1, 2))
    rnd.shuffle(picked)
    return [picked[0]] + [rnd.choice(ps.STORY_LINKS) + s for s in picked[1:]]


def post_text(rnd: random.Random, kind: str, top: str, product: ProductText | None,
              brand: str, noun: str) -> tuple[str, str]:
    """``(title, body)`` of a post of content type ``kind`` about category ``top``.

    ``brand`` and ``noun`` (e.g. 面霜) are used when the post is not about one ``product``.
    """
    known = _post_known(rnd, top, product, brand, noun)
    title = fill(rnd, rnd.choice(ps.TITLES[kind]), known)
    parts = [rnd.choice(ps.INTROS[kind]), *_body_sentences(rnd, kind, top, product)]
    if product is not None and kind != "review" and rnd.random() < 0.6:
        parts.insert(rnd.randint(1, len(parts)), rnd.choice(MENTIONS))
    parts.append(rnd.choice(ps.OUTROS[kind]))
    sep = "\n" if parts[1][:2] == "1." else ""
    body = sep.join(_sentence(fill(rnd, p, known)) for p in parts)
    return title, body


def comment_text(rnd: random.Random, top: str, product: ProductText | None) -> str:
    """A short comment under a post about category ``top``."""
    bank = ps.COMMENTS_BY_TOP[top] if rnd.random() < 0.4 else ps.COMMENTS_GENERIC
    text = rnd.choice(ps.COMMENT_PREFIX) + rnd.choice(bank)
    known = _product_slots(product) or {"brand": "这个牌子"}
    return fill(rnd, text, known) + rnd.choice(ps.COMMENT_TAIL)


def _edit_once(rnd: random.Random, text: str) -> str:
    op = rnd.random()
    pos = rnd.randrange(1, max(2, len(text)))
    if op < 0.35:
        for word, other in rnd.sample(list(SYNONYMS.items()), len(SYNONYMS)):
            at = text.find(word, rnd.randrange(len(text)))
            if at >= 0:
                return text[:at] + other + text[at + len(word):]
    if op < 0.6:
        return text[:pos] + rnd.choice(INSERTS) + text[pos:]
    if op < 0.8 and text[pos:pos + 1] in ("，", "。"):
        return text[:pos] + rnd.choice(("！", "，", "～", ",")) + text[pos + 1:]
    return text[:pos] + text[pos + 1:] if len(text) > 20 else text + "！"


def perturb(rnd: random.Random, text: str, edits: int) -> str:
    """A near-copy of ``text`` with ``edits`` small character edits (swaps, inserts, deletes)."""
    for _ in range(edits):
        text = _edit_once(rnd, text)
    return text


def nickname(rnd: random.Random) -> str:
    """A colloquial Chinese platform nickname such as 爱吃草莓的小鱼."""
    roll = rnd.random()
    if roll < 0.45:
        base = rnd.choice(pp.NICK_ADJ) + rnd.choice(pp.NICK_NOUN)
    elif roll < 0.7:
        base = rnd.choice(pp.NICK_STANDALONE)
    elif roll < 0.85:
        base = rnd.choice(pp.NICK_NOUN) + str(rnd.randint(1975, 2008))
    else:
        base = rnd.choice(pp.NICK_STANDALONE) + str(rnd.randint(1, 999))
    return base + rnd.choice(pp.NICK_SUFFIX)


def creator_name(rnd: random.Random) -> str:
    """A creator display name such as 成分党阿May笔记."""
    prefix, core = rnd.choice(pp.CREATOR_PREFIX), rnd.choice(pp.CREATOR_CORE)
    return prefix + core + rnd.choice(pp.CREATOR_SUFFIX)


def address(rnd: random.Random, city: str) -> str:
    """A plausible street address in ``city``."""
    district = rnd.choice(pp.CITIES[city][1])
    road = rnd.choice(pp.ROAD_STEMS) + rnd.choice(pp.ROAD_KINDS)
    estate = rnd.choice(pp.ESTATE_STEMS) + rnd.choice(pp.ESTATE_KINDS)
    building, unit = rnd.randint(1, 32), rnd.randint(1, 4)
    room = f"{rnd.randint(1, 33)}{rnd.randint(1, 4):02d}"
    return (f"{city}市{district}{road}{rnd.randint(1, 1999)}号{estate}"
            f"{building}栋{unit}单元{room}室")
