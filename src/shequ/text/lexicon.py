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
(``pyahocorasick``) finds them all in one pass. A term that starts (ends) with a Latin
letter only matches where the form does not continue with a Latin letter on that side, so
``anal`` does not fire inside ``analysis``. A match is suppressed when an allow-list
phrase found in the same text covers it. Most texts hold no term, so ``scan`` first runs
the automaton on the text without tracking positions and only builds the character map
(``normalise_with_spans``) when something was found.

Pinyin initials (``flg``-style abbreviations generated from a term) are not derived here;
such spellings match only when they are themselves in the lexicon.
"""

from __future__ import annotations

import csv
import os
import re
import threading
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import ahocorasick

from shequ.core.errors import ValidationFailed
from shequ.text.normalise import normalise, normalise_with_spans

__all__ = [
    "CATEGORIES",
    "LOOK_ALIKES",
    "Lexicon",
    "Match",
    "Term",
    "evasion_form",
    "evasion_form_with_spans",
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
    keep = [i for i, character in enumerate(normal) if character not in _DROPPED]
    form = "".join(normal[i] for i in keep).translate(_LOOK_ALIKE_TABLE)
    kept = [mapping[i] for i in keep]
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


@dataclass(frozen=True)
class Term:
    """A lexicon term: the text as written, its category and severity (1 low … 3 high)."""

    term: str
    category: str
    severity: int


@dataclass(frozen=True)
class Match:
    """A term found in a text; ``start``/``end`` are offsets of the original text."""

    term: str
    category: str
    severity: int
    start: int
    end: int


@dataclass(frozen=True)
class _Compiled:
    # ahocorasick.Automaton (untyped); values are (length, Term or None for an allow-list
    # phrase, whether the key starts / ends with a Latin letter)
    automaton: Any
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


def _compile(terms: Iterable[Term], allow: Iterable[str]) -> _Compiled:
    by_key: dict[str, Term] = {}
    for index, term in enumerate(terms):
        _check_term(term, f"term {index + 1}")
        key = term_key(term.term)
        if len(key) < 2:
            raise _invalid(f"term {index + 1} ({term.term!r}): fewer than 2 characters "
                           "remain after normalisation")
        known = by_key.get(key)
        if known is None or term.severity > known.severity:
            by_key[key] = term
    kept = list(by_key.values())
    allow_keys: dict[str, str] = {}
    for phrase in allow:
        key = term_key(phrase)
        if not key:
            raise _invalid(f"allow-list phrase {phrase!r} is empty after normalisation")
        allow_keys.setdefault(key, phrase)
    automaton = ahocorasick.Automaton(ahocorasick.STORE_ANY, ahocorasick.KEY_STRING)
    for key, term in by_key.items():
        automaton.add_word(key, (len(key), term, _is_latin(key[0]), _is_latin(key[-1])))
    for key in allow_keys:  # a phrase that is also a term replaces it: the allow-list wins
        automaton.add_word(key, (len(key), None, False, False))
    if len(automaton):
        automaton.make_automaton()
    return _Compiled(automaton, tuple(kept), tuple(allow_keys.values()))


def _parse(path: Path, category: str, severity: int) -> tuple[list[Term], list[str]]:
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
            term = Term(stripped, category, severity)
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
        if len(cells) not in (2, 3):
            raise _invalid(f"{path.name} line {number}: expected term, category[, severity] "
                           f"but found {len(cells)} field(s)")
        level = severity
        if len(cells) == 3:
            try:
                level = int(cells[2])
            except ValueError:
                raise _invalid(f"{path.name} line {number}: severity must be 1, 2 or 3, "
                               f"not {cells[2]!r}") from None
        term = Term(cells[0], cells[1], level)
        _check_row(term, path, number)
        terms.append(term)
    return terms, allow


def _check_row(term: Term, path: Path, number: int) -> None:
    where = f"{path.name} line {number}"
    _check_term(term, where)
    if len(term_key(term.term)) < 2:
        raise _invalid(f"{where}: {term.term!r} has fewer than 2 characters after "
                       "normalisation")


def _stamp(path: Path) -> tuple[int, int]:
    status = os.stat(path)
    return status.st_mtime_ns, status.st_size


class Lexicon:
    """Terms with category and severity, an allow-list, and a thread-safe hot reload."""

    def __init__(self, terms: Iterable[Term | tuple[str, str, int]] = (),
                 allow: Iterable[str] = ()) -> None:
        items = [t if isinstance(t, Term) else Term(*t) for t in terms]
        self._compiled = _compile(items, allow)
        self._lock = threading.Lock()
        self._path: Path | None = None
        self._stamp: tuple[int, int] | None = None
        self._category = "other"
        self._severity = 2

    # ---- construction ----

    @classmethod
    def from_file(cls, path: str | Path, *, category: str = "other",
                  severity: int = 2) -> Lexicon:
        """Terms from a file, watched by ``reload_if_changed``.

        ``.tsv`` / ``.csv``: ``term, category[, severity]`` per row (a ``term category
        severity`` header and ``#`` comment lines are skipped; a row whose category is
        ``allow`` is an allow-list phrase). ``.txt``: one term per line with ``category`` and
        ``severity``; a line starting with ``!`` is an allow-list phrase. Errors name the line.
        """
        source = Path(path)
        _check_term(Term("x", category, severity), "defaults")
        stamp = _stamp(source) if source.exists() else None
        terms, allow = _parse(source, category, severity)
        lexicon = cls(terms, allow)
        lexicon._path, lexicon._stamp = source, stamp
        lexicon._category, lexicon._severity = category, severity
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

    def replace(self, terms: Iterable[Term | tuple[str, str, int]],
                allow: Iterable[str] = ()) -> None:
        """Swap in new contents atomically (scans in flight finish on the old ones)."""
        compiled = _compile([t if isinstance(t, Term) else Term(*t) for t in terms], allow)
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
            terms, allow = _parse(self._path, self._category, self._severity)
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
        if not len(compiled.automaton):
            return []
        automaton = compiled.automaton
        form = evasion_form(text)
        for _ in automaton.iter(form):
            break
        else:
            return []
        form, mapping = evasion_form_with_spans(text)
        return list(_matches(automaton, form, mapping))

    def scan_many(self, texts: Iterable[str]) -> list[list[Match]]:
        """``scan`` of each text."""
        return [self.scan(text) for text in texts]

    def flags(self, text: str) -> bool:
        """True when ``text`` holds at least one term not covered by the allow-list."""
        return bool(self.scan(text))


def _is_latin(character: str) -> bool:
    return "a" <= character <= "z"


def _matches(automaton: Any, form: str, mapping: list[int]) -> Iterator[Match]:
    found: list[tuple[int, int, Term]] = []
    allowed: list[tuple[int, int]] = []
    for end, (length, term, left, right) in automaton.iter(form):
        start = end - length + 1
        if term is None:
            allowed.append((start, end))
        elif not ((left and start > 0 and _is_latin(form[start - 1]))
                  or (right and end + 1 < len(form) and _is_latin(form[end + 1]))):
            found.append((start, end, term))
    found.sort(key=lambda item: (item[0], -item[1]))
    for start, end, term in found:
        if any(a <= start and end <= b for a, b in allowed):
            continue
        yield Match(term.term, term.category, term.severity, mapping[start], mapping[end] + 1)
