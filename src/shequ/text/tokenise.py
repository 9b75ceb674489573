"""Word tokenisation of normalised Chinese text with jieba and a domain dictionary.

A ``Tokeniser`` owns a private ``jieba.Tokenizer`` (never the process-global one), seeded
with jieba's default dictionary and then with domain terms (brands, product names,
ingredient words) at a high frequency, so ``沐光研`` or ``神经酰胺`` stay one token instead
of being split. ``domain_terms`` builds that term list from plain catalog data.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Any

from shequ.core.errors import ValidationFailed
from shequ.text.normalise import normalise

__all__ = [
    "DEFAULT_INGREDIENTS",
    "DOMAIN_FREQUENCY",
    "STOP_WORDS",
    "Tokeniser",
    "default_tokeniser",
    "domain_terms",
]

def _word_list(words: str) -> list[str]:
    """The space-separated words of a literal block (keeps long word lists readable)."""
    return words.split()


# jieba's dictionary has ~60M total frequency; common words sit at 10^4-10^5. A domain
# term at this frequency wins against any split of itself.
DOMAIN_FREQUENCY = 200_000
MAXIMUM_TERM_LENGTH = 24

# Common skincare, baby-food and food ingredient words (成分), in normalised form.
DEFAULT_INGREDIENTS: tuple[str, ...] = tuple(normalise(word) for word in _word_list(
    "烟酰胺 玻尿酸 透明质酸 透明质酸钠 视黄醇 视黄醛 a醇 神经酰胺 水杨酸 果酸 杏仁酸 壬二酸 "
    "积雪草 积雪草苷 角鲨烷 角鲨烯 维C 维生素C 维生素E 维生素B5 胶原蛋白 玻色因 二裂酵母 "
    "寡肽 多肽 蓝铜胜肽 传明酸 氨甲环酸 熊果苷 曲酸 光甘草定 依克多因 麦角硫因 虾青素 "
    "白藜芦醇 茶多酚 泛醇 尿囊素 甘油 乳木果油 荷荷巴油 马齿苋 红没药醇 甘草酸二钾 葡聚糖 "
    "氨基酸 乳酸菌 益生菌 益生元 酵素 叶黄素 DHA 乳铁蛋白 膳食纤维 乳清蛋白 赤藓糖醇 "
    "木糖醇 代糖 反式脂肪酸 代可可脂 果葡糖浆 麦芽糊精 山梨酸钾 防腐剂 香精 酒精 咖啡因 "
    "花青素 鱼油 辅酶Q10 褪黑素 二氧化钛 氧化锌"
))

# Function words, pronouns, particles and filler that carry no topic, in normalised form.
STOP_WORDS: frozenset[str] = frozenset(_word_list(
    "的 了 着 过 是 在 和 与 及 或 而 也 都 就 还 又 很 太 更 最 挺 蛮 非常 特别 比较 真的 "
    "我 你 他 她 它 我们 你们 他们 她们 它们 咱们 自己 大家 人家 别人 "
    "这 那 这个 那个 这些 那些 这样 那样 这么 那么 这种 那种 这里 那里 这儿 那儿 "
    "哪 哪个 哪里 什么 怎么 怎样 为什么 多少 几 谁 "
    "啊 吧 呢 吗 嘛 呀 哦 噢 哈 哈哈 嗯 哇 啦 咯 喔 诶 额 呃 唉 "
    "一 一个 一些 一下 一点 一直 一样 一次 有点 有些 "
    "不 没 没有 有 要 会 能 可以 可能 应该 就是 还是 但是 可是 不过 然后 所以 因为 如果 "
    "虽然 而且 并且 或者 以及 其实 然而 于是 因此 只是 只有 已经 正在 刚刚 终于 "
    "被 把 给 让 对 从 向 往 为 以 于 比 跟 同 由 "
    "上 下 里 中 后 前 时 时候 之后 之前 以后 以前 "
    "个 们 地 得 之 其 此 该 等 等等 "
    "去 来 说 看 做 用 想 知道 觉得 感觉 "
    "先说 总之 不同 东西 还有 一起 起来 出来 开始 之类 各种 直接 完全 确实 简直 "
    "吧 呗 嘞 么 "
    "the a an and or of to in on for is are was it this that with be"
))

# Size and spec units: a product-name chunk of digits and these letters is a spec, not a term.
_UNITS = frozenset(_word_list(
    "g kg mg ml l mah mm cm m w v spf pa s xs xl xxl xxxl oz gb tb hz k x"
))
_CHUNK_SEPARATORS = re.compile(r"[\s/|,;:()\[\]{}<>【】()「」『』《》、,;:+·]+")
_LATIN = re.compile(r"[a-z]+")
_CJK = re.compile(r"[\u3400-\u9fff\U00020000-\U0002fa1f]")


def _checked_strings(values: Iterable[object], attr: str) -> list[str]:
    if isinstance(values, str):
        raise ValidationFailed("invalid_terms", "must be a list of strings, not one string", attr)
    checked: list[str] = []
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise ValidationFailed("invalid_term",
                                   f"must be a string, not {type(value).__name__}",
                                   f"{attr}[{index}]")
        checked.append(value)
    return checked


def _is_spec(chunk: str) -> bool:
    """True for a size/spec chunk such as ``50ml``, ``s码84片``, ``50g×2支``, ``spf50``."""
    if not any(character.isdigit() for character in chunk):
        return False
    if len(_CJK.findall(chunk)) > 2:
        return False
    return all(letters in _UNITS for letters in _LATIN.findall(chunk))


def _chunks(name: str) -> list[str]:
    """The term-like parts of a normalised name: no specs, no single characters."""
    return [chunk for chunk in _CHUNK_SEPARATORS.split(normalise(name))
            if 2 <= len(chunk) <= MAXIMUM_TERM_LENGTH and not _is_spec(chunk)]


def domain_terms(brands: Iterable[str] = (), products: Iterable[str] = (),
                 ingredients: Iterable[str] = (), *,
                 include_default_ingredients: bool = True) -> list[str]:
    """Dictionary terms from catalog data, normalised and without duplicates, in input order.

    ``brands`` are brand names; ``products`` are product names such as
    ``"沐光研 烟酰胺亮肤面霜 50g"`` (split on spaces and punctuation, size/spec parts
    dropped); ``ingredients`` are extra series or ingredient words, added to
    ``DEFAULT_INGREDIENTS`` unless ``include_default_ingredients`` is false.
    """
    terms: dict[str, None] = {}
    for attr, values in (("brands", brands), ("products", products),
                         ("ingredients", ingredients)):
        for value in _checked_strings(values, attr):
            terms.update(dict.fromkeys(_chunks(value)))
    if include_default_ingredients:
        terms.update(dict.fromkeys(DEFAULT_INGREDIENTS))
    return list(terms)


class _BaseDictionary:
    """jieba's default dictionary, loaded once per process and copied into each tokeniser."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frequencies: dict[str, int] | None = None
        self._total = 0

    def new_tokenizer(self) -> Any:
        import jieba

        with self._lock:
            if self._frequencies is None:
                jieba.setLogLevel(logging.WARNING)
                loader = jieba.Tokenizer()
                loader.initialize()
                self._frequencies = loader.FREQ
                self._total = loader.total
        tokenizer = jieba.Tokenizer()
        # What ``Tokenizer.initialize`` sets, without reading the dictionary file again.
        tokenizer.FREQ = dict(self._frequencies)
        tokenizer.total = self._total
        tokenizer.initialized = True
        return tokenizer


_BASE = _BaseDictionary()


class Tokeniser:
    """jieba tokenisation of normalised text with domain terms kept whole."""

    def __init__(self, terms: Iterable[str] = (), *, stop_words: Iterable[str] | None = None,
                 include_default_ingredients: bool = True) -> None:
        self._jieba = _BASE.new_tokenizer()
        self._lock = threading.Lock()
        self.stop_words: frozenset[str] = (
            STOP_WORDS if stop_words is None
            else frozenset(normalise(word) for word in _checked_strings(stop_words,
                                                                         "stop_words")))
        self.terms: list[str] = []
        if include_default_ingredients:
            self.add_terms(DEFAULT_INGREDIENTS)
        self.add_terms(terms)

    def add_terms(self, terms: Iterable[str]) -> None:
        """Add dictionary terms (normalised; a term with spaces adds each of its parts)."""
        new_terms: list[str] = []
        for index, term in enumerate(_checked_strings(terms, "terms")):
            parts = normalise(term).split()
            if not parts:
                raise ValidationFailed("invalid_term", "must not be empty", f"terms[{index}]")
            new_terms.extend(part for part in parts if len(part) <= MAXIMUM_TERM_LENGTH)
        with self._lock:
            for term in new_terms:
                if self._jieba.FREQ.get(term, 0) < DOMAIN_FREQUENCY:
                    self._jieba.add_word(term, DOMAIN_FREQUENCY)
                self.terms.append(term)

    def cut(self, text: str) -> list[str]:
        """Every jieba token of ``normalise(text)``, spaces and punctuation included."""
        return list(self._jieba.cut(normalise(text), HMM=True))

    def tokens(self, text: str, *, keep_stop_words: bool = False) -> list[str]:
        """The words of ``normalise(text)``: no spaces, no punctuation, no stop words."""
        return [token for token in self._jieba.cut(normalise(text), HMM=True)
                if any(character.isalnum() for character in token)
                and (keep_stop_words or token not in self.stop_words)]


_DEFAULT_LOCK = threading.Lock()
_DEFAULT: list[Tokeniser] = []


def default_tokeniser() -> Tokeniser:
    """The process's shared tokeniser with the default ingredient words and no catalog."""
    with _DEFAULT_LOCK:
        if not _DEFAULT:
            _DEFAULT.append(Tokeniser())
        return _DEFAULT[0]
