"""Sensitive-term lexicon: categories, severities, an allow-list, hot reload, evasion-proof scan.

A ``Lexicon`` holds terms (each with a category and a severity 1 low … 3 high) and an
allow-list of phrases. ``scan(text)`` finds every term in the text and reports it with the
offsets of the ORIGINAL text, however the text was disguised:

1. ``normalise`` (``shequ.text.normalise``): NFKC (full-width letters and digits), OpenCC
   ``t2s`` (traditional characters), lowercase, whitespace runs, runs of 3+ cut to 2;
2. look-alike characters (``LOOK_ALIKES``): Cyrillic and Greek letters that look like Latin
   ones always, and ``0 1 3 4 5 @ $`` only between two Latin letters (``p0rn``, ``c@sino``);
3. separators dropped: every space, punctuation mark, symbol, emoji, control and format
   (zero-width) character, combining mark left after NFKC (variation selectors, keycaps,
   strike-through overlays), plus the strokes ``丨 丶 乀 丿`` used as fillers — so
   ``法.轮`` / ``法 轮`` / ``法🙂轮`` / ``法\u200b轮`` all read ``法轮``;
4. runs of 3+ identical characters cut to 2 again (the separators may have split them).

Terms and allow-list phrases go through the same steps, and one Aho–Corasick automaton
(``ahocorasick_rs``) finds them all in one pass. A term that starts (ends) with a Latin
letter only matches where the form does not continue with a Latin letter on that side, so
``anal`` does not fire inside ``analysis``. A match is suppressed when an allow-list
phrase found in the same text covers it.

A term flagged ``pinyin`` also matches by the initials of its pinyin (``法轮功`` → ``flg``,
generated with ``pypinyin``, imported only when a lexicon has such a term); the initials
are a Latin key, so they obey the word-boundary rule, and the match names the term.

Speed: most texts hold no term, and most need none of the rare steps (NFKC beyond a few
full-width marks, OpenCC, a second pass), so ``scan`` first builds the form by a short
route (``_quick_form``) that falls back to ``evasion_form`` whenever the text has a
character OpenCC could change or case folding is not stable, and asks a second automaton
of the term keys, over the UTF-16 bytes of the form, whether anything is there; the
character map (``normalise_with_spans``) is built only when something is.
``scan_many`` folds a whole batch at once: the texts joined with a private-use mark that
no step changes, separators, look-alikes and repeats handled with numpy tables, one
automaton pass, and only the texts with a hit (or a rare character) scanned one by one.
"""

from __future__ import annotations

import csv
import functools
import os
import re
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import ahocorasick_rs
import numpy as np

from shequ.core.errors import ValidationFailed
from shequ.text.normalise import _SIMPLIFIER, normalise, normalise_with_spans

__all__ = [
    "CATEGORIES",
    "LOOK_ALIKES",
    "Lexicon",
    "Match",
    "Term",
    "evasion_form",
    "evasion_form_with_spans",
    "pinyin_initials",
    "term_key",
]

CATEGORIES = ("politics", "pornography", "violence", "gambling", "drugs", "ads", "fraud",
              "abuse", "other")
ALLOW = "allow"  # the category of an allow-list row in a TSV/CSV file
_DEFAULT_RESOURCE = "data/lexicon_default.tsv"

# Look-alikes mapped everywhere: Cyrillic and Greek letters drawn like Latin ones (NFKC
# leaves them alone), and the ideographic zero.
LOOK_ALIKES: dict[str, str] = {
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d",
    "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
    "τ": "t", "υ": "u", "χ": "x", "〇": "o",
}
# Look-alikes mapped only between two Latin letters (``p0rn``, ``c@sino``, ``a$$``).
_BETWEEN_LETTERS = {"0": "o", "1": "l", "3": "e", "4": "a", "5": "s", "@": "a", "$": "s"}
_BETWEEN = re.compile(r"(?<=[a-z])[01345@$](?=[a-z])")
_FILLER_STROKES = "丨丶乀丿"
_REPEATS = re.compile(r"(.)\1\1+", re.DOTALL)
_ASTRAL_SYMBOLS = ((0x1F000, 0x1FB00), (0xE0000, 0xE0080), (0xE0100, 0xE01F0))


def _build_tables() -> tuple[re.Pattern[str], frozenset[str]]:
    dropped: set[str] = set(_FILLER_STROKES)
    for code in range(0x10000):
        character = chr(code)
        category = unicodedata.category(character)
        if category[0] in "PSZ" or category in ("Cc", "Cf", "Mn", "Me"):
            dropped.add(character)
    for start, stop in _ASTRAL_SYMBOLS:
        dropped.update(chr(code) for code in range(start, stop))
    codes = sorted(ord(character) for character in dropped)
    ranges: list[list[int]] = []
    for code in codes:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    pieces = (re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
              for a, b in ranges)
    return re.compile(f"[{''.join(pieces)}]+"), frozenset(dropped)


# One character class of ~370 ranges: ``sub`` with it is faster than ``str.translate``.
_SEPARATORS, _DROPPED = _build_tables()
_LOOK_ALIKE_TABLE = str.maketrans(LOOK_ALIKES)
_LOOK_ALIKE = re.compile(f"[{''.join(LOOK_ALIKES)}]")


def _between_letters(text: str) -> str:
    if _BETWEEN.search(text) is None:
        return text
    return _BETWEEN.sub(lambda m: _BETWEEN_LETTERS[m.group()], text)


def _drop_and_map(text: str) -> str:
    text = _SEPARATORS.sub("", text)
    return text.translate(_LOOK_ALIKE_TABLE) if _LOOK_ALIKE.search(text) else text


def evasion_form(text: str) -> str:
    """``text`` as the lexicon matches it: normalised, look-alikes mapped, separators gone,
    runs of 3+ identical characters cut to 2 again (separators may have split them)."""
    form = _drop_and_map(_between_letters(normalise(text)))
    return _REPEATS.sub(r"\1\1", form) if _REPEATS.search(form) else form


def evasion_form_with_spans(text: str) -> tuple[str, list[int]]:
    """``evasion_form(text)`` and, for each of its characters, its index in ``text``."""
    normal, mapping = normalise_with_spans(text)
    normal = _between_letters(normal)  # one character for one: the map holds
    pieces: list[str] = []
    kept: list[int] = []
    start = 0
    for run in _SEPARATORS.finditer(normal):  # keep what lies between separator runs
        pieces.append(normal[start:run.start()])
        kept.extend(mapping[start:run.start()])
        start = run.end()
    pieces.append(normal[start:])
    kept.extend(mapping[start:])
    form = "".join(pieces)
    if _LOOK_ALIKE.search(form):
        form = form.translate(_LOOK_ALIKE_TABLE)
    if not _REPEATS.search(form):
        return form, kept
    parts: list[str] = []
    new_map: list[int] = []
    start = 0
    for run in _REPEATS.finditer(form):
        parts.append(form[start:run.start() + 2])
        new_map.extend(kept[start:run.start() + 2])
        start = run.end()
    parts.append(form[start:])
    new_map.extend(kept[start:])
    return "".join(parts), new_map


def term_key(term: str) -> str:
    """The key a term is matched by (its evasion form)."""
    return evasion_form(term)


# ---- the short route to the form: same result as ``evasion_form`` ----
#
# ``normalise`` runs NFKC, OpenCC t2s (only for texts with a character it could change),
# lowercase, whitespace collapsing and a cut of 3+ repeats, then checks that another pass
# would change nothing. When the text has no OpenCC trigger and lowercasing is stable, one
# pass is all it does, and its whitespace collapsing and first repeat cut make no
# difference to the form: whitespace is a separator, dropped anyway, and cutting runs
# before dropping separators ends in the same form as cutting them only afterwards. So for
# such a text the form is NFKC → lowercase → look-alikes between letters → separators
# dropped → look-alikes → repeats cut. Any other text takes ``evasion_form`` itself.

# The commonest full-width marks, replaced before the NFKC check (NFKC maps each of them
# to one character whatever surrounds it); ``unicodedata.normalize`` is several times slower.
_FULL_WIDTH = tuple((character, unicodedata.normalize("NFKC", character))
                    for character in "，！？：；（）\u3000")
_MARK = "\ue000"  # joins texts in a batch: private use, so no step changes or drops it
_MARK_CODE = ord(_MARK)


def _nfkc(text: str) -> str:
    for full_width, half_width in _FULL_WIDTH:
        text = text.replace(full_width, half_width)
    return text if unicodedata.is_normalized("NFKC", text) else unicodedata.normalize("NFKC", text)


# Characters whose NFKC form is one ASCII character (or, for the ellipsis, a run of
# separators) whatever surrounds them, as long as no combining mark or other suspect
# follows (those send the whole text through NFKC): the full-width ASCII block, the
# ideographic space and the ellipsis, the commonest of them in reviews. The batch fold
# maps them with a numpy table after lowercasing instead of running NFKC.
# (Full-width capitals are already full-width small letters by then.)
_SIMPLE: dict[str, str] = {chr(code): chr(code - 0xFEE0) for code in range(0xFF01, 0xFF5F)}
_SIMPLE.update({"\u3000": " ", "…": "."})
_SIMPLE_TABLE = str.maketrans(_SIMPLE)


@functools.cache
def _suspects() -> re.Pattern[str]:
    """Characters that can make a text differ from its NFKC form, or its lowercase form
    unstable: those NFKC changes, every combining mark (reordering), every character that
    composes with the one before it (the second of a canonical pair, Hangul jamo), every
    non-ASCII character lowercasing changes, and every astral character, but not the
    ``_SIMPLE`` ones. A text with none of them is NFKC-normal once its ``_SIMPLE``
    characters are mapped, and lowercasing it changes ASCII letters only."""
    suspects: set[int] = set(range(0x1100, 0x1200))
    for code in range(0x80, 0x10000):
        character = chr(code)
        if (unicodedata.normalize("NFKC", character) != character
                or unicodedata.combining(character) or character.lower() != character):
            suspects.add(code)
        decomposition = unicodedata.decomposition(character).split()
        if decomposition and not decomposition[0].startswith("<"):
            suspects.update(int(part, 16) for part in decomposition[1:])
    suspects.difference_update(ord(character) for character in _SIMPLE)
    ranges: list[list[int]] = []
    for code in sorted(c for c in suspects if c < 0x10000):
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    pieces = "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
                     for a, b in ranges)
    return re.compile(f"[{pieces}\U00010000-\U0010ffff]")


def _stable_lower(text: str) -> bool:
    """True when a second pass of ``normalise`` could not change ``text`` (lowercased)."""
    return text.isascii() or (text.lower() == text and unicodedata.is_normalized("NFKC", text))


def _quick_form(text: str) -> str:
    """``evasion_form(text)``, by the short route when the text allows it."""
    if text.isascii():
        lowered = text.lower()
    else:
        normal = _nfkc(text)
        if _SIMPLIFIER.needs(normal):
            return evasion_form(text)
        lowered = normal.lower()
        if not _stable_lower(lowered):
            return evasion_form(text)
    form = _drop_and_map(_between_letters(lowered))
    return _REPEATS.sub(r"\1\1", form) if _REPEATS.search(form) else form


def _drop_table() -> np.ndarray[Any, np.dtype[np.bool_]]:
    table = np.zeros(0x10000, dtype=np.bool_)
    table[[ord(c) for c in _DROPPED if ord(c) < 0x10000]] = True
    return table


def _look_alike_table() -> np.ndarray[Any, np.dtype[np.uint32]]:
    table = np.arange(0x10000, dtype=np.uint32)
    for source, target in LOOK_ALIKES.items():
        table[ord(source)] = ord(target)
    return table


def _between_table() -> np.ndarray[Any, np.dtype[np.uint32]]:
    table = np.zeros(0x10000, dtype=np.uint32)
    for source, target in _BETWEEN_LETTERS.items():
        table[ord(source)] = ord(target)
    return table


def _simple_table() -> np.ndarray[Any, np.dtype[np.uint32]]:
    table = np.arange(0x10000, dtype=np.uint32)
    for source, target in _SIMPLE.items():
        table[ord(source)] = ord(target)
    return table


_DROP_BMP = _drop_table()
_LOOK_ALIKE_BMP = _look_alike_table()
_SIMPLE_BMP = _simple_table()
_BETWEEN_BMP = _between_table()


def _batch_form(lowered: str) -> str:
    """``_drop_and_map(_between_letters(lowered))`` and the repeat cut over a whole batch at
    once with numpy tables (after mapping the ``_SIMPLE`` characters, which NFKC would
    have mapped before lowercasing)."""
    codes = np.frombuffer(lowered.encode("utf-32-le"), dtype=np.uint32)
    astral = bool(codes.size) and int(codes.max()) >= 0x10000
    if astral:
        codes = np.where(codes < 0x10000, _SIMPLE_BMP[codes & 0xFFFF], codes)
    else:
        codes = _SIMPLE_BMP[codes]
    low = codes & 0xFFFF if astral else codes
    between = np.where(codes < 0x80, _BETWEEN_BMP[low], 0)
    if codes.size > 2 and between.any():  # ``_between_letters``: a digit between letters
        latin = (codes - 97) < 26  # unsigned: a-z only
        inside = np.zeros(codes.size, dtype=np.bool_)
        inside[1:-1] = (between[1:-1] != 0) & latin[:-2] & latin[2:]
        codes = np.where(inside, between, codes)
    if astral:
        drop = np.where(codes < 0x10000, _DROP_BMP[codes & 0xFFFF], False)
        for start, stop in _ASTRAL_SYMBOLS:
            drop |= (codes >= start) & (codes < stop)
        codes = codes[~drop]
        codes = np.where(codes < 0x10000, _LOOK_ALIKE_BMP[codes & 0xFFFF], codes)
    else:
        codes = _LOOK_ALIKE_BMP[codes[~_DROP_BMP[codes]]]
    if codes.size > 2:
        same = codes[1:] == codes[:-1]
        third = same[1:] & same[:-1] & (codes[2:] != _MARK_CODE)
        if third.any():
            keep = np.ones(codes.size, dtype=np.bool_)
            keep[2:] = ~third
            codes = codes[keep]
    return np.ascontiguousarray(codes, dtype=np.uint32).tobytes().decode("utf-32-le")


def _segments_at(text: str, positions: Iterable[int]) -> set[int]:
    """The indices of the pieces between marks of ``text`` holding these positions."""
    found: set[int] = set()
    before, marks = 0, 0
    for position in sorted(positions):
        marks += text.count(_MARK, before, position)
        before = position
        found.add(marks)
    return found


def _needs_opencc(normal: str) -> set[int]:
    """Pieces of the batch ``normal`` (a superset of those) that OpenCC t2s could change."""
    if normal.isascii():
        return set()
    search = _SIMPLIFIER._load().search  # the simplifier's own trigger pattern
    return _segments_at(normal, [found.start() for found in search.finditer(normal)])


@dataclass(frozen=True)
class Term:
    """A lexicon term: the text as written, its category and severity (1 low … 3 high), and
    whether the initials of its pinyin also match (``法轮功`` → ``flg``)."""

    term: str
    category: str
    severity: int
    pinyin: bool = False


@dataclass(frozen=True)
class Match:
    """A term found in a text; ``start``/``end`` are offsets of the original text.

    ``via`` is ``"term"`` when the text spells the term (however disguised) and
    ``"pinyin"`` when it spells the initials of the term's pinyin.
    """

    term: str
    category: str
    severity: int
    start: int
    end: int
    via: str = "term"


@dataclass(frozen=True)
class _Compiled:
    # ahocorasick_rs.AhoCorasick over every key, or None when there are none; ``values``
    # holds, per key index, (Term or None for an allow-list phrase, whether the key starts
    # / ends with a Latin letter, "term" or "pinyin")
    automaton: Any
    values: tuple[tuple[Term | None, bool, bool, str], ...]
    # ahocorasick_rs.BytesAhoCorasick over the UTF-16-LE bytes of the term and initials
    # keys (no allow-list phrases), or None when there are none: finds the texts with a
    # hit, two bytes a character instead of UTF-8's three for Chinese
    detector: Any
    terms: tuple[Term, ...]
    allow: tuple[str, ...]


def _invalid(detail: str) -> ValidationFailed:
    return ValidationFailed("invalid_lexicon", detail, "lexicon")


def _check_term(term: Term, where: str) -> None:
    if not isinstance(term.term, str) or not term.term.strip():
        raise _invalid(f"{where}: the term is empty")
    if term.category not in CATEGORIES:
        raise _invalid(f"{where}: unknown category {term.category!r} "
                       f"(one of {', '.join(CATEGORIES)})")
    if isinstance(term.severity, bool) or term.severity not in (1, 2, 3):
        raise _invalid(f"{where}: severity must be 1, 2 or 3, not {term.severity!r}")
    if not isinstance(term.pinyin, bool):
        raise _invalid(f"{where}: pinyin must be true or false, not {term.pinyin!r}")


def _is_han(character: str) -> bool:
    return unicodedata.name(character, "").startswith("CJK ")


def pinyin_initials(term: str) -> str:
    """The key of ``term``'s pinyin initials (``法轮功`` → ``flg``): the first letter of each
    Chinese character's most likely reading (``pypinyin``), other characters as they are."""
    from pypinyin import Style, lazy_pinyin

    key = term_key(term)
    return term_key("".join(lazy_pinyin(key, style=Style.FIRST_LETTER)))


def _pinyin_key(term: Term, where: str) -> str:
    key = term_key(term.term)
    if not any(_is_han(character) for character in key):
        raise _invalid(f"{where}: pinyin initials of {term.term!r} need Chinese characters")
    initials = pinyin_initials(term.term)
    if len(initials) < 2:
        raise _invalid(f"{where}: the pinyin initials of {term.term!r}, {initials!r}, are "
                       "fewer than 2 characters")
    return initials


def _compile(terms: Iterable[Term], allow: Iterable[str]) -> _Compiled:
    by_key: dict[str, Term] = {}
    for index, term in enumerate(terms):
        _check_term(term, f"term {index + 1}")
        key = term_key(term.term)
        if len(key) < 2:
            raise _invalid(f"term {index + 1} ({term.term!r}): fewer than 2 characters "
                           "remain after normalisation")
        known = by_key.get(key)
        if known is None or term.severity > known.severity or (
                term.severity == known.severity and term.pinyin and not known.pinyin):
            by_key[key] = term
    allow_keys: dict[str, str] = {}
    for phrase in allow:
        key = term_key(phrase)
        if not key:
            raise _invalid(f"allow-list phrase {phrase!r} is empty after normalisation")
        allow_keys.setdefault(key, phrase)
    by_initials: dict[str, Term] = {}
    for index, term in enumerate(by_key.values()):
        if term.pinyin:
            initials = _pinyin_key(term, f"term {index + 1}")
            known = by_initials.get(initials)
            if known is None or term.severity > known.severity:
                by_initials[initials] = term
    values: dict[str, tuple[Term | None, bool, bool, str]] = {
        key: (term, _is_latin(key[0]), _is_latin(key[-1]), "term")
        for key, term in by_key.items()}
    for key, term in by_initials.items():  # a spelled term with the same key comes first
        values.setdefault(key, (term, _is_latin(key[0]), _is_latin(key[-1]), "pinyin"))
    for key in allow_keys:  # a phrase that is also a term replaces it: the allow-list wins
        values[key] = (None, False, False, "term")
    automaton = ahocorasick_rs.AhoCorasick(list(values)) if values else None
    wide = [key.encode("utf-16-le") for key, value in values.items() if value[0] is not None]
    detector = ahocorasick_rs.BytesAhoCorasick(wide) if wide else None
    return _Compiled(automaton, tuple(values.values()), detector, tuple(by_key.values()),
                     tuple(allow_keys.values()))


_PINYIN_VALUES = {"1": True, "yes": True, "true": True, "0": False, "no": False,
                  "false": False, "": False}


def _parse(path: Path, category: str, severity: int,
           pinyin: bool = False) -> tuple[list[Term], list[str]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _invalid(f"{path}: cannot read ({exc.strerror})") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad_line = raw[: exc.start].count(b"\n") + 1
        raise _invalid(f"{path.name} line {bad_line}: not UTF-8") from exc
    suffix = path.suffix.lower()
    terms: list[Term] = []
    allow: list[str] = []
    if suffix == ".txt":
        for number, line in enumerate(text.splitlines(), 1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            if stripped.startswith("!"):
                phrase = stripped[1:].strip()
                if not phrase:
                    raise _invalid(f"{path.name} line {number}: empty allow-list phrase")
                allow.append(phrase)
                continue
            term = Term(stripped, category, severity, pinyin)
            _check_row(term, path, number)
            terms.append(term)
        return terms, allow
    if suffix not in (".tsv", ".csv"):
        raise _invalid(f"{path.name}: unsupported file type {suffix!r} (.tsv, .csv or .txt)")
    delimiter = "\t" if suffix == ".tsv" else ","
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            row = next(csv.reader([line], delimiter=delimiter, strict=True,
                                  quoting=csv.QUOTE_NONE if suffix == ".tsv"
                                  else csv.QUOTE_MINIMAL))
        except csv.Error as exc:
            raise _invalid(f"{path.name} line {number}: {exc}") from None
        cells = [cell.strip() for cell in row]
        if cells[:3] == ["term", "category", "severity"]:
            continue
        if len(cells) >= 2 and cells[1] == ALLOW:
            if not cells[0]:
                raise _invalid(f"{path.name} line {number}: empty allow-list phrase")
            allow.append(cells[0])
            continue
        if len(cells) not in (2, 3, 4):
            raise _invalid(f"{path.name} line {number}: expected term, category[, severity"
                           f"[, pinyin]] but found {len(cells)} field(s)")
        level = severity
        if len(cells) >= 3:
            try:
                level = int(cells[2])
            except ValueError:
                raise _invalid(f"{path.name} line {number}: severity must be 1, 2 or 3, "
                               f"not {cells[2]!r}") from None
        initials = pinyin
        if len(cells) == 4:
            flag = _PINYIN_VALUES.get(cells[3].lower())
            if flag is None:
                raise _invalid(f"{path.name} line {number}: pinyin must be 1, 0, yes or no, "
                               f"not {cells[3]!r}")
            initials = flag
        term = Term(cells[0], cells[1], level, initials)
        _check_row(term, path, number)
        terms.append(term)
    return terms, allow


def _check_row(term: Term, path: Path, number: int) -> None:
    where = f"{path.name} line {number}"
    _check_term(term, where)
    if len(term_key(term.term)) < 2:
        raise _invalid(f"{where}: {term.term!r} has fewer than 2 characters after "
                       "normalisation")
    if term.pinyin:
        _pinyin_key(term, where)


def _stamp(path: Path) -> tuple[int, int]:
    status = os.stat(path)
    return status.st_mtime_ns, status.st_size


def _as_term(item: Term | tuple[Any, ...]) -> Term:
    return item if isinstance(item, Term) else Term(*item)


_BATCH = 4096  # texts folded together by ``scan_many``
_SMALL_BATCH = 8  # fewer texts than this are scanned one by one


class Lexicon:
    """Terms with category and severity, an allow-list, and a thread-safe hot reload."""

    def __init__(self, terms: Iterable[Term | tuple[Any, ...]] = (),
                 allow: Iterable[str] = ()) -> None:
        self._compiled = _compile([_as_term(t) for t in terms], allow)
        self._lock = threading.Lock()
        self._path: Path | None = None
        self._stamp: tuple[int, int] | None = None
        self._category = "other"
        self._severity = 2
        self._pinyin = False

    # ---- construction ----

    @classmethod
    def from_file(cls, path: str | Path, *, category: str = "other",
                  severity: int = 2, pinyin: bool = False) -> Lexicon:
        """Terms from a file, watched by ``reload_if_changed``.

        ``.tsv`` / ``.csv``: ``term, category[, severity[, pinyin]]`` per row (a ``term
        category severity`` header and ``#`` comment lines are skipped; a row whose category
        is ``allow`` is an allow-list phrase; ``pinyin`` is 1/0/yes/no). ``.txt``: one term
        per line with ``category``, ``severity`` and ``pinyin``; a line starting with ``!``
        is an allow-list phrase. Errors name the line.
        """
        source = Path(path)
        _check_term(Term("x", category, severity, pinyin), "defaults")
        stamp = _stamp(source) if source.exists() else None
        terms, allow = _parse(source, category, severity, pinyin)
        lexicon = cls(terms, allow)
        lexicon._path, lexicon._stamp = source, stamp
        lexicon._category, lexicon._severity, lexicon._pinyin = category, severity, pinyin
        return lexicon

    @classmethod
    def default(cls) -> Lexicon:
        """The shipped default lexicon (``shequ/text/data/lexicon_default.tsv``)."""
        resource = resources.files("shequ.text").joinpath(_DEFAULT_RESOURCE)
        with resources.as_file(resource) as path:
            return cls.from_file(path)

    # ---- contents ----

    @property
    def terms(self) -> tuple[Term, ...]:
        """The terms (one per normalised key; the highest severity kept)."""
        return self._compiled.terms

    @property
    def allow(self) -> tuple[str, ...]:
        return self._compiled.allow

    def __len__(self) -> int:
        return len(self._compiled.terms)

    def replace(self, terms: Iterable[Term | tuple[Any, ...]],
                allow: Iterable[str] = ()) -> None:
        """Swap in new contents atomically (scans in flight finish on the old ones)."""
        compiled = _compile([_as_term(t) for t in terms], allow)
        with self._lock:
            self._compiled = compiled

    def reload_if_changed(self) -> bool:
        """Re-read the source file when its mtime or size changed; True when reloaded.

        A file that fails to parse raises ``ValidationFailed`` and the old contents stay.
        """
        if self._path is None:
            return False
        with self._lock:
            stamp = _stamp(self._path)
            if stamp == self._stamp:
                return False
            terms, allow = _parse(self._path, self._category, self._severity, self._pinyin)
            self._compiled = _compile(terms, allow)
            self._stamp = stamp
            return True

    # ---- scanning ----

    def scan(self, text: str) -> list[Match]:
        """Every term in ``text`` not covered by an allow-list phrase, by original offsets."""
        compiled = self._compiled  # one read: a concurrent swap cannot tear a scan
        if not isinstance(text, str):
            raise ValidationFailed("invalid_text",
                                   f"must be a string, not {type(text).__name__}", "text")
        return _scan(compiled, text)

    def scan_many(self, texts: Iterable[str]) -> list[list[Match]]:
        """``scan`` of each text (folded in batches: several times faster per text)."""
        compiled = self._compiled
        items = list(texts)
        for index, text in enumerate(items):
            if not isinstance(text, str):
                raise ValidationFailed("invalid_text", f"text {index}: must be a string, not "
                                       f"{type(text).__name__}", "texts")
        results: list[list[Match]] = [[] for _ in items]
        if compiled.detector is None:
            return results
        for begin in range(0, len(items), _BATCH):
            batch = items[begin:begin + _BATCH]
            candidates = _candidates(compiled, batch)
            if candidates is None:  # too few texts to fold, or a text holds the mark
                results[begin:begin + len(batch)] = [_scan(compiled, t) for t in batch]
                continue
            for index in sorted(candidates):  # a hit, or a text for the full route
                results[begin + index] = _scan_with_spans(compiled, batch[index])
        return results

    def flags(self, text: str) -> bool:
        """True when ``text`` holds at least one term not covered by the allow-list."""
        return bool(self.scan(text))


def _scan(compiled: _Compiled, text: str) -> list[Match]:
    detector = compiled.detector
    if detector is None or not text:
        return []
    wide = _quick_form(text).encode("utf-16-le")
    if not any(start % 2 == 0 for _, start, _
               in detector.find_matches_as_indexes(wide, overlapping=True)):
        return []
    return _scan_with_spans(compiled, text)


def _scan_with_spans(compiled: _Compiled, text: str) -> list[Match]:
    """The plain algorithm: the full form and its map, then every key in it."""
    form, mapping = evasion_form_with_spans(text)
    return _matches(compiled, form, mapping) if form else []


def _candidates(compiled: _Compiled, texts: list[str]) -> set[int] | None:
    """Indices of the texts whose form may hold a key (every text whose form does), or
    None when the batch cannot be folded.

    The batch is folded as one string: the texts joined with ``_MARK``, which NFKC,
    lowercasing, the look-alike maps and the separator and repeat steps all leave in place
    and never let a rule look across (it is no Latin letter, no separator, and the repeat
    cut skips it), so each piece between marks is the form of its text. Texts that may
    need OpenCC or a second normalisation pass are candidates whatever the fold finds.
    """
    if len(texts) < _SMALL_BATCH:
        return None
    joined = _MARK.join(texts)
    if joined.count(_MARK) != len(texts) - 1:  # a text holds the mark itself
        return None
    special: set[int] = set()
    if joined.isascii():
        lowered = joined.lower()
    else:
        suspects = [found.start() for found in _suspects().finditer(joined)]
        if suspects:  # NFKC of the texts with a suspect character only
            parts = joined.split(_MARK)
            for index in _segments_at(joined, suspects):
                parts[index] = unicodedata.normalize("NFKC", parts[index])
            joined = _MARK.join(parts)
        special = _needs_opencc(joined)
        lowered = joined.lower()
        if lowered != joined:  # a second normalisation pass is possible only near a suspect
            suspects = [found.start() for found in _suspects().finditer(joined)]
            if suspects:
                pieces = lowered.split(_MARK)
                special.update(index for index in _segments_at(joined, suspects)
                               if not _stable_lower(pieces[index].translate(_SIMPLE_TABLE)))
    wide = _batch_form(lowered).encode("utf-16-le")
    hits = [(start // 2, end // 2) for _, start, end
            in compiled.detector.find_matches_as_indexes(wide, overlapping=True)
            if start % 2 == 0]  # a key matches from a character's first byte
    if not hits:
        return special
    marks = np.flatnonzero(np.frombuffer(wide, dtype=np.uint16) == _MARK_CODE)
    starts = np.searchsorted(marks, [start for start, _ in hits])
    ends = np.searchsorted(marks, [end - 1 for _, end in hits])
    for first, last in zip(starts.tolist(), ends.tolist(), strict=True):
        special.update(range(first, last + 1))
    return special


def _is_latin(character: str) -> bool:
    return "a" <= character <= "z"


def _matches(compiled: _Compiled, form: str, mapping: list[int]) -> list[Match]:
    found: list[tuple[int, int, Term, str]] = []
    allowed: list[tuple[int, int]] = []
    for index, start, stop in compiled.automaton.find_matches_as_indexes(form, overlapping=True):
        term, left, right, via = compiled.values[index]
        end = stop - 1
        if term is None:
            allowed.append((start, end))
        elif not ((left and start > 0 and _is_latin(form[start - 1]))
                  or (right and stop < len(form) and _is_latin(form[stop]))):
            found.append((start, end, term, via))
    found.sort(key=lambda item: (item[0], -item[1]))
    return [Match(term.term, term.category, term.severity, mapping[start], mapping[end] + 1, via)
            for start, end, term, via in found
            if not any(a <= start and end <= b for a, b in allowed)]
