"""Planted content-safety violations: a small share of the demo's comments is replaced by
the spam and abuse a real community sees (contact details that lead buyers off the
platform, 刷单 and gambling ads, insults), some of it disguised, and the e-commerce terms a
shop adds to its lexicon to catch them. Drawn from their own random streams, so the rest
of the demo is unchanged."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

Row = dict[str, Any]

VIOLATION_SHARE = 0.015  # of comments
MIN_VIOLATIONS = 8

# The terms an e-commerce shop adds on top of the shipped lexicon (term, category,
# severity): spam and fraud the general-purpose lists miss.
SHOP_TERMS: tuple[tuple[str, str, int], ...] = (
    ("刷单", "fraud", 3), ("兼职日结", "fraud", 3), ("刷信誉", "fraud", 3),
    ("赌场", "gambling", 3), ("彩金", "gambling", 3), ("网赌", "gambling", 3),
    ("招代理", "ads", 2), ("一件代发", "ads", 2), ("内部价", "ads", 1), ("免费领取", "ads", 1),
    ("低价出", "ads", 1), ("脑残", "abuse", 2), ("滚犊子", "abuse", 2), ("智障", "abuse", 2),
)

# Ordinary words of this shop that the shipped lexicon lists (咖啡因 is on a drugs list;
# the shop sells coffee and tea), added to its allow-list.
SHOP_ALLOW: tuple[str, ...] = ("咖啡因",)

# kind -> templates; {wx} a WeChat id, {qq} a QQ number, {phone} a mobile number, {url}.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "contact": (
        "需要的加我微信 {wx}，同款有货",
        "想要的加V：{wx}，比旗舰店便宜",
        "有需要的打我电话 {phone}",
        "扣扣 {qq} 私聊，带你入门",
        "私我 ➕微 {wx}",
    ),
    "ads": (
        "{product}内部价拿货，加我微信 {wx}",
        "招代理，一件代发，V信 {wx}",
        "免费领取试用装，点链接 {url}",
        "{product}低价出，扣扣 {qq}",
    ),
    "fraud": (
        "兼职刷单日结三百，加微信 {wx}",
        "刷*单 刷*信*誉 找我，电话 {phone}",
    ),
    "gambling": (
        "网赌上岸经验分享 {url}",
        "澳门赌场线上开业，注册送彩金 {url}",
    ),
    "abuse": (
        "你个傻逼懂个屁",
        "脑残才买这个，楼主就是个托",
        "楼上智障吧，滚犊子",
        "傻 逼 卖家，退钱",
    ),
}
KIND_WEIGHTS = {"contact": 0.35, "ads": 0.25, "fraud": 0.1, "gambling": 0.1, "abuse": 0.2}


def _fill(rnd: random.Random, template: str, product: str) -> str:
    letters = "abcdefghjkmnpqrstuvwxyz"
    wx = "".join(rnd.choice(letters) for _ in range(rnd.randint(2, 4))) + str(
        rnd.randint(1000, 99999))
    return template.format(
        wx=wx, qq=rnd.randint(10_000_000, 999_999_999),
        phone=f"1{rnd.choice('3578')}{rnd.randint(0, 9)}{rnd.randint(10_000_000, 99_999_999)}",
        url=f"http://{rnd.choice(letters)}{rnd.randint(10, 999)}.{rnd.choice(['cn', 'com', 'cc'])}",
        product=product)


def plant_violations(rng: np.random.Generator, rnd: random.Random, comments: list[Row],
                     product_names: list[str]) -> dict[str, Any]:
    """Rewrite a share of ``comments`` in place; what was planted, for the demo's checks."""
    if not comments:
        return {"count": 0, "share": VIOLATION_SHARE, "comments": []}
    n = min(len(comments), max(MIN_VIOLATIONS, round(len(comments) * VIOLATION_SHARE)))
    chosen = np.sort(rng.choice(len(comments), size=n, replace=False))
    kinds = list(KIND_WEIGHTS)
    weights = np.array([KIND_WEIGHTS[k] for k in kinds])
    picked = rng.choice(len(kinds), size=n, p=weights / weights.sum())
    planted = []
    for index, kind_index in zip(chosen.tolist(), picked.tolist(), strict=True):
        kind = kinds[kind_index]
        text = _fill(rnd, rnd.choice(TEMPLATES[kind]), rnd.choice(product_names))
        comments[index]["text"] = text
        planted.append({"comment_external_id": comments[index]["external_id"], "kind": kind,
                        "text": text})
    return {"count": n, "share": VIOLATION_SHARE, "comments": planted,
            "shop_terms": [list(t) for t in SHOP_TERMS], "shop_allow": list(SHOP_ALLOW)}
