"""MinHash LSH near-duplicate detection: accuracy, determinism, storage, originality."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shequ.core.errors import ValidationFailed
from shequ.text.minhash import MinHashIndex, estimated_similarity
from shequ.text.normalise import normalise

# A few hundred common characters: random texts over them share some shingles, like reviews.
COMMON = ("的一是了我不人在他有这个上们来到时大地为子中你说生国年着就那和要她出也得里后自以会"
          "家可下而过天去能对小多然于心学么之都好看起发当没成只如事把还用第样道想作种开美总从"
          "无情己面最女但现前些所同日手又行意动方期它头经长儿回位分爱老因很给名法间斯知世什两"
          "次使身者被高已亲其进此话常与活正感见明问力理尔点文几定本公特做外孩相西果走将月十实"
          "向声车全信重三机工物气每并别真打太新比才便夫再书部水像眼等体却加电主界门利海受听表")
SENTENCE_END = "。"


def random_text(rng: random.Random, sentences: int = 6) -> str:
    return "".join("".join(rng.choice(COMMON) for _ in range(rng.randint(8, 20))) + SENTENCE_END
                   for _ in range(sentences))


def change_characters(rng: random.Random, text: str, count: int) -> str:
    characters = list(text)
    for position in rng.sample(range(len(characters)), count):
        characters[position] = rng.choice(COMMON)
    return "".join(characters)


def swap_sentences(rng: random.Random, text: str) -> str:
    sentences = [part + SENTENCE_END for part in text.split(SENTENCE_END) if part]
    first, second = rng.sample(range(len(sentences)), 2)
    sentences[first], sentences[second] = sentences[second], sentences[first]
    return "".join(sentences)


def true_jaccard(left: str, right: str, size: int) -> float:
    def shingles(text: str) -> set[str]:
        compact = "".join(normalise(text).split())
        return {compact[i:i + size] for i in range(len(compact) - size + 1)}

    first, second = shingles(left), shingles(right)
    return len(first & second) / len(first | second)


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    rng = random.Random(11)
    return [random_text(rng) for _ in range(400)]


@pytest.fixture(scope="module")
def index(corpus: list[str]) -> MinHashIndex:
    built = MinHashIndex()
    built.add_many((f"post-{number}", text) for number, text in enumerate(corpus))
    return built


def test_identical_and_normalised_texts_match_fully(index: MinHashIndex, corpus: list[str]) -> None:
    assert index.query(corpus[7])[0] == index.query(corpus[7], k=1)[0]
    best = index.query(corpus[7])[0]
    assert best.key == "post-7"
    assert best.similarity == 1.0
    fresh = MinHashIndex()
    fresh.add("simplified", "头发干燥，用了这款面霜以后好多了！")
    match = fresh.query("頭髮乾燥，用了這款面霜以後好多了！")[0]
    assert (match.key, match.similarity) == ("simplified", 1.0)
    assert fresh.query("头发 干燥 ，用了这款面霜以后好多了 !")[0].similarity == 1.0


def test_planted_near_duplicates_are_found(index: MinHashIndex, corpus: list[str]) -> None:
    rng = random.Random(5)
    for number in range(0, 400, 20):
        edited = change_characters(rng, corpus[number], 3)
        assert index.query(edited, k=1)[0].key == f"post-{number}"
        swapped = swap_sentences(rng, corpus[number])
        match = index.query(swapped, k=1)[0]
        assert match.key == f"post-{number}"
        assert match.similarity > 0.7


def test_unrelated_texts_are_not_returned(index: MinHashIndex) -> None:
    rng = random.Random(99)
    for _ in range(40):
        assert index.query(random_text(rng)) == []


def test_estimates_are_close_to_true_jaccard() -> None:
    """Unbiased, with the binomial spread sqrt(J(1 - J) / 128): ±0.1 holds for ~98 % of pairs."""
    rng = random.Random(3)
    estimator = MinHashIndex()
    errors, scaled = [], []
    for _ in range(200):
        base = random_text(rng, sentences=8)
        other = change_characters(rng, base, rng.randint(1, 60))
        estimate = float((estimator.signature(base) == estimator.signature(other)).mean())
        truth = true_jaccard(base, other, estimator.shingle)
        errors.append(estimate - truth)
        scaled.append((estimate - truth) / np.sqrt(truth * (1 - truth) / 128))
    within = np.mean(np.abs(errors) <= 0.1)
    assert within >= 0.95
    assert abs(float(np.mean(errors))) < 0.01
    assert 0.8 < float(np.std(scaled)) < 1.25


def test_exact_mode_ranks_by_true_jaccard(corpus: list[str]) -> None:
    exact = MinHashIndex(exact=True)
    exact.add_many(enumerate(corpus[:50]))
    edited = change_characters(random.Random(1), corpus[10], 4)
    match = exact.query(edited)[0]
    assert match.key == 10
    assert match.similarity == pytest.approx(true_jaccard(corpus[10], edited, 3))
    with pytest.raises(ValidationFailed) as raised:
        exact.add(99, exact.signature("只有签名"))
    assert raised.value.code == "text_required"


def test_signatures_are_deterministic_across_processes() -> None:
    text = "頭髮乾燥，用了这款面霜以后好多了！ＳＰＦ５０ 很好用😀"
    here = MinHashIndex().signature(text)
    script = ("from shequ.text.minhash import MinHashIndex;"
              f"print(MinHashIndex().signature({text!r}).astype('<u4').tobytes().hex())")
    environment = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           check=True, env=environment).stdout.strip()
    assert other == here.astype("<u4").tobytes().hex()
    assert here.dtype == np.uint32
    assert here.shape == (128,)
    batch = MinHashIndex().signatures([text, "另一段文字"])
    assert (batch[0] == here).all()


def test_signatures_round_trip_through_bytes_and_rebuild(index: MinHashIndex,
                                                         corpus: list[str]) -> None:
    stored = {f"post-{n}": index.signature_to_bytes(index.signature(text))
              for n, text in enumerate(corpus[:100])}
    assert {len(data) for data in stored.values()} == {10 + 4 * 128}
    rebuilt = MinHashIndex()
    rebuilt.add_many(stored.items())
    assert len(rebuilt) == 100
    edited = change_characters(random.Random(2), corpus[42], 3)
    assert rebuilt.query(edited) == index.query(edited)[:len(rebuilt.query(edited))]
    assert rebuilt.query(edited)[0].key == "post-42"
    with pytest.raises(ValidationFailed) as raised:
        MinHashIndex(shingle=4).signature_from_bytes(stored["post-1"])
    assert raised.value.code == "incompatible_signature"
    assert "shingle=3" in raised.value.detail
    with pytest.raises(ValidationFailed):
        rebuilt.signature_from_bytes(b"MH" + bytes(20))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2**32 - 1), min_size=64, max_size=64),
       st.integers(min_value=1, max_value=6))
def test_bytes_round_trip_property(values: list[int], shingle: int) -> None:
    codec = MinHashIndex(num_perm=64, bands=16, shingle=shingle)
    signature = np.array(values, dtype=np.uint32)
    assert (codec.signature_from_bytes(codec.signature_to_bytes(signature)) == signature).all()


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet=COMMON + "ABC ，!", min_size=1, max_size=60).filter(
    lambda text: "".join(normalise(text).split()) != ""))
def test_an_added_text_finds_itself(text: str) -> None:
    index = MinHashIndex()
    index.add("self", text)
    assert index.query(text) == [index.query(text)[0]]
    assert index.query(text)[0].similarity == 1.0


def test_originality_counts_only_earlier_posts(corpus: list[str]) -> None:
    feed = MinHashIndex()
    original = corpus[3]
    copy = change_characters(random.Random(4), original, 2)
    feed.add("original", original)
    assert feed.originality(copy).score < 0.2
    feed.add("copy", copy)
    assert feed.originality(original, exclude_key="original").score == 1.0
    result = feed.originality(copy, exclude_key="copy")
    assert [source.key for source in result.sources] == ["original"]
    assert result.score == pytest.approx(1 - result.sources[0].similarity)
    assert feed.originality(corpus[200]).score > 0.8


def test_replace_and_remove(corpus: list[str]) -> None:
    feed = MinHashIndex()
    feed.add(1, corpus[0])
    feed.add(1, corpus[1])  # edited post: the new text replaces the old one
    assert len(feed) == 1
    assert feed.query(corpus[0]) == []
    assert feed.query(corpus[1])[0].key == 1
    feed.remove(1)
    assert len(feed) == 0
    assert 1 not in feed
    assert feed.query(corpus[1]) == []
    with pytest.raises(ValidationFailed) as raised:
        feed.remove(1)
    assert raised.value.code == "unknown_key"


def test_short_texts_and_bad_input() -> None:
    feed = MinHashIndex()
    feed.add("short", "好")
    assert feed.query("好")[0].similarity == 1.0
    with pytest.raises(ValidationFailed) as raised:
        feed.add("blank", " \t ")
    assert (raised.value.code, raised.value.attr) == ("empty_text", "text")
    with pytest.raises(ValidationFailed) as raised:
        feed.add_many([("a", "好的"), ("b", 3)])  # type: ignore[list-item]
    assert raised.value.attr == "items[1].value"
    with pytest.raises(ValidationFailed) as raised:
        feed.add_many([("a", "好的"), ("b", "好"), ("c", " \n ")])
    assert (raised.value.code, raised.value.attr) == ("empty_text", "items[2].value")
    with pytest.raises(ValidationFailed) as raised:
        feed.signatures(["好", ""])
    assert raised.value.attr == "texts[1]"
    with pytest.raises(ValidationFailed) as raised:
        MinHashIndex(num_perm=128, bands=30)
    assert raised.value.attr == "bands"
    with pytest.raises(ValidationFailed) as raised:
        feed.query("好", k=0)
    assert raised.value.attr == "k"
    with pytest.raises(ValidationFailed) as raised:
        feed.add("wrong", np.zeros(5, dtype=np.uint32))
    assert raised.value.attr == "value"


def test_band_keys_for_database_storage(corpus: list[str]) -> None:
    index = MinHashIndex()
    signatures = index.signatures(corpus[:3])
    keys = index.band_keys(signatures)
    assert keys.shape == (3, 32)
    assert keys.dtype == np.int64
    assert (index.band_keys(signatures[:1]) == keys[:1]).all()
    same_values = np.zeros((1, 128), dtype=np.uint32)
    assert len(set(index.band_keys(same_values)[0].tolist())) == 32  # salted per band
    near = index.signature(change_characters(random.Random(8), corpus[0], 2))
    assert set(index.band_keys(near[None, :])[0].tolist()) & set(keys[0].tolist())
    assert estimated_similarity(signatures[0], signatures[0]) == 1.0
    assert estimated_similarity(signatures[0], near) > 0.7
    with pytest.raises(ValidationFailed):
        index.band_keys(signatures[:, :64])
