"""Contact and ad-spam detection: phone numbers, WeChat / QQ ids, URLs and e-mail addresses.

``find_contacts(text)`` returns every contact in ``text`` as a ``Contact(kind, value, start,
end)``: ``kind`` is one of ``KINDS``, ``value`` the canonical form (phone: digits only; QQ:
digits; WeChat id, URL, e-mail: lowercase with the obfuscations undone) and ``start`` /
``end`` are offsets of the ORIGINAL text (``text[start:end]`` is the contact as written).

The text is first folded character by character (NFKC turns full-width digits and letters
half-width, ``①`` into ``1``; lowercase), keeping a map back to the original characters.
``shequ.text.normalise`` is not used: it shortens runs of repeated characters, which would
turn ``13888888888`` into ``1388``; the few traditional forms that matter (``貳 陸 點 衛星
維信 企鵝``) are listed in the patterns instead. Then:

* **phone** — digits may be Arabic or Chinese (``〇零一幺二…九`` and ``壹贰…玖``), and
  separated by up to three of ``space - . · _ / ( )``. A run of digit groups is searched for
  consecutive groups that read a mainland mobile (``1[3-9]`` + 9 digits, optionally after
  ``86`` / ``0086``) or a ``400`` / ``800`` service number. A landline is an area code
  ``0xx(x)`` and a 7–8 digit local number (Arabic digits) split by ``-``, a space or
  parentheses (``010-62345678``, ``(0571)88888888``). An unseparated run must
  be exactly the number, so longer digit strings (order numbers) do not match, and runs
  right after ``订单号`` / ``单号`` / ``运单`` / ``编号`` / ``型号`` … are skipped.
* **wechat** — a cue (``微信 薇信 威信 vx v信 wx 加v 加微 ➕微 卫星 🛰 weixin wechat 绿泡泡`` …) then
  an id of 6–20 characters starting with a letter (letters, digits, ``_``, ``-``).
* **qq** — a cue (``qq 扣扣 球球 企鹅 q号 q群``) then 5–11 digits (Chinese numerals and
  separators allowed as for phones).
* **url** — ``http(s)://``, ``www`` or a bare domain ending in a common TLD; the dot may be
  written ``. 。 点 · dot (dot) [.]``, and after ``www`` plain spaces count as dots.
* **email** — ``local@domain`` with ``@`` also written ``at`` / ``(at)`` / ``艾特`` / ``圈a``.

A contact lying inside another one (a phone number that is the local part of an e-mail, the
domain of an e-mail) is reported only as the outer one; for the same span a QQ number wins
over a phone number.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass

from shequ.core.errors import ValidationFailed

__all__ = ["KINDS", "Contact", "find_contacts"]

KINDS = ("phone", "wechat", "qq", "url", "email")
_PRIORITY = {"email": 0, "url": 1, "qq": 2, "wechat": 3, "phone": 4}

# ---- digits ----

_DIGITS: dict[str, str] = {str(d): str(d) for d in range(10)}
_DIGITS.update({
    "〇": "0", "零": "0", "一": "1", "幺": "1", "二": "2", "三": "3", "四": "4", "五": "5",
    "六": "6", "七": "7", "八": "8", "九": "9",
    "壹": "1", "贰": "2", "叁": "3", "肆": "4", "伍": "5", "陆": "6", "柒": "7", "捌": "8",
    "玖": "9", "貳": "2", "參": "3", "陸": "6",
})
_ARABIC = frozenset("0123456789")
_DIGIT_GROUP = re.compile("[" + "".join(_DIGITS) + "]+")
_SEPARATORS = frozenset(" -._·/()\u2014\u2013\u2012\u00b7")
_MAX_SEPARATORS = 3
_MOBILE = re.compile(r"(?:0086|86)?(1[3-9]\d{9})")
_SERVICE = re.compile(r"([48]00\d{7})")
_NOT_A_PHONE_BEFORE = re.compile(
    r"(?:订单|单号|运单|快递|物流|编号|型号|货号|批号|条码|序列号|卡号|工号|发票|"
    r"isbn|imei|sn|sku|no\.?)\s*[::#]?\s*$")


@dataclass(frozen=True)
class Contact:
    """A contact found in a text; ``start``/``end`` are offsets of the original text."""

    kind: str
    value: str
    start: int
    end: int


@dataclass(frozen=True)
class _Group:
    digits: str
    start: int  # normalised offsets, end exclusive
    end: int
    arabic: bool  # every digit written with 0-9


@dataclass(frozen=True)
class _Run:
    groups: tuple[_Group, ...]
    seps: tuple[str, ...]  # the separator text between group k and k + 1

    @property
    def start(self) -> int:
        return self.groups[0].start

    @property
    def end(self) -> int:
        return self.groups[-1].end

    @property
    def digits(self) -> str:
        return "".join(group.digits for group in self.groups)


def _digit_runs(normal: str) -> list[_Run]:
    """Runs of digit groups joined by at most ``_MAX_SEPARATORS`` separator characters."""
    runs: list[_Run] = []
    groups: list[_Group] = []
    seps: list[str] = []
    for match in _DIGIT_GROUP.finditer(normal):
        piece = match.group()
        group = _Group("".join(_DIGITS[c] for c in piece), match.start(), match.end(),
                       all(c in _ARABIC for c in piece))
        gap = normal[groups[-1].end:match.start()] if groups else ""
        if groups and len(gap) <= _MAX_SEPARATORS and all(c in _SEPARATORS for c in gap):
            seps.append(gap)
            groups.append(group)
            continue
        if groups:
            runs.append(_Run(tuple(groups), tuple(seps)))
        groups, seps = [group], []
    if groups:
        runs.append(_Run(tuple(groups), tuple(seps)))
    return runs


def _phone_value(digits: str) -> str | None:
    mobile = _MOBILE.fullmatch(digits)
    if mobile:
        return mobile.group(1)
    if _SERVICE.fullmatch(digits):
        return digits
    return None


def _phones(normal: str, runs: list[_Run]) -> list[tuple[str, str, int, int]]:
    found: list[tuple[str, str, int, int]] = []
    for run in runs:
        if _NOT_A_PHONE_BEFORE.search(normal[max(0, run.start - 10):run.start]):
            continue
        groups = run.groups
        i = 0
        while i < len(groups):
            best: tuple[str, int, str] | None = None  # value, last group, digits read
            digits = ""
            for j in range(i, len(groups)):  # at most 13 digits: a bounded look ahead
                digits += groups[j].digits
                if len(digits) > 13:
                    break
                value = _phone_value(digits)
                if value is None and j == i + 1:
                    value = _landline(groups[i], groups[j], run.seps[i])
                if value is not None:
                    best = (value, j, digits)  # longest wins
            if best is None:
                i += 1
                continue
            value, j, read = best
            start = groups[i].start
            if start and normal[start - 1] in "+(" and (read.startswith("86") or "-" in value):
                start -= 1  # the + of +86, the ( of (0571)
            found.append(("phone", value, start, groups[j].end))
            i = j + 1
    return found


def _landline(area: _Group, local: _Group, sep: str) -> str | None:
    if not (area.arabic and local.arabic) or sep.strip(" ") not in ("-", ")", ") ", "(", ""):
        return None
    if not re.fullmatch(r"0[1-9]\d{1,2}", area.digits):
        return None
    if not re.fullmatch(r"[2-9]\d{6,7}", local.digits):
        return None
    return f"{area.digits}-{local.digits}"


# ---- cues: WeChat and QQ ----

_FILL = r"(?:[\s::=~>\-—_,.·]|号码|号|是|为|加|搜索|搜|id|账号|\+){0,8}"
_WECHAT = re.compile(
    r"(?:微信|薇信|威信|徽信|维信|維信|危信|微x|卫星|衛星|绿泡泡|綠泡泡|🛰\ufe0f?|"
    r"(?<![a-z])(?:v\s?信|v[\s.·_-]?x|w[\s.·_-]?x|weixin|wechat|wei\s?xin)|"
    r"(?:加|\+|➕)\s?(?:v(?![a-z])|[微薇威](?!信)))"
    + _FILL + r"([a-z][a-z0-9_-]{5,19})(?![a-z0-9_-])")
_QQ = re.compile(r"(?:(?<![a-z])(?:q\s?q|q号|q群)|扣扣|球球|企鹅|企鵝)" + _FILL
                 + r"(?=[" + "".join(_DIGITS) + "])")


def _wechat(normal: str) -> list[tuple[str, str, int, int]]:
    return [("wechat", m.group(1), m.start(1), m.end(1)) for m in _WECHAT.finditer(normal)]


def _qq(normal: str, runs: list[_Run]) -> list[tuple[str, str, int, int]]:
    by_start = {run.start: run for run in runs}
    found: list[tuple[str, str, int, int]] = []
    for cue in _QQ.finditer(normal):
        run = by_start.get(cue.end())
        if run is None:
            continue
        digits = run.digits
        if 5 <= len(digits) <= 11 and digits[0] != "0":
            found.append(("qq", digits, run.start, run.end))
    return found


# ---- URLs and e-mail ----

_TLDS = ("com", "cn", "net", "org", "edu", "gov", "top", "xyz", "vip", "cc", "me", "io",
         "info", "shop", "club", "site", "online", "app", "ltd", "wang", "ink", "biz", "hk",
         "tw", "tv", "tk", "ly", "store", "live", "fun", "link", "work", "icu", "cyou")
_TLD = r"(?:" + "|".join(sorted(_TLDS, key=len, reverse=True)) + r")(?![a-z0-9])"
_DOT = r"(?:\s*(?:\.|。|点|點|·|\(dot\)|\[dot\]|\(\.\)|\[\.\])\s*|\s+dot\s+)"
_DOT_RE = re.compile(_DOT)
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_PATH = r"(?:/[a-z0-9._~%/?#=&+-]*)?"
_HOST = rf"(?:{_LABEL}{_DOT}){{1,6}}{_TLD}"  # bounded: no quadratic retries
_SCHEME = r"https?\s*:\s*//\s*"
_URL = re.compile(
    rf"(?<![a-z0-9@_-])(?:{_SCHEME}(?:www{_DOT})?{_HOST}"
    rf"|www(?:{_DOT}|\s+|\s*空格\s*)(?:{_LABEL}(?:{_DOT}|\s+|\s*空格\s*)){{1,6}}{_TLD}"
    rf"|{_HOST}){_PATH}")
_AT = r"(?:\s*(?:@|\(at\)|\[at\]|艾特|圈a|圈圈)\s*|\s+at\s+)"
_EMAIL = re.compile(rf"(?<![a-z0-9._%+-])([a-z0-9][a-z0-9._%+-]{{0,63}}){_AT}({_HOST})")
_SCHEME_RE = re.compile(_SCHEME)
_SPACES = re.compile(r"\s*空格\s*|\s+")


def _canonical_host(host: str) -> str:
    return _SPACES.sub(".", _DOT_RE.sub(".", host).strip())


def _bare_domain_ok(host: str) -> bool:
    """A bare domain needs a second-level label with a letter or of 3+ characters."""
    labels = host.split(".")
    second = labels[-2] if len(labels) >= 2 else ""
    return bool(re.search(r"[a-z]", second)) or len(second) >= 3


def _urls(normal: str) -> list[tuple[str, str, int, int]]:
    found: list[tuple[str, str, int, int]] = []
    for match in _URL.finditer(normal):
        written = match.group()
        scheme = _SCHEME_RE.match(written)
        rest = written[scheme.end():] if scheme else written
        value = _canonical_host(rest)
        if scheme is None and not rest.startswith("www") and not _bare_domain_ok(
                value.split("/")[0]):
            continue
        found.append(("url", value, match.start(), match.end()))
    return found


def _emails(normal: str) -> list[tuple[str, str, int, int]]:
    return [("email", f"{m.group(1)}@{_canonical_host(m.group(2))}", m.start(), m.end())
            for m in _EMAIL.finditer(normal)]


# ---- putting it together ----

_FAST_LIMIT = 0x30000  # characters from here on always take the character-by-character path
_fast_tables: tuple[dict[int, str], re.Pattern[str]] | None = None
_fast_lock = threading.Lock()


def _tables() -> tuple[dict[int, str], re.Pattern[str]]:
    """``ord -> folded character`` for every character below ``_FAST_LIMIT`` that NFKC +
    lowercase turns into ONE other character, and a pattern of the characters it turns into
    several (or none) plus everything from ``_FAST_LIMIT`` on. Built once, on first use."""
    global _fast_tables
    with _fast_lock:
        if _fast_tables is None:
            single: dict[int, str] = {}
            other: list[str] = []
            for code in range(0x41, _FAST_LIMIT):
                character = chr(code)
                folded = unicodedata.normalize("NFKC", character).lower()
                if folded == character:
                    continue
                if len(folded) == 1:
                    single[code] = folded
                else:
                    other.append(re.escape(character))
            slow = "[" + "".join(other) + f"\\U{_FAST_LIMIT:08x}-\\U0010ffff]"
            _fast_tables = single, re.compile(slow)
        return _fast_tables


def _fold(text: str) -> tuple[str, list[int]]:
    """``text`` with NFKC and lowercase applied character by character, and for every output
    character its index in ``text`` (no run shortening: ``13888888888`` must stay whole).

    Most texts only hold characters that fold to one character each: one ``str.translate``
    then does it with the identity map. The rest go character by character."""
    single, slow = _tables()
    if not slow.search(text):
        return text.translate(single), list(range(len(text)))
    return fold_each(text)


def fold_each(text: str) -> tuple[str, list[int]]:
    """``_fold`` one character at a time (the reference the fast path must equal)."""
    parts: list[str] = []
    mapping: list[int] = []
    for index, character in enumerate(text):
        folded = unicodedata.normalize("NFKC", character).lower()
        parts.append(folded)
        mapping.extend([index] * len(folded))
    return "".join(parts), mapping


# ---- putting it together ----

def _resolve(found: list[tuple[str, str, int, int]]) -> list[tuple[str, str, int, int]]:
    """Drop a contact inside another one, and same-span duplicates of lower priority."""
    ordered = sorted(set(found), key=lambda f: (f[2], -f[3], _PRIORITY[f[0]]))
    kept: list[tuple[str, str, int, int]] = []
    for item in ordered:
        if any(k[2] <= item[2] and item[3] <= k[3] for k in kept):
            continue
        kept.append(item)
    return kept


def find_contacts(text: str) -> list[Contact]:
    """Every phone number, WeChat / QQ id, URL and e-mail in ``text``, by original offsets."""
    if not isinstance(text, str):
        raise ValidationFailed("invalid_text", f"must be a string, not {type(text).__name__}",
                               "text")
    normal, mapping = _fold(text)
    runs = _digit_runs(normal)
    found = _phones(normal, runs) + _qq(normal, runs) + _wechat(normal) + _urls(normal)
    found += _emails(normal)
    return [Contact(kind, value, mapping[start], mapping[end - 1] + 1)
            for kind, value, start, end in _resolve(found)]
