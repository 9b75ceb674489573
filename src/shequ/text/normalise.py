"""Text normalisation for Chinese user content, with a map back to the original characters.

``normalise`` applies, in order: Unicode NFKC (full-width letters, digits and punctuation
become half-width), traditional → simplified Chinese (OpenCC ``t2s``), lowercase, optional
emoji removal, whitespace runs collapsed to one space and stripped, and runs of three or
more identical characters shortened to two (``好好好好`` → ``好好``, ``!!!!!`` → ``!!``).
The pass is repeated until the text no longer changes (a few characters need two passes,
e.g. ``薴`` → ``苧`` → ``苎``), so ``normalise`` is idempotent.

``normalise_with_spans`` returns the same text plus, for every output character, the index
of the original character it came from, so callers can report spans of the original text.

OpenCC is only called when the text contains a character that ``t2s`` can change (a set
computed once from the installed dictionaries); most simplified text skips it entirely.
"""

from __future__ import annotations

import difflib
import re
import threading
import unicodedata
from dataclasses import dataclass
from typing import Protocol

from shequ.core.errors import ValidationFailed

__all__ = ["normalise", "normalise_with_spans", "strip_emoji"]

_MAX_PASSES = 4

# Emoji and their glue: pictographs, symbols & dingbats, regional indicators, skin tones,
# variation selectors, zero-width joiner, keycap combiner, tag characters.
_EMOJI_CLASS = (
    "\U0001f000-\U0001faff"
    "\u2600-\u27bf"
    "\u2300-\u23ff"
    "\u2b00-\u2bff"
    "\u2190-\u21ff"
    "\u2934\u2935\u25aa\u25ab\u25b6\u25c0\u25fb-\u25fe"
    "\u3030\u303d\u3297\u3299"
    "\ufe0e\ufe0f\u200d\u20e3"
    "\U000e0020-\U000e007f"
)
_EMOJI = re.compile(f"[{_EMOJI_CLASS}]+")
_REPEATS = re.compile(r"(.)\1\1+", re.DOTALL)
# NFKC of the commonest full-width punctuation and the ideographic space, applied with
# ``str.replace`` first: most reviews then need nothing else, and ``unicodedata.normalize``
# (or ``str.translate`` on non-ASCII text) is several times slower.
_FULL_WIDTH = tuple((character, unicodedata.normalize("NFKC", character))
                    for character in "，！？：；（）\u3000")
_WORDS = re.compile(r"\S+")
_SPACE = re.compile(r"\s")

# Characters that OpenCC's t2s only converts inside a phrase (藉口 → 借口, 反覆 → 反复,
# 瞭解 → 了解, 沈默 → 沉默, 衹得 → 只得, 牴牾 → 抵牾); every other convertible character
# is found by converting the CJK blocks one character at a time.
_PHRASE_ONLY_TRADITIONAL = "藉覆瞭沈衹牴"
_CJK_RANGES = ((0x2E80, 0xA000), (0xF900, 0xFB00), (0x20000, 0x2FA20), (0x30000, 0x3134B))


class _Converter(Protocol):
    def convert(self, text: str) -> str: ...


@dataclass(frozen=True)
class _Loaded:
    converter: _Converter
    trigger: frozenset[str]  # every character t2s can change
    search: re.Pattern[str]  # finds a BMP trigger or any astral CJK character


class _Simplifier:
    """The process's one OpenCC t2s converter and its trigger characters, built lazily."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None

    def _load(self) -> _Loaded:
        with self._lock:
            if self._loaded is None:
                import opencc

                converter: _Converter = opencc.OpenCC("t2s")
                characters = [chr(code) for start, stop in _CJK_RANGES
                              for code in range(start, stop)]
                converted = converter.convert("\n".join(characters)).split("\n")
                if len(converted) != len(characters):  # pragma: no cover - dictionary change
                    changed = [c for c in characters if converter.convert(c) != c]
                else:
                    changed = [c for c, s in zip(characters, converted, strict=True) if c != s]
                changed.extend(_PHRASE_ONLY_TRADITIONAL)
                trigger = frozenset(changed)
                # One character class over the BMP triggers plus the whole astral CJK range
                # (a class mixing astral single characters in is scanned far slower); an
                # astral hit is confirmed against the set.
                basic = "".join(sorted(c for c in trigger if ord(c) < 0x10000))
                search = re.compile(f"[{basic}\U00020000-\U0003134a]")
                self._loaded = _Loaded(converter, trigger, search)
            return self._loaded

    def needs(self, text: str) -> bool:
        """True when ``t2s`` could change ``text``."""
        if text.isascii():
            return False
        loaded = self._loaded if self._loaded is not None else self._load()
        found = loaded.search.search(text)
        if found is None:
            return False
        return ord(found.group()) < 0x10000 or not loaded.trigger.isdisjoint(text)

    def convert(self, text: str) -> str:
        """``text`` in simplified Chinese (unchanged when nothing could convert)."""
        if not self.needs(text):
            return text
        loaded = self._loaded if self._loaded is not None else self._load()
        return loaded.converter.convert(text)


_SIMPLIFIER = _Simplifier()


def _check(text: object) -> str:
    if not isinstance(text, str):
        raise ValidationFailed("invalid_text", f"must be a string, not {type(text).__name__}",
                               "text")
    return text


def strip_emoji(text: str) -> str:
    """``text`` without emoji (pictographs, symbols, flags, skin tones, joiners, selectors)."""
    return _EMOJI.sub("", _check(text))


def _collapse_repeats(text: str) -> str:
    return _REPEATS.sub(r"\1\1", text) if _REPEATS.search(text) else text


def _nfkc(text: str) -> str:
    if text.isascii():
        return text
    for full_width, half_width in _FULL_WIDTH:
        text = text.replace(full_width, half_width)
    return text if unicodedata.is_normalized("NFKC", text) else unicodedata.normalize("NFKC", text)


def _one_pass(text: str, keep_emoji: bool) -> tuple[str, bool]:
    """One pass of the rules, and whether OpenCC was consulted."""
    out = _nfkc(text)
    consulted = _SIMPLIFIER.needs(out)
    if consulted:
        out = _SIMPLIFIER.convert(out)
    out = out.lower()
    if not keep_emoji:
        out = _EMOJI.sub("", out)
    out = " ".join(out.split())
    return _collapse_repeats(out), consulted


def _is_stable(text: str, keep_emoji: bool, consulted: bool) -> bool:
    """True when another pass cannot change ``text`` (cheap checks for the common case).

    When OpenCC was not consulted, the text had no convertible character and the later
    steps cannot introduce one.
    """
    if text.isascii():
        return True
    if not unicodedata.is_normalized("NFKC", text) or text.lower() != text:
        return False
    if not keep_emoji and _EMOJI.search(text):
        return False
    return not consulted or _SIMPLIFIER.convert(text) == text


def normalise(text: str, *, keep_emoji: bool = True) -> str:
    """``text`` normalised for matching and models (see the module docstring for the rules)."""
    out, consulted = _one_pass(_check(text), keep_emoji)
    for _ in range(_MAX_PASSES):
        if _is_stable(out, keep_emoji, consulted):
            break
        out, consulted = _one_pass(out, keep_emoji)
    return out


# ---- the same steps, carrying a map from each character to its original index ----

def _spread(count: int, sources: list[int]) -> list[int]:
    """``count`` output characters made from ``sources``: spread in order over them."""
    if count == len(sources):
        return list(sources)
    return [sources[min(k * len(sources) // count, len(sources) - 1)] for k in range(count)]


def _realign(old: str, old_map: list[int], new: str) -> list[int]:
    """A map for ``new`` from an alignment of ``old`` (with ``old_map``) to ``new``."""
    mapping: list[int] = []
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "delete":
            continue
        if i2 > i1:
            mapping.extend(_spread(j2 - j1, old_map[i1:i2]))
        else:  # inserted: attach to the character before (or the first one)
            mapping.extend([old_map[max(i1 - 1, 0)]] * (j2 - j1))
    return mapping


def _nfkc_mapped(text: str, mapping: list[int]) -> tuple[str, list[int]]:
    if text.isascii():
        return text, mapping
    for full_width, half_width in _FULL_WIDTH:  # one character for one: the map holds
        text = text.replace(full_width, half_width)
    if unicodedata.is_normalized("NFKC", text):
        return text, mapping
    whole = unicodedata.normalize("NFKC", text)
    # Usually each character normalises on its own (full-width forms, ligatures, ①).
    singles = [c if c.isascii() else unicodedata.normalize("NFKC", c) for c in text]
    if "".join(singles) == whole:
        single_map: list[int] = []
        for single, source in zip(singles, mapping, strict=True):
            single_map.extend([source] * len(single))
        return whole, single_map
    # Otherwise pieces that normalise independently: a character joins the previous piece when
    # normalising them together differs from normalising them apart (combining marks,
    # Hangul jamo, reordering).
    pieces: list[tuple[int, int]] = []
    start = 0
    for index in range(1, len(text)):
        character = text[index]
        if not character.isascii():
            piece = text[start:index]
            joined = unicodedata.normalize("NFKC", piece + character)
            apart = unicodedata.normalize("NFKC", piece) + unicodedata.normalize("NFKC", character)
            if joined != apart:
                continue
        pieces.append((start, index))
        start = index
    pieces.append((start, len(text)))
    parts: list[str] = []
    new_map: list[int] = []
    for begin, end in pieces:
        part = unicodedata.normalize("NFKC", text[begin:end])
        parts.append(part)
        new_map.extend(_spread(len(part), mapping[begin:end]))
    if "".join(parts) != whole:  # pragma: no cover - normalisation not local here
        return whole, _realign(text, mapping, whole)
    return whole, new_map


def _same_length_or_realign(old: str, mapping: list[int], new: str) -> tuple[str, list[int]]:
    if new == old or len(new) == len(old):
        return new, mapping
    return new, _realign(old, mapping, new)


def _strip_emoji_mapped(text: str, mapping: list[int]) -> tuple[str, list[int]]:
    keep = [i for i, character in enumerate(text) if not _EMOJI.match(character)]
    return "".join(text[i] for i in keep), [mapping[i] for i in keep]


def _whitespace_mapped(text: str, mapping: list[int]) -> tuple[str, list[int]]:
    if not _SPACE.search(text):
        return text, mapping
    words: list[str] = []
    new_map: list[int] = []
    for match in _WORDS.finditer(text):
        if words:
            new_map.append(mapping[match.start() - 1])  # the last whitespace before the word
        words.append(match.group())
        new_map.extend(mapping[match.start():match.end()])
    return " ".join(words), new_map


def _repeats_mapped(text: str, mapping: list[int]) -> tuple[str, list[int]]:
    parts: list[str] = []
    new_map: list[int] = []
    kept_from = 0
    for match in _REPEATS.finditer(text):
        keep_to = match.start() + 2
        parts.append(text[kept_from:keep_to])
        new_map.extend(mapping[kept_from:keep_to])
        kept_from = match.end()
    if not parts:
        return text, mapping
    parts.append(text[kept_from:])
    new_map.extend(mapping[kept_from:])
    return "".join(parts), new_map


def _one_pass_mapped(text: str, mapping: list[int], keep_emoji: bool) -> tuple[str, list[int]]:
    text, mapping = _nfkc_mapped(text, mapping)
    text, mapping = _same_length_or_realign(text, mapping, _SIMPLIFIER.convert(text))
    text, mapping = _same_length_or_realign(text, mapping, text.lower())
    if not keep_emoji:
        text, mapping = _strip_emoji_mapped(text, mapping)
    text, mapping = _whitespace_mapped(text, mapping)
    return _repeats_mapped(text, mapping)


def normalise_with_spans(text: str, *, keep_emoji: bool = True) -> tuple[str, list[int]]:
    """``normalise(text)`` and, for each of its characters, the index in ``text`` it came from.

    The indices are non-decreasing and within ``range(len(text))``; a character made from
    several originals (a phrase conversion that changed length, a composed accent) points at
    the first of them, and a space left by collapsing whitespace points at the last
    whitespace character of its run.
    """
    out, mapping = _one_pass_mapped(_check(text), list(range(len(text))), keep_emoji)
    for _ in range(_MAX_PASSES):
        if _is_stable(out, keep_emoji, consulted=True):
            break
        out, mapping = _one_pass_mapped(out, mapping, keep_emoji)
    return out, mapping
