"""Normalisation rules, the span map back to the original text, and their properties."""

from __future__ import annotations

import csv
import itertools
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shequ.core.errors import ValidationFailed
from shequ.text.normalise import normalise, normalise_with_spans, strip_emoji

# Text drawn from the blocks that matter: ASCII, full-width forms, CJK (traditional and
# simplified), combining marks, Hangul, emoji and their joiners, assorted whitespace.
_ALPHABET = st.one_of(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E),
    st.characters(min_codepoint=0xFF01, max_codepoint=0xFF65),
    st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),
    st.sampled_from(list("頭髮乾燥藉口反覆瞭解沈默薴著說們這個")),
    st.characters(min_codepoint=0x0300, max_codepoint=0x036F),
    st.characters(min_codepoint=0x1100, max_codepoint=0x11FF),
    st.characters(min_codepoint=0x1F300, max_codepoint=0x1F64F),
    st.sampled_from(["\u200d", "\ufe0f", " ", "\t", "\n", "\u3000", "\u00a0", "İ", "Σ", "ﬁ",
                     "①", "㎏", "ß", "K", "Å", "!", "好"]),
)
TEXTS = st.text(alphabet=_ALPHABET, max_size=40)
ANY_TEXTS = st.text(max_size=30)
REVIEWS_CSV = Path("sentiment/online_shopping_10_cats/online_shopping_10_cats.csv")


@pytest.mark.parametrize(("text", "expected"), [
    ("ＡＢＣ１２３！？", "abc123!?"),
    ("頭髮乾燥，適合油皮", "头发干燥,适合油皮"),
    ("我們藉口反覆瞭解", "我们借口反复了解"),
    ("好好好好好吃", "好好吃"),
    ("太棒了!!!!!", "太棒了!!"),
    ("  很  好\t\n用\u3000啊  ", "很 好 用 啊"),
    ("Hello WORLD", "hello world"),
    ("赞👍👍👍", "赞👍👍"),
    ("", ""),
    ("薴", "苎"),
])
def test_rules(text: str, expected: str) -> None:
    assert normalise(text) == expected


def test_emoji_kept_by_default_and_removable() -> None:
    text = "好用😀👍🏻 推荐❤️ 👨\u200d👩\u200d👧"
    assert "😀" in normalise(text)
    assert normalise(text, keep_emoji=False) == "好用 推荐"
    assert strip_emoji("好用😀👍🏻!") == "好用!"


def test_spans_point_at_the_original_characters() -> None:
    text = "ＡＢ頭髮  好好好好ﬁ"
    out, spans = normalise_with_spans(text)
    assert out == "ab头发 好好fi"
    assert spans == [0, 1, 2, 3, 5, 6, 7, 10, 10]
    # every output character comes from an original one that normalises to it
    for character, index in zip(out, spans, strict=True):
        if character != " ":
            assert character in normalise(text[index])


def test_spans_after_expansion_and_composition() -> None:
    out, spans = normalise_with_spans("㎏e\u0301x")
    assert out == "kgéx"
    assert spans == [0, 0, 1, 3]


def test_bad_input_names_the_field() -> None:
    with pytest.raises(ValidationFailed) as raised:
        normalise(None)  # type: ignore[arg-type]
    assert raised.value.attr == "text"
    assert "string" in raised.value.detail


@settings(max_examples=300, deadline=None)
@given(TEXTS)
def test_idempotent(text: str) -> None:
    once = normalise(text)
    assert normalise(once) == once
    assert normalise(once, keep_emoji=False) == normalise(text, keep_emoji=False)


@settings(max_examples=300, deadline=None)
@given(st.one_of(TEXTS, ANY_TEXTS), st.booleans())
def test_span_map_is_well_formed(text: str, keep_emoji: bool) -> None:
    out, spans = normalise_with_spans(text, keep_emoji=keep_emoji)
    assert out == normalise(text, keep_emoji=keep_emoji)
    assert len(spans) == len(out)
    assert all(0 <= index < len(text) for index in spans)
    assert spans == sorted(spans)


@settings(max_examples=200, deadline=None)
@given(ANY_TEXTS)
def test_idempotent_on_any_unicode(text: str) -> None:
    once = normalise(text)
    assert normalise(once) == once


def test_real_reviews_agree_with_the_span_version() -> None:
    from conftest import EVAL_DATA

    path = EVAL_DATA / REVIEWS_CSV
    if not path.exists():
        pytest.skip(f"real reviews not found at {path}")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reviews = [row["review"] for row in itertools.islice(csv.DictReader(handle), 1500)]
    for review in reviews:
        out, spans = normalise_with_spans(review)
        assert out == normalise(review)
        assert normalise(out) == out
        assert len(spans) == len(out)


def test_phrase_only_traditional_characters_are_complete(tmp_path: Path) -> None:
    """Every t2s phrase that converts contains a character that triggers OpenCC."""
    import opencc

    from shequ.text import normalise as module

    share = Path(opencc.__file__).parent / "clib" / "share" / "opencc"
    tool = Path(opencc.__file__).parent / "clib" / "bin" / "opencc_dict"
    if not tool.exists() or shutil.which(str(tool)) is None:
        pytest.skip("opencc_dict is not shipped with this opencc build")
    listing = tmp_path / "phrases.txt"
    subprocess.run([str(tool), "-i", str(share / "TSPhrases.ocd2"), "-o", str(listing),
                    "-f", "ocd2", "-t", "text"], check=True, capture_output=True)
    converter = opencc.OpenCC("t2s")
    phrases = [line.split("\t")[0] for line in listing.read_text(encoding="utf-8").splitlines()]
    assert len(phrases) > 100
    for phrase in phrases:
        if converter.convert(phrase) != phrase:
            assert module._SIMPLIFIER.needs(phrase), phrase


def test_trigger_characters_found_from_the_dictionary() -> None:
    import opencc

    from shequ.text import normalise as module

    trigger = module._SIMPLIFIER._load().trigger
    assert set(module._PHRASE_ONLY_TRADITIONAL) <= trigger
    assert {"頭", "髮", "們", "這"} <= trigger
    assert not {"头", "发", "们", "这", "好"} & trigger
    if opencc.__version__ == "1.1.9":
        assert len(trigger - set(module._PHRASE_ONLY_TRADITIONAL)) == 4105
