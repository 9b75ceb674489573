"""Keyword extraction: TF-IDF over tokeniser words with an idf fitted on a corpus.

Candidates are the tokeniser's words (stop words already removed) minus numbers and single
characters, except single characters that carry an opinion or a property on their own
(``香``, ``贵``, ``油``...). The idf is smoothed, ``ln((1 + N) / (1 + df)) + 1``, so a word
never seen in the corpus gets the highest idf and a word in every document still counts.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

from shequ.core.errors import ValidationFailed
from shequ.text.tokenise import Tokeniser, default_tokeniser

__all__ = ["SINGLE_CHARACTER_WORDS", "KeywordExtractor", "top_terms"]

# Single characters that are words worth keeping in product talk.
SINGLE_CHARACTER_WORDS: frozenset[str] = frozenset(
    "好差 赞棒烂坑香臭甜苦辣咸酸鲜腥贵值快慢软硬薄厚油干湿痒痛疼"
    "闷爽润滑粘腻暖冷热凉潮吵亮暗重轻脆假真新旧坏破漏扎刺糙丑美"
    "胖瘦紧松稳卡晕烫冰馊霉")
_NUMBER = re.compile(r"[\d.,%+\-]+|[零〇一二三四五六七八九十百千万亿两几]+")


def _candidates(tokeniser: Tokeniser, text: str) -> list[str]:
    return [token for token in tokeniser.tokens(text)
            if (len(token) >= 2 or token in SINGLE_CHARACTER_WORDS)
            and not _NUMBER.fullmatch(token)]


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValidationFailed("invalid_k", "must be a positive whole number", "k")
    return k


def _check_documents(documents: Iterable[str]) -> list[str]:
    if isinstance(documents, str):
        raise ValidationFailed("invalid_documents", "must be a list of texts, not one text",
                               "documents")
    checked = list(documents)
    for index, document in enumerate(checked):
        if not isinstance(document, str):
            raise ValidationFailed("invalid_document",
                                   f"must be a string, not {type(document).__name__}",
                                   f"documents[{index}]")
    return checked


class KeywordExtractor:
    """TF-IDF keywords of a text against the idf of a fitted corpus."""

    def __init__(self, tokeniser: Tokeniser | None = None) -> None:
        self.tokeniser = tokeniser if tokeniser is not None else default_tokeniser()
        self.document_count = 0
        self.document_frequency: dict[str, int] = {}

    @property
    def fitted(self) -> bool:
        """True once ``fit`` has seen at least one document."""
        return self.document_count > 0

    def candidates(self, text: str) -> list[str]:
        """The candidate words of ``text`` in order (what ``fit`` and ``weights`` count)."""
        if not isinstance(text, str):
            raise ValidationFailed("invalid_text", f"must be a string, not {type(text).__name__}",
                                   "text")
        return _candidates(self.tokeniser, text)

    def fit(self, documents: Iterable[str]) -> KeywordExtractor:
        """Count in how many of ``documents`` each candidate word occurs (replaces a prior fit)."""
        checked = _check_documents(documents)
        return self.fit_candidates(_candidates(self.tokeniser, document) for document in checked)

    def fit_candidates(self, documents: Iterable[Sequence[str]]) -> KeywordExtractor:
        """``fit`` over documents already split by ``candidates`` (tokenise each text once)."""
        frequency: Counter[str] = Counter()
        count = 0
        for words in documents:
            frequency.update(set(words))
            count += 1
        self.document_count = count
        self.document_frequency = dict(frequency)
        return self

    def idf(self, word: str) -> float:
        """Smoothed inverse document frequency of ``word`` (normalised token form)."""
        if not self.fitted:
            raise ValidationFailed("keywords_not_fitted",
                                   "fit the keyword extractor on a corpus first", "documents")
        frequency = self.document_frequency.get(word, 0)
        return math.log((1 + self.document_count) / (1 + frequency)) + 1.0

    def weights(self, text: str) -> dict[str, float]:
        """TF-IDF weight of every candidate word of ``text`` (term frequency × idf)."""
        return self.weights_of(self.candidates(text))

    def weights_of(self, words: Sequence[str]) -> dict[str, float]:
        """``weights`` of a text already split by ``candidates``."""
        counts = Counter(words)
        total = sum(counts.values())
        return {word: count / total * self.idf(word) for word, count in counts.items()}

    def extract(self, text: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` highest-weighted words of ``text``, best first (ties by word)."""
        return self.extract_from(self.candidates(text), k)

    def extract_from(self, words: Sequence[str], k: int = 10) -> list[tuple[str, float]]:
        """``extract`` for a text already split by ``candidates``."""
        _check_k(k)
        ranked = sorted(self.weights_of(words).items(), key=lambda item: (-item[1], item[0]))
        return ranked[:k]


def top_terms(documents: Iterable[str], k: int = 20, *,
              extractor: KeywordExtractor | None = None) -> list[tuple[str, float]]:
    """The ``k`` words with the highest mean TF-IDF weight over ``documents``, best first.

    With a fitted ``extractor`` (say, on every post) the idf comes from that background
    corpus, so the result is what sets ``documents`` apart from it; without one the idf is
    fitted on ``documents`` themselves.
    """
    _check_k(k)
    checked = _check_documents(documents)
    if extractor is None:
        extractor = KeywordExtractor().fit(checked)
    if not checked:
        return []
    totals: Counter[str] = Counter()
    for document in checked:
        totals.update(extractor.weights(document))
    ranked = sorted(((word, weight / len(checked)) for word, weight in totals.items()),
                    key=lambda item: (-item[1], item[0]))
    return ranked[:k]
