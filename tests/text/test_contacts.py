"""Contact and ad-spam detection: each kind, each obfuscation, original spans, no false hits."""

from __future__ import annotations

import csv
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import EVAL_DATA
from shequ.core.errors import ValidationFailed
from shequ.text import contacts
from shequ.text.contacts import KINDS, Contact, find_contacts

SHOP_REVIEWS = EVAL_DATA / "sentiment" / "online_shopping_10_cats" / "online_shopping_10_cats.csv"


def _one(text: str) -> tuple[str, str, str]:
    """The single contact in ``text`` as (kind, value, the original text it spans)."""
    found = find_contacts(text)
    assert len(found) == 1, found
    contact = found[0]
    return contact.kind, contact.value, text[contact.start:contact.end]


# ---- phones ----

@pytest.mark.parametrize(("text", "written"), [
    ("有需要联系我13812345678谢谢", "13812345678"),
    ("电话 138 1234 5678 谢谢", "138 1234 5678"),
    ("电话138-1234-5678", "138-1234-5678"),
    ("电话138.1234.5678", "138.1234.5678"),
    ("电话 1 3 8 1 2 3 4 5 6 7 8 速来", "1 3 8 1 2 3 4 5 6 7 8"),
    ("电话 138 - 1234 - 5678", "138 - 1234 - 5678"),
    ("打我１３８１２３４５６７８吧", "１３８１２３４５６７８"),
    ("联系 １３８－１２３４－５６７８", "１３８－１２３４－５６７８"),
    ("号码幺三八一二三四五六七八哦", "幺三八一二三四五六七八"),
    ("号码一三八〇〇〇〇五六七八", "一三八〇〇〇〇五六七八"),
    ("号码壹叁捌壹贰叁肆伍陆柒捌", "壹叁捌壹贰叁肆伍陆柒捌"),
    ("混写 一3八 1234 五六七八 呢", "一3八 1234 五六七八"),
    ("带区号 +86 138-1234-5678", "+86 138-1234-5678"),
    ("价格199 13812345678", "13812345678"),
])
def test_mobile_numbers_in_every_disguise(text: str, written: str) -> None:
    kind, value, span = _one(text)
    assert kind == "phone"
    assert span == written
    assert value in ("13812345678", "13800005678")


def test_repeated_digits_are_not_shortened() -> None:
    assert _one("靓号13888888888") == ("phone", "13888888888", "13888888888")


@pytest.mark.parametrize(("text", "value", "written"), [
    ("座机010-62345678", "010-62345678", "010-62345678"),
    ("电话(0571)88888888", "0571-88888888", "(0571)88888888"),
    ("电话 0755 2345678", "0755-2345678", "0755 2345678"),
    ("客服400-820-8820", "4008208820", "400-820-8820"),
])
def test_landlines_and_service_numbers(text: str, value: str, written: str) -> None:
    assert _one(text) == ("phone", value, written)


# ---- WeChat and QQ ----

@pytest.mark.parametrize("cue", ["微信", "薇信", "威信", "VX", "vx", "V信", "wx", "加V", "卫星",
                                 "🛰️", "v x", "wechat", "衛星", "Ｖｘ", "➕V", "+v", "加微",
                                 "➕微", "+薇"])
def test_wechat_cues(cue: str) -> None:
    text = f"好评！{cue}：Abc_123-x 拿货"
    assert _one(text) == ("wechat", "abc_123-x", "Abc_123-x")


@pytest.mark.parametrize("text", [
    "微信支付很方便",           # no id
    "微信:12345",              # ids start with a letter
    "微信 abc",                # too short
    "wxyz abcdefg",            # wx inside a word is no cue
    "微微一笑 abcdefg",         # 微 alone is no cue
])
def test_wechat_needs_a_cue_and_a_real_id(text: str) -> None:
    assert [c for c in find_contacts(text) if c.kind == "wechat"] == []


@pytest.mark.parametrize(("text", "value", "written"), [
    ("QQ:383161223", "383161223", "383161223"),
    ("加qq 383161223", "383161223", "383161223"),
    ("扣扣 一二三四五六", "123456", "一二三四五六"),
    ("球球号 98765", "98765", "98765"),
    ("企鹅号：123 456 789", "123456789", "123 456 789"),
    ("q号 12345", "12345", "12345"),
    ("QQ 13812345678", "13812345678", "13812345678"),  # a QQ cue wins over the phone
])
def test_qq_numbers(text: str, value: str, written: str) -> None:
    assert _one(text) == ("qq", value, written)


def test_qq_needs_5_to_11_digits() -> None:
    assert find_contacts("QQ 1234") == []
    assert find_contacts("qq群 123456789012") == []
    assert find_contacts("用qq微信聊天") == []


# ---- URLs and e-mail ----

@pytest.mark.parametrize(("text", "value", "written"), [
    ("看这里 https://shop.example.com/a?b=1 哈", "shop.example.com/a?b=1",
     "https://shop.example.com/a?b=1"),
    ("网址www.baidu.com", "www.baidu.com", "www.baidu.com"),
    ("网址WWW.BAIDU.COM", "www.baidu.com", "WWW.BAIDU.COM"),
    ("上 taobao.com 买", "taobao.com", "taobao.com"),
    ("上 abc点com 买", "abc.com", "abc点com"),
    ("上 abc點cn 买", "abc.cn", "abc點cn"),
    ("上 abc。com 买", "abc.com", "abc。com"),
    ("see example dot com/path", "example.com/path", "example dot com/path"),
    ("see example(dot)vip", "example.vip", "example(dot)vip"),
    ("打开 www 空格 example 空格 com", "www.example.com", "www 空格 example 空格 com"),
    ("打开 www example com 就行", "www.example.com", "www example com"),
    ("打开 ｗｗｗ．ｅｘａｍｐｌｅ．ｃｎ", "www.example.cn", "ｗｗｗ．ｅｘａｍｐｌｅ．ｃｎ"),
])
def test_urls_in_every_disguise(text: str, value: str, written: str) -> None:
    assert _one(text) == ("url", value, written)


@pytest.mark.parametrize(("text", "value", "written"), [
    ("邮箱 Abc123@QQ.com", "abc123@qq.com", "Abc123@QQ.com"),
    ("邮箱 abc123＠qq.com", "abc123@qq.com", "abc123＠qq.com"),
    ("邮箱 abc123艾特163点com", "abc123@163.com", "abc123艾特163点com"),
    ("mail john at gmail dot com", "john@gmail.com", "john at gmail dot com"),
    ("mail john(at)gmail.com", "john@gmail.com", "john(at)gmail.com"),
    ("邮箱 13812345678@163.com", "13812345678@163.com", "13812345678@163.com"),
])
def test_emails_and_nothing_inside_them(text: str, value: str, written: str) -> None:
    assert _one(text) == ("email", value, written)


# ---- several at once, spans, input ----

def test_several_contacts_by_original_offsets() -> None:
    text = "加V：shop_888x，或打１３８ １２３４ ５６７８，官网ｓｈｏｐ点ｃｏｍ，QQ:12345"
    found = find_contacts(text)
    assert [c.kind for c in found] == ["wechat", "phone", "url", "qq"]
    assert [text[c.start:c.end] for c in found] == [
        "shop_888x", "１３８ １２３４ ５６７８", "ｓｈｏｐ点ｃｏｍ", "12345"]
    assert found[1] == Contact("phone", "13812345678", found[1].start, found[1].end)
    assert all(c.kind in KINDS for c in found)
    assert found == sorted(found, key=lambda c: c.start)


@pytest.mark.parametrize("text", [
    "a." * 5000 + "x", "1 " * 5000, "1-" * 3000, "www " + "ab " * 5000, "a@" * 3000,
    "微信" + "-" * 5000, ("x@" + "a." * 6) * 500,
])
def test_long_hostile_input_stays_fast(text: str) -> None:
    started = time.perf_counter()
    assert find_contacts(text) == []
    assert time.perf_counter() - started < 1.0


def test_non_string_input_is_rejected() -> None:
    with pytest.raises(ValidationFailed) as caught:
        find_contacts(12345)  # type: ignore[arg-type]
    assert caught.value.code == "invalid_text"
    assert caught.value.attr == "text"


# ---- ordinary review text ----

@pytest.mark.parametrize("text", [
    "价格¥199，活动价199元，比上次便宜了20.5元",
    "2023-12-12 下单，2023.12.14 到货，12月15日 13:45 签收",
    "订单号13812345678，已经收到",
    "单号: 4008208820 物流很快",
    "订单号 2019 1234 5678 901 还没发货",
    "iPhone 15 Pro Max 256G，显卡 RTX 3080，骁龙8 Gen 2",
    "12片装，一共3盒，每盒100g，1.5米长",
    "2019年买的，用了3年了，一二三四五都好",
    "身份证号不用填，银行卡6222021234567890123也不用",
    "一一对应，十全十美，三三两两",
    "电池5000mAh，屏幕6.5英寸，分辨率2400x1080",
    "好用.com也是好用，好评点cn",
    "e.g. this is good, a.m. delivery, v1.2.3 firmware",
])
def test_ordinary_review_text_has_no_contact(text: str) -> None:
    assert find_contacts(text) == []


@pytest.mark.skipif(not SHOP_REVIEWS.exists(), reason="evaluation data not present")
def test_flag_rate_on_real_positive_reviews() -> None:
    reviews: list[str] = []
    with SHOP_REVIEWS.open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["label"] == "1":
                reviews.append(row["review"])
                if len(reviews) == 5000:
                    break
    assert len(reviews) == 5000
    flagged = sum(1 for review in reviews if find_contacts(review))
    # measured 11 / 5000 = 0.22 %, and every one of them a real contact left in a review
    assert flagged / len(reviews) <= 0.005


# ---- the folded text ----

@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.one_of(
    st.characters(codec="utf-8"),
    st.sampled_from(list("ＡＢｃ１２３，。！微信QQ①㈠ﬁİ𝐀𝟏ǅ\u0301\u200b🛰️")))))
def test_the_fast_fold_is_the_character_by_character_fold(text: str) -> None:
    assert contacts._fold(text) == contacts.fold_each(text)
